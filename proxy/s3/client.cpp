#include "proxy/s3/client.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <mutex>
#include <random>
#include <stdexcept>
#include <system_error>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <openssl/evp.h>

#include "core/logging.hpp"
#include "proxy/digester.hpp"
#include "proxy/s3/xml.hpp"
#include "proxy/upstream/connection.hpp"
#include "proxy/upstream/connector.hpp"
#include "proxy/upstream/pool.hpp"

namespace pullthrough::proxy::s3 {
namespace {

namespace beast = boost::beast;

// Request bodies go out in pieces of this size, read from the payload one at a time.
constexpr std::size_t kPieceBytes = std::size_t{256} * 1024;
// An error document or an XML result is small; a listing of 1000 keys is about 300 KiB.
constexpr std::size_t kMaxResultBytes = std::size_t{4} << 20;
constexpr std::size_t kMaxErrorBytes = std::size_t{64} * 1024;
constexpr std::uint64_t kMaxParts = 10000;  // S3's limit per multipart upload
constexpr std::chrono::seconds kIdleTimeout{10};
// Interim (1xx) answers skipped before the final one.
constexpr int kMaxInterimResponses = 4;

std::string_view verb_name(http::verb method) { return http::to_string(method); }

StatusClass classify(unsigned status) {
  if (status >= 200 && status < 300) return StatusClass::ok;
  if (status >= 300 && status < 400) return StatusClass::redirect;
  if (status >= 400 && status < 500) return StatusClass::client_error;
  return StatusClass::server_error;
}

std::string base64(std::span<const std::uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(written < 0 ? 0 : static_cast<std::size_t>(written));
  return out;
}

// Content-MD5, which S3 requires of a batch delete.
std::string md5_base64(std::string_view text) {
  std::array<std::uint8_t, 16> digest{};
  unsigned length = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_md5(), nullptr) != 1) {
    throw std::runtime_error("MD5 is not available");
  }
  return base64(std::span<const std::uint8_t>(digest.data(), length));
}

// Full jitter (the AWS architecture blog's "Exponential Backoff And Jitter"): a random wait up to
// base * 2^(retry - 1), capped, so that many clients told to slow down do not come back together.
std::chrono::milliseconds backoff(unsigned retry, std::chrono::milliseconds base,
                                  std::chrono::milliseconds cap) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::int64_t ceiling = base.count();
  for (unsigned i = 1; i < retry && ceiling < cap.count(); ++i) ceiling *= 2;
  ceiling = std::min<std::int64_t>(ceiling, cap.count());
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<std::int64_t> pick(0, ceiling);
  return std::chrono::milliseconds(pick(random));
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// "bytes FIRST-LAST/TOTAL" names exactly [from, to).
bool content_range_is(std::string_view value, std::uint64_t from, std::uint64_t to) {
  if (!value.starts_with("bytes ")) return false;
  value.remove_prefix(6);
  auto dash = value.find('-');
  auto slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return false;
  }
  auto first = parse_number(value.substr(0, dash));
  auto last = parse_number(value.substr(dash + 1, slash - dash - 1));
  return first && last && *first == from && *last + 1 == to;
}

// A request as the client describes it, before it is signed.
struct Request {
  Operation operation = Operation::get;
  http::verb method = http::verb::get;
  std::string key;  // without the prefix; ignored for bucket-level requests
  bool bucket_level = false;
  std::vector<QueryParameter> query;
  std::vector<Header> headers;  // sent and signed, besides host and the x-amz- ones
  Payload* payload = nullptr;   // null: no body
  std::uint64_t payload_offset = 0;
  std::uint64_t payload_size = 0;
  std::string payload_hash = std::string(kEmptyPayloadHash);
};

// A response whose header has been read.
struct Answer {
  Outcome failure;
  std::unique_ptr<Connection> connection;
  std::unique_ptr<UpstreamParser> parser;
};

}  // namespace

std::string_view to_string(Operation operation) {
  switch (operation) {
    case Operation::get:
      return "get";
    case Operation::put:
      return "put";
    case Operation::remove:
      return "delete";
    case Operation::remove_batch:
      return "delete_batch";
    case Operation::create_upload:
      return "create_multipart";
    case Operation::upload_part:
      return "upload_part";
    case Operation::complete_upload:
      return "complete_multipart";
    case Operation::abort_upload:
      return "abort_multipart";
    case Operation::list:
      return "list";
  }
  return "unknown";
}

