// A RegistryUpstream for unit tests of the layers above it: each request is answered by a test's
// script, and bodies are delivered in pieces, optionally paced and optionally broken off, so that
// fetches in progress can be observed.
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include "proxy/upstream/registry_upstream.hpp"
#include "tests/proxy/test_support.hpp"

namespace pullthrough::proxy::testing {

struct ScriptedReply {
  // No response at all: the request fails with `failure`.
  bool unreachable = false;
  UpstreamFailure failure = UpstreamFailure::connect;
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  bool announce_length = true;
  // Delivered `piece` bytes per read, `pace` apart.
  std::size_t piece = 64 * 1024;
  std::chrono::milliseconds pace{0};
  // Break the body off with partial_message after this many bytes.
  std::optional<std::size_t> break_after;
};

class ScriptedBody final : public UpstreamBody {
 public:
  explicit ScriptedBody(ScriptedReply reply) : reply_(std::move(reply)) {}

  boost::asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    namespace asio = boost::asio;
    if (reply_.pace.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor);
      timer.expires_after(reply_.pace);
      boost::system::error_code ignored;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
    std::size_t end = reply_.body.size();
    if (reply_.break_after) end = std::min(end, *reply_.break_after);
    if (offset_ >= end) {
      BodyRead read;
      if (end < reply_.body.size()) read.error = boost::beast::http::error::partial_message;
      co_return read;
    }
    std::size_t n = std::min({out.size(), reply_.piece, end - offset_});
    std::memcpy(out.data(), reply_.body.data() + offset_, n);
    offset_ += n;
    co_return BodyRead{n, {}};
  }

  std::optional<std::uint64_t> content_length() const override {
    if (!reply_.announce_length) return std::nullopt;
    return reply_.body.size();
  }

 private:
  ScriptedReply reply_;
  std::size_t offset_ = 0;
};

// What a scripted upstream answers with `reply`: a failure, or a response with its status and
// fields, and a body to read when `with_body`.
inline UpstreamResult scripted_result(ScriptedReply reply, bool with_body, std::string url) {
  UpstreamResult result;
  if (reply.unreachable) {
    result.failure = reply.failure;
    result.error = "scripted failure";
    return result;
  }
  UpstreamResponse response;
  response.header.result(reply.status);
  for (const auto& [name, value] : reply.fields) response.header.set(name, value);
  if (with_body) response.body = std::make_unique<ScriptedBody>(std::move(reply));
  response.url = std::move(url);
  result.response = std::move(response);
  return result;
}

class ScriptedUpstream final : public RegistryUpstream {
 public:
  using Script = std::function<ScriptedReply(const UpstreamRequest&)>;
  explicit ScriptedUpstream(Script script) : script_(std::move(script)) {}

  boost::asio::awaitable<UpstreamResult> send(UpstreamRequest request) override {
    ScriptedReply reply;
    {
      std::lock_guard lock(mutex_);
      seen_.push_back(request);
      reply = script_(request);
    }
    co_return scripted_result(std::move(reply), request.method == boost::beast::http::verb::get,
                              "https://upstream.test" + request.target);
  }

  std::vector<UpstreamRequest> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t count(boost::beast::http::verb method) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : seen_) n += r.method == method ? 1 : 0;
    return n;
  }
  void set_script(Script script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }

 private:
  mutable std::mutex mutex_;
  Script script_;
  std::vector<UpstreamRequest> seen_;
};

// What a well-behaved registry answers for a manifest.
inline ScriptedReply manifest_reply(const std::string& body, std::string_view type,
                                    bool with_digest = true) {
  ScriptedReply reply;
  reply.body = body;
  reply.fields.emplace_back("Content-Type", std::string(type));
  if (with_digest) reply.fields.emplace_back("Docker-Content-Digest", sha256_of(body));
  return reply;
}

// A status with an empty JSON body (404, 500, ...).
inline ScriptedReply status_reply(unsigned status) {
  ScriptedReply reply;
  reply.status = status;
  reply.body = "{}";
  return reply;
}

}  // namespace pullthrough::proxy::testing
