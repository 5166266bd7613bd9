// A RegistryUpstream for unit tests of the layers above it: each request is answered by a test's
// script, and bodies are delivered in pieces, optionally paced and optionally broken off, so that
// fetches in progress can be observed.
#pragma once

#include "core/asio.hpp"

#include <algorithm>
#include <array>
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

// A request forward() was given, with the body it read (whole) from the request's source.
struct ForwardedRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;
  boost::beast::http::fields fields;
  std::optional<std::uint64_t> announced_length;  // the body source's content_length()
  bool had_body = false;
  std::string body;
  boost::system::error_code body_error;  // the body source's error, if it failed
  std::size_t largest_read = 0;          // the most bytes one read of the source gave
  std::optional<Origin> origin;
};

class ScriptedUpstream final : public RegistryUpstream {
 public:
  using Script = std::function<ScriptedReply(const UpstreamRequest&)>;
  using ForwardScript = std::function<ScriptedReply(const ForwardedRequest&)>;
  explicit ScriptedUpstream(Script script, ForwardScript forward_script = {})
      : script_(std::move(script)), forward_script_(std::move(forward_script)) {}

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

  // Reads the request's body whole, then answers with the forward script (404 without one). A
  // body that fails is answered as the client does: a request_body failure.
  boost::asio::awaitable<UpstreamResult> forward(ForwardRequest request) override {
    ForwardedRequest seen;
    seen.method = request.method;
    seen.target = request.target;
    seen.fields = request.fields;
    seen.origin = request.origin;
    if (request.body != nullptr) {
      seen.had_body = true;
      seen.announced_length = request.body->content_length();
      std::size_t read_bytes = 8192;
      std::chrono::milliseconds wait{0};
      {
        std::lock_guard lock(mutex_);
        read_bytes = forward_read_bytes_;
        wait = forward_wait_;
      }
      if (wait.count() > 0) {
        boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, wait);
        co_await timer.async_wait(boost::asio::use_awaitable);
      }
      std::vector<std::uint8_t> buffer(read_bytes);
      for (;;) {
        BodyRead read = co_await request.body->read_some(buffer);
        if (read.error) {
          seen.body_error = read.error;
          break;
        }
        if (read.bytes == 0) break;
        seen.largest_read = std::max(seen.largest_read, read.bytes);
        seen.body.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
      }
    }
    ScriptedReply reply = status_reply_404();
    {
      std::lock_guard lock(mutex_);
      forwarded_.push_back(seen);
      if (forward_script_) reply = forward_script_(seen);
    }
    if (seen.body_error) {
      co_return upstream_failure(UpstreamFailure::request_body, seen.body_error.message());
    }
    co_return scripted_result(std::move(reply), request.method != boost::beast::http::verb::head,
                              "https://upstream.test" + request.target);
  }

  std::vector<UpstreamRequest> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::vector<ForwardedRequest> forwarded() const {
    std::lock_guard lock(mutex_);
    return forwarded_;
  }
  void set_forward_script(ForwardScript script) {
    std::lock_guard lock(mutex_);
    forward_script_ = std::move(script);
  }
  // forward() reads bodies `bytes` at a time, after waiting `first` (so that what the client
  // sent has arrived).
  void set_forward_reads(std::size_t bytes, std::chrono::milliseconds first) {
    std::lock_guard lock(mutex_);
    forward_read_bytes_ = bytes;
    forward_wait_ = first;
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
  static ScriptedReply status_reply_404() {
    ScriptedReply reply;
    reply.status = 404;
    reply.body = "{}";
    return reply;
  }

  mutable std::mutex mutex_;
  Script script_;
  ForwardScript forward_script_;
  std::vector<UpstreamRequest> seen_;
  std::vector<ForwardedRequest> forwarded_;
  std::size_t forward_read_bytes_ = 8192;
  std::chrono::milliseconds forward_wait_{0};
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