std::string_view to_string(StatusClass status) {
  switch (status) {
    case StatusClass::ok:
      return "2xx";
    case StatusClass::redirect:
      return "3xx";
    case StatusClass::client_error:
      return "4xx";
    case StatusClass::server_error:
      return "5xx";
    case StatusClass::no_response:
      return "none";
  }
  return "none";
}

std::size_t MemoryPayload::read(std::uint64_t offset, std::span<std::uint8_t> out) {
  if (offset >= bytes_.size()) return 0;
  auto n = std::min<std::uint64_t>(out.size(), bytes_.size() - offset);
  std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
  return static_cast<std::size_t>(n);
}

struct Client::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io_context, ClientSettings s, core::HostResolver& resolver,
        const core::Clock& clock, const core::WallClock& wall, ClientMetrics& m)
      : io(io_context),
        settings(std::move(s)),
        wall_clock(wall),
        metrics(m),
        connector(io_context, "S3 endpoint " + settings.endpoint.key(), settings.ca_file, {},
                  resolver, ConnectLimits{settings.timeout, settings.timeout}, connections_opened),
        pool(io_context, clock, settings.max_idle_connections,
             std::min<std::chrono::milliseconds>(kIdleTimeout, settings.timeout)),
        log(core::logger("s3")) {
    origin = settings.endpoint;
    if (settings.path_style) {
      object_path = "/" + settings.bucket + "/" + settings.prefix;
      bucket_path = "/" + settings.bucket;
    } else {
      origin.host = settings.bucket + "." + origin.host;
      object_path = "/" + settings.prefix;
      bucket_path = "/";
    }
  }

  asio::io_context& io;
  ClientSettings settings;
  const core::WallClock& wall_clock;
  ClientMetrics& metrics;
  core::Counter connections_opened;
  Connector connector;
  ConnectionPool pool;
  std::shared_ptr<spdlog::logger> log;
  Origin origin;            // where requests go: the endpoint, or bucket.endpoint
  std::string object_path;  // raw path before a key
  std::string bucket_path;  // raw path of bucket-level requests
  std::atomic<bool> stopping{false};
  std::mutex key_mutex;
  std::shared_ptr<const SigningKey> signing_key;  // of the day of the last request

  std::string describe(std::string_view key) const {
    return "s3://" + settings.bucket + "/" + settings.prefix + std::string(key);
  }

  std::string describe(const Request& request) const {
    std::string what = std::string(verb_name(request.method)) + " ";
    what += request.bucket_level ? "s3://" + settings.bucket : describe(request.key);
    return what;
  }

  std::shared_ptr<const SigningKey> key_for(std::string_view day) {
    std::lock_guard lock(key_mutex);
    if (!signing_key || signing_key->date() != day) {
      signing_key = std::make_shared<const SigningKey>(settings.credentials.secret_key, day,
                                                       settings.region, "s3");
    }
    return signing_key;
  }

  Failure failure(const Request& request, unsigned status, std::string code,
                  std::string detail) const {
    Failure out;
    out.operation = request.operation;
    out.status = status;
    out.code = std::move(code);
    out.message = describe(request) + ": ";
    if (status != 0) out.message += std::to_string(status) + " ";
    out.message += out.code;
    if (!detail.empty()) out.message += ": " + detail;
    return out;
  }

  static bool retryable(const Failure& failure) {
    if (failure.code == "stopping") return false;
    if (failure.status == 0) return true;
    return failure.status >= 500 || failure.status == 429 || failure.code == "RequestTimeout";
  }

  static std::string transport_code(const error_code& ec) {
    if (ec == beast::error::timeout) return "timeout";
    if (&ec.category() == &http::make_error_code(http::error::need_more).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return "protocol";
    }
    return "reset";
  }

  // Reads the body of `parser`'s message into `out`, up to `max` bytes.
  asio::awaitable<void> read_body(Connection& connection, UpstreamParser& parser, std::size_t max,
                                  std::string& out, error_code& ec) {
    std::array<std::uint8_t, 16384> piece{};
    while (!parser.is_done()) {
      auto& body = parser.get().body();
      body.data = piece.data();
      body.size = piece.size();
      co_await connection.read_some(parser, settings.timeout, ec);
      if (ec == http::error::need_buffer) ec = {};
      std::size_t got = piece.size() - body.size;
      body.data = nullptr;
      body.size = 0;
      if (ec) co_return;
      metrics.bytes_received.add(got);
      if (out.size() + got > max) {
        ec = http::error::body_limit;
        co_return;
      }
      out.append(reinterpret_cast<const char*>(piece.data()), got);
    }
  }

  // Sends the request's header and body on `connection`.
  asio::awaitable<void> write_request(Connection& connection, const Request& request,
                                      error_code& ec) {
    const std::string date = amz_date(wall_clock.now());
    std::vector<Header> headers;
    headers.reserve(request.headers.size() + 4);
    headers.push_back({"host", origin.host_field()});
    headers.push_back({"x-amz-content-sha256", request.payload_hash});
    headers.push_back({"x-amz-date", date});
    if (!settings.credentials.session_token.empty()) {
      headers.push_back({"x-amz-security-token", settings.credentials.session_token});
    }
    headers.insert(headers.end(), request.headers.begin(), request.headers.end());
    std::string raw_path = request.bucket_level ? bucket_path : object_path + request.key;
    SignableRequest signable{.method = std::string(verb_name(request.method)),
                             .path = raw_path,
                             .query = request.query,
                             .headers = headers,
                             .payload_hash = request.payload_hash};
    auto key = key_for(std::string_view(date).substr(0, 8));
    Signed signature = sign(signable, settings.credentials.access_key, *key, date);
    std::string target = canonical_path(raw_path);
    if (!request.query.empty()) target += "?" + canonical_query(request.query);

    const bool has_body = request.payload != nullptr;
    if (!has_body && request.method != http::verb::put && request.method != http::verb::post) {
      UpstreamRequestMessage message{request.method, target, 11};
      for (const auto& header : headers) message.set(header.name, header.value);
      message.set(http::field::authorization, signature.authorization);
      message.set(http::field::user_agent, "pullthrough");
      co_await connection.write(message, settings.timeout, ec);
      co_return;
    }
    UpstreamStreamedRequest message{request.method, target, 11};
    for (const auto& header : headers) message.set(header.name, header.value);
    message.set(http::field::authorization, signature.authorization);
    message.set(http::field::user_agent, "pullthrough");
    message.content_length(request.payload_size);
    std::vector<std::uint8_t> buffer(
        static_cast<std::size_t>(std::min<std::uint64_t>(request.payload_size, kPieceBytes)));
    std::uint64_t sent = 0;
    auto next_piece = [&]() -> std::size_t {
      auto want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buffer.size(), request.payload_size - sent));
      std::size_t got = 0;
      while (got < want) {
        std::size_t n =
            request.payload->read(request.payload_offset + sent + got,
                                  std::span<std::uint8_t>(buffer).subspan(got, want - got));
        if (n == 0)
          throw std::system_error(std::make_error_code(std::errc::io_error),
                                  "the payload ended early");
        got += n;
      }
      return got;
    };
    std::size_t first = 0;
    try {
      if (request.payload != nullptr) first = next_piece();
    } catch (const std::system_error&) {
      ec = make_error_code(boost::system::errc::io_error);
      co_return;
    }
    message.body().data = first > 0 ? buffer.data() : nullptr;
    message.body().size = first;
    message.body().more = request.payload_size > first;
    UpstreamRequestSerializer serializer(message);
    co_await connection.write_part(serializer, settings.timeout, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return;
    sent += first;
    metrics.bytes_sent.add(first);
    while (sent < request.payload_size) {
      std::size_t n = 0;
      try {
        n = next_piece();
      } catch (const std::system_error&) {
        ec = make_error_code(boost::system::errc::io_error);
        co_return;
      }
      const std::span<const std::uint8_t> piece(buffer.data(), n);
      co_await connection.write_raw(piece, settings.timeout, ec);
      if (ec) co_return;
      sent += n;
      metrics.bytes_sent.add(n);
    }
  }

  // One try: a connection, the request, the response header. A connection from the pool that
  // was closed meanwhile fails before any answer: `stale` says so.
  asio::awaitable<Answer> attempt(const Request& request, bool& stale) {
    Answer answer;
    stale = false;
    auto connection = pool.take(origin);
    const bool reused = connection != nullptr;
    if (!connection) {
      UpstreamResult failed;
      connection = co_await connector.connect(origin, failed);
      if (!connection) {
        metrics
            .requests[static_cast<std::size_t>(request.operation)]
                     [static_cast<std::size_t>(StatusClass::no_response)]
            .add();
        std::string code = failed.failure == UpstreamFailure::timeout ? "timeout" : "connect";
        answer.failure = failure(request, 0, code, failed.error);
        co_return answer;
      }
    }
    const auto started = std::chrono::steady_clock::now();
    error_code ec;
    co_await write_request(*connection, request, ec);
    std::unique_ptr<UpstreamParser> parser;
    if (!ec) {
      for (int interim = 0;; ++interim) {
        parser = std::make_unique<UpstreamParser>();
        parser->header_limit(64 * 1024);
        parser->body_limit(std::numeric_limits<std::uint64_t>::max());
        co_await connection->read_header(*parser, settings.timeout, ec);
        if (ec) break;
        unsigned status = parser->get().result_int();
        if (status >= 200 || status == 101) break;
        if (interim >= kMaxInterimResponses) {
          ec = http::error::bad_status;
          break;
        }
      }
    }
    auto& by_status = metrics.requests[static_cast<std::size_t>(request.operation)];
    if (ec) {
      by_status[static_cast<std::size_t>(StatusClass::no_response)].add();
      stale = reused && ec != beast::error::timeout;
      answer.failure = failure(request, 0, transport_code(ec), ec.message());
      co_return answer;
    }
    metrics.latency[static_cast<std::size_t>(request.operation)].observe(
        std::chrono::steady_clock::now() - started);
    unsigned status = parser->get().result_int();
    by_status[static_cast<std::size_t>(classify(status))].add();
    if (status >= 200 && status < 300) {
      answer.connection = std::move(connection);
      answer.parser = std::move(parser);
      co_return answer;
    }
    // S3's error document names the reason; a HEAD or a body too large gets the status only.
    std::string body;
    error_code body_ec;
    co_await read_body(*connection, *parser, kMaxErrorBytes, body, body_ec);
    std::string code = "HTTP" + std::to_string(status);
    std::string detail;
    std::string xml_error;
    if (auto document = parse_xml(body, xml_error); document && document->name == "Error") {
      if (!document->text_of("Code").empty()) code = document->text_of("Code");
      detail = document->text_of("Message");
    }
    if (!body_ec && parser->is_done() && parser->get().keep_alive()) {
      pool.put(std::move(connection));
    }
    answer.failure = failure(request, status, code, detail);
    co_return answer;
  }

  // The request, retried as the header says; the answer's header is a 2xx one unless it failed.
  static asio::awaitable<Answer> exchange(std::shared_ptr<State> self, Request request) {
    bool free_retry = true;
    for (unsigned retry = 0;;) {
      if (self->stopping.load()) {
        Answer stopped;
        stopped.failure = self->failure(request, 0, "stopping", "the appliance is stopping");
        co_return stopped;
      }
      bool stale = false;
      Answer answer = co_await self->attempt(request, stale);
      if (!answer.failure) co_return answer;
      if (stale && free_retry) {
        // A kept-alive connection the server had closed: not the service's fault.
        free_retry = false;
        continue;
      }
      if (!retryable(*answer.failure) || retry >= self->settings.max_retries) {
        self->log->debug("{}", answer.failure->message);
        co_return answer;
      }
      ++retry;
      self->metrics.retries[static_cast<std::size_t>(request.operation)].add();
      auto wait = backoff(retry, self->settings.backoff_base, self->settings.backoff_cap);
      self->log->debug("{}; retry {} of {} in {} ms", answer.failure->message, retry,
                       self->settings.max_retries, wait.count());
      asio::steady_timer timer(co_await asio::this_coro::executor, wait);
      error_code ignored;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  // A request whose answer is a small body (an XML result), read whole.
  static asio::awaitable<Outcome> exchange_for_body(std::shared_ptr<State> self, Request request,
                                                    std::size_t max, std::string& body) {
    for (unsigned tries = 0;; ++tries) {
      Answer answer = co_await exchange(self, request);
      if (answer.failure) co_return answer.failure;
      body.clear();
      error_code ec;
      co_await self->read_body(*answer.connection, *answer.parser, max, body, ec);
      if (!ec) {
        if (answer.parser->get().keep_alive()) self->pool.put(std::move(answer.connection));
        co_return std::nullopt;
      }
      Failure broken =
          self->failure(request, answer.parser->get().result_int(),
                        ec == http::error::body_limit ? "protocol" : transport_code(ec),
                        "reading the answer: " + ec.message());
      if (ec == http::error::body_limit || tries >= self->settings.max_retries) co_return broken;
      self->metrics.retries[static_cast<std::size_t>(request.operation)].add();
    }
  }

  static Request get_request(std::string key, std::uint64_t from, std::uint64_t to) {
    Request request;
    request.operation = Operation::get;
    request.method = http::verb::get;
    request.key = std::move(key);
    request.headers.push_back(
        {"range", "bytes=" + std::to_string(from) + "-" + std::to_string(to - 1)});
    return request;
  }

  // Whether a 2xx answer to a GET of [from, to) is that range.
  static bool answers_range(const UpstreamParser& parser, std::uint64_t from, std::uint64_t to) {
    const auto& header = parser.get();
    auto length = parser.content_length();
    if (!length || *length != to - from) return false;
    if (header.result_int() == 206) {
      auto range = header.find(http::field::content_range);
      return range != header.end() && content_range_is(range->value(), from, to);
    }
    // A server may answer a range that covers the whole object with the whole object.
    return header.result_int() == 200 && from == 0;
  }

  class RangeReader;
};

class Client::State::RangeReader final : public ObjectReader {
 public:
  RangeReader(std::shared_ptr<State> state, std::string key, std::uint64_t from, std::uint64_t to,
              Answer answer)
      : state_(std::move(state)),
        key_(std::move(key)),
        position_(from),
        to_(to),
        size_(to - from),
        connection_(std::move(answer.connection)),
        parser_(std::move(answer.parser)),
        resumes_left_(state_->settings.max_retries) {}

  std::uint64_t size() const override { return size_; }

  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t> out) override {
    if (position_ >= to_) co_return BodyRead{};
    if (out.empty()) co_return BodyRead{0, asio::error::invalid_argument};
    for (;;) {
      if (!connection_) {
        if (error_ || resumes_left_ == 0) {
          if (!error_) error_ = asio::error::connection_reset;
          co_return BodyRead{0, error_};
        }
        --resumes_left_;
        state_->metrics.retries[static_cast<std::size_t>(Operation::get)].add();
        Answer answer = co_await State::exchange(state_, State::get_request(key_, position_, to_));
        if (answer.failure) {
          state_->log->warn("{} (resuming at byte {})", answer.failure->message, position_);
          error_ = asio::error::connection_reset;
          co_return BodyRead{0, error_};
        }
        if (!State::answers_range(*answer.parser, position_, to_)) {
          state_->log->warn("{}: the answer to a ranged GET is not the range asked for",
                            state_->describe(key_));
          error_ = http::error::bad_content_length;
          co_return BodyRead{0, error_};
        }
        connection_ = std::move(answer.connection);
        parser_ = std::move(answer.parser);
      }
      auto& body = parser_->get().body();
      body.data = out.data();
      body.size = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), to_ - position_));
      const std::size_t asked = body.size;
      error_code ec;
      co_await connection_->read_body(*parser_, state_->settings.timeout, ec);
      if (ec == http::error::need_buffer) ec = {};
      std::size_t got = asked - body.size;
      body.data = nullptr;
      body.size = 0;
      position_ += got;
      state_->metrics.bytes_received.add(got);
      if (ec) {
        state_->log->debug("{}: GET broke off at byte {}: {}", state_->describe(key_), position_,
                           ec.message());
        connection_.reset();
        if (got > 0) co_return BodyRead{got, {}};
        continue;
      }
      if (parser_->is_done()) {
        if (position_ != to_) {
          error_ = http::error::partial_message;
          connection_.reset();
          co_return got > 0 ? BodyRead{got, {}} : BodyRead{0, error_};
        }
        if (parser_->get().keep_alive()) state_->pool.put(std::move(connection_));
        connection_.reset();
      }
      if (got > 0) co_return BodyRead{got, {}};
    }
  }

 private:
  std::shared_ptr<State> state_;
  std::string key_;
  std::uint64_t position_;
  std::uint64_t to_;
  std::uint64_t size_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<UpstreamParser> parser_;
  unsigned resumes_left_;
  error_code error_;
};

namespace {

class EmptyReader final : public ObjectReader {
 public:
  asio::awaitable<BodyRead> read_some(std::span<std::uint8_t>) override { co_return BodyRead{}; }
  std::uint64_t size() const override { return 0; }
};

}  // namespace

std::string payload_sha256(Payload& payload, std::uint64_t offset, std::uint64_t length) {
  Digester digester("sha256");
  std::vector<std::uint8_t> buffer(
      static_cast<std::size_t>(std::min<std::uint64_t>(length, kPieceBytes)));
  for (std::uint64_t done = 0; done < length;) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), length - done));
    std::size_t n = payload.read(offset + done, std::span<std::uint8_t>(buffer.data(), want));
    if (n == 0) {
      throw std::system_error(std::make_error_code(std::errc::io_error), "the payload ended early");
    }
    digester.update(std::span<const std::uint8_t>(buffer.data(), n));
    done += n;
  }
  return digester.finish().substr(std::string_view("sha256:").size());
}

Client::Client(asio::io_context& io, ClientSettings settings, core::HostResolver& resolver,
               const core::Clock& clock, const core::WallClock& wall_clock, ClientMetrics& metrics)
    : state_(
          std::make_shared<State>(io, std::move(settings), resolver, clock, wall_clock, metrics)) {}

Client::~Client() { shutdown(); }

void Client::shutdown() {
  state_->stopping.store(true);
  state_->pool.shutdown();
}

std::string Client::describe(std::string_view key) const { return state_->describe(key); }

const ClientSettings& Client::settings() const { return state_->settings; }

asio::awaitable<Outcome> Client::put(std::string key, Payload& payload, std::uint64_t size,
                                     std::string sha256) {
  Request request;
  request.operation = Operation::put;
  request.method = http::verb::put;
  request.key = std::move(key);
  request.payload = &payload;
  request.payload_size = size;
  request.payload_hash = std::move(sha256);
  request.headers.push_back({"content-type", "application/octet-stream"});
  std::string ignored;
  co_return co_await State::exchange_for_body(state_, std::move(request), kMaxErrorBytes, ignored);
}

asio::awaitable<Outcome> Client::get(std::string key, std::uint64_t from, std::uint64_t to,
                                     std::unique_ptr<ObjectReader>& reader) {
  if (from >= to) {
    // S3 has no empty range to ask for; an empty range has no bytes to get.
    reader = std::make_unique<EmptyReader>();
    co_return std::nullopt;
  }
  Request request = State::get_request(key, from, to);
  Answer answer = co_await State::exchange(state_, request);
  if (answer.failure) co_return answer.failure;
  if (!State::answers_range(*answer.parser, from, to)) {
    co_return state_->failure(request, answer.parser->get().result_int(), "protocol",
                              "the answer is not the range asked for");
  }
  reader =
      std::make_unique<State::RangeReader>(state_, std::move(key), from, to, std::move(answer));
  co_return std::nullopt;
}

asio::awaitable<Outcome> Client::get_all(std::string key, std::size_t max_bytes,
                                         std::string& body) {
  Request request;
  request.operation = Operation::get;
  request.method = http::verb::get;
  request.key = std::move(key);
  co_return co_await State::exchange_for_body(state_, std::move(request), max_bytes, body);
}

asio::awaitable<Outcome> Client::remove(std::string key) {
  Request request;
  request.operation = Operation::remove;
  request.method = http::verb::delete_;
  request.key = std::move(key);
  std::string ignored;
  co_return co_await State::exchange_for_body(state_, std::move(request), kMaxErrorBytes, ignored);
}

asio::awaitable<Outcome> Client::remove_batch(std::vector<std::string> keys,
                                              std::vector<std::string>& failed) {
  failed.clear();
  if (keys.empty()) co_return std::nullopt;
  if (keys.size() > 1000) throw std::invalid_argument("remove_batch: more than 1000 keys");
  // Quiet: the answer lists only the keys that could not be deleted.
  std::string document = "<Delete><Quiet>true</Quiet>";
  for (const auto& key : keys) {
    document += "<Object><Key>" + xml_escape(state_->settings.prefix + key) + "</Key></Object>";
  }
  document += "</Delete>";
  MemoryPayload payload(document);
  Request request;
  request.operation = Operation::remove_batch;
  request.method = http::verb::post;
  request.bucket_level = true;
  request.query.push_back({"delete", ""});
  request.payload = &payload;
  request.payload_size = document.size();
  request.payload_hash = sha256_hex(document);
  request.headers.push_back({"content-md5", md5_base64(document)});
  request.headers.push_back({"content-type", "application/xml"});
  std::string body;
  auto outcome = co_await State::exchange_for_body(state_, request, kMaxResultBytes, body);
  if (outcome) co_return outcome;
  std::string error;
  auto result = parse_xml(body, error);
  if (!result || result->name != "DeleteResult") {
    co_return state_->failure(request, 200, "protocol",
                              "not a DeleteResult: " + (error.empty() ? result->name : error));
  }
  for (const auto& child : result->children) {
    if (child.name != "Error") continue;
    std::string key = child.text_of("Key");
    if (key.starts_with(state_->settings.prefix)) key.erase(0, state_->settings.prefix.size());
    state_->log->warn("{}: {} {}", state_->describe(key), child.text_of("Code"),
                      child.text_of("Message"));
    failed.push_back(std::move(key));
  }
  co_return std::nullopt;
}

asio::awaitable<Outcome> Client::list(std::string prefix, std::string after, Listing& page) {
  page = Listing{};
  Request request;
  request.operation = Operation::list;
  request.method = http::verb::get;
  request.bucket_level = true;
  request.query.push_back({"list-type", "2"});
  request.query.push_back({"max-keys", "1000"});
  request.query.push_back({"prefix", state_->settings.prefix + prefix});
  if (!after.empty()) request.query.push_back({"continuation-token", after});
  std::string body;
  auto outcome = co_await State::exchange_for_body(state_, request, kMaxResultBytes, body);
  if (outcome) co_return outcome;
  std::string error;
  auto result = parse_xml(body, error);
  if (!result || result->name != "ListBucketResult") {
    co_return state_->failure(request, 200, "protocol",
                              "not a ListBucketResult: " + (error.empty() ? result->name : error));
  }
  for (const auto& child : result->children) {
    if (child.name != "Contents") continue;
    std::string key = child.text_of("Key");
    auto size = parse_number(child.text_of("Size"));
    if (!key.starts_with(state_->settings.prefix) || !size) continue;
    page.objects.push_back({key.substr(state_->settings.prefix.size()), *size});
  }
  if (result->text_of("IsTruncated") == "true") {
    page.next = result->text_of("NextContinuationToken");
    if (page.next.empty()) {
      co_return state_->failure(request, 200, "protocol",
                                "a truncated listing without a continuation token");
    }
  }
  co_return std::nullopt;
}

asio::awaitable<Outcome> Client::upload(std::string key, Payload& payload, std::uint64_t size,
                                        std::string sha256) {
  const ClientSettings& settings = state_->settings;
  if (size < settings.single_put_limit) {
    co_return co_await put(std::move(key), payload, size, std::move(sha256));
  }
  std::uint64_t part_size = std::max(settings.part_size, (size + kMaxParts - 1) / kMaxParts);
  const std::uint64_t parts = (size + part_size - 1) / part_size;

  Request create;
  create.operation = Operation::create_upload;
  create.method = http::verb::post;
  create.key = key;
  create.query.push_back({"uploads", ""});
  create.payload_size = 0;
  std::string body;
  if (auto failed = co_await State::exchange_for_body(state_, create, kMaxErrorBytes, body)) {
    co_return failed;
  }
  std::string error;
  auto created = parse_xml(body, error);
  const std::string upload_id = created ? created->text_of("UploadId") : std::string();
  if (upload_id.empty()) {
    co_return state_->failure(create, 200, "protocol", "no UploadId in the answer " + error);
  }

  // The parts go parts_in_flight at a time, on one strand: the workers share `next` and the
  // results, and the last one to finish wakes the waiting coroutine.
  struct Shared {
    std::uint64_t next = 0;
    std::vector<std::string> etags;
    Outcome failure;
    unsigned running = 0;
  };
  auto shared = std::make_shared<Shared>();
  shared->etags.resize(parts);
  auto strand = asio::make_strand(state_->io);
  auto done = std::make_shared<asio::steady_timer>(strand, asio::steady_timer::time_point::max());
  auto worker = [](std::shared_ptr<State> state, std::shared_ptr<Shared> work, std::string object,
                   std::string id, Payload& source, std::uint64_t total, std::uint64_t part_bytes,
                   std::uint64_t count) -> asio::awaitable<void> {
    while (!work->failure && work->next < count) {
      const std::uint64_t index = work->next++;
      const std::uint64_t offset = index * part_bytes;
      const std::uint64_t length = std::min(part_bytes, total - offset);
      Request part;
      part.operation = Operation::upload_part;
      part.method = http::verb::put;
      part.key = object;
      part.query.push_back({"partNumber", std::to_string(index + 1)});
      part.query.push_back({"uploadId", id});
      part.payload = &source;
      part.payload_offset = offset;
      part.payload_size = length;
      try {
        part.payload_hash = payload_sha256(source, offset, length);
      } catch (const std::exception& e) {
        work->failure = state->failure(part, 0, "payload", e.what());
        co_return;
      }
      Answer answer = co_await State::exchange(state, part);
      if (answer.failure) {
        work->failure = answer.failure;
        co_return;
      }
      auto etag = answer.parser->get().find(http::field::etag);
      std::string ignored;
      error_code ec;
      co_await state->read_body(*answer.connection, *answer.parser, kMaxErrorBytes, ignored, ec);
      if (!ec && answer.parser->get().keep_alive()) state->pool.put(std::move(answer.connection));
      if (etag == answer.parser->get().end() || etag->value().empty()) {
        work->failure = state->failure(part, 200, "protocol", "no ETag for the part");
        co_return;
      }
      work->etags[index] = std::string(etag->value());
    }
  };
  co_await asio::co_spawn(
      strand,
      [&]() -> asio::awaitable<void> {
        const unsigned workers =
            static_cast<unsigned>(std::min<std::uint64_t>(settings.parts_in_flight, parts));
        shared->running = workers;
        for (unsigned i = 0; i < workers; ++i) {
          asio::co_spawn(strand,
                         worker(state_, shared, key, upload_id, payload, size, part_size, parts),
                         asio::bind_executor(strand, [shared, done](std::exception_ptr failed) {
                           if (failed && !shared->failure) {
                             Failure crash;
                             crash.operation = Operation::upload_part;
                             crash.code = "internal";
                             crash.message = "a part upload failed unexpectedly";
                             shared->failure = crash;
                           }
                           if (--shared->running == 0) done->cancel();
                         }));
        }
        // A worker that failed before its first wait has finished already.
        while (shared->running > 0) {
          error_code ignored;
          co_await done->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
      },
      asio::use_awaitable);

  Request finish;
  finish.method = http::verb::post;
  finish.key = key;
  finish.query.push_back({"uploadId", upload_id});
  Outcome outcome = shared->failure;
  if (!outcome) {
    std::string document = "<CompleteMultipartUpload>";
    for (std::uint64_t i = 0; i < parts; ++i) {
      document += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
                  xml_escape(shared->etags[i]) + "</ETag></Part>";
    }
    document += "</CompleteMultipartUpload>";
    MemoryPayload list(document);
    finish.operation = Operation::complete_upload;
    finish.payload = &list;
    finish.payload_size = document.size();
    finish.payload_hash = sha256_hex(document);
    finish.headers.push_back({"content-type", "application/xml"});
    body.clear();
    outcome = co_await State::exchange_for_body(state_, finish, kMaxErrorBytes, body);
    if (!outcome) {
      // S3 may answer 200 and still fail the completion: an Error document says so. (The
      // result's own name varies: Moto calls it CompleteMultipartUploadResponse.)
      auto result = parse_xml(body, error);
      if (!result) {
        outcome = state_->failure(finish, 200, "protocol", "unreadable answer: " + error);
      } else if (result->name == "Error") {
        std::string code = result->text_of("Code");
        outcome = state_->failure(finish, 200, code.empty() ? "InternalError" : code,
                                  result->text_of("Message"));
      }
    }
    finish.payload = nullptr;
    finish.headers.clear();
  }
  if (outcome) {
    // Parts left behind cost storage until a lifecycle rule removes them: abort.
    finish.operation = Operation::abort_upload;
    finish.method = http::verb::delete_;
    finish.payload_size = 0;
    finish.payload_hash = std::string(kEmptyPayloadHash);
    std::string ignored;
    if (auto aborted = co_await State::exchange_for_body(state_, finish, kMaxErrorBytes, ignored)) {
      state_->log->warn("aborting the upload of {}: {}", state_->describe(key), aborted->message);
    }
  }
  co_return outcome;
}

}  // namespace pullthrough::proxy::s3
