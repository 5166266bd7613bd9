#include "proxy/registry_proxy.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "core/logging.hpp"
#include "core/text.hpp"
#include "health/protocol.hpp"
#include "proxy/byte_range.hpp"
#include "proxy/direct_tls_writer.hpp"
#include "proxy/oci_error.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

using core::Counter;

constexpr std::string_view kApiVersion = "registry/2.0";
constexpr std::string_view kCacheHeader = "Pullthrough-Cache";
// What one read asks the TLS stream for while waiting for a request to start.
constexpr std::size_t kFirstReadBytes = 4096;

// Beast's parse errors: bytes that are not an HTTP request, or exceed a limit.
bool is_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

bool is_health_check(const http::request_header<>& request) {
  return request.method() == http::verb::get && request.target() == "/v2/" &&
         request[http::field::user_agent] == health::kHealthCheckUserAgent;
}

// The host part of a Host field value: "quay.io", "quay.io:443", "[::1]:443".
std::string host_of(std::string_view value) {
  if (!value.empty() && value.front() == '[') {
    auto close = value.find(']');
    return close == std::string_view::npos ? std::string()
                                           : core::ascii_lower(value.substr(1, close - 1));
  }
  return core::ascii_lower(value.substr(0, value.find(':')));
}

// Every Accept field of the request joined, as RFC 9110 5.3 allows.
std::string joined_accept(const http::request_header<>& header) {
  std::string out;
  auto [first, last] = header.equal_range(http::field::accept);
  for (auto it = first; it != last; ++it) {
    if (!out.empty()) out += ", ";
    out += std::string(it->value());
  }
  return out;
}

std::optional<std::string_view> range_field(const http::request_header<>& header) {
  auto found = header.find(http::field::range);
  if (found == header.end()) return std::nullopt;
  return std::string_view(found->value());
}

std::string field(const http::response_header<>& header, std::string_view name) {
  auto found = header.find(name);
  return found == header.end() ? std::string() : std::string(found->value());
}

}  // namespace

// One connection: the stream, the read buffer, and what the current request is.
class RegistryProxy::Session {
 public:
  Session(RegistryProxy& proxy, TlsConnection connection)
      : proxy_(proxy),
        parts_(proxy.parts_),
        limits_(proxy.limits_),
        counters_(*proxy.parts_.counters),
        connection_(std::move(connection)),
        stream_(*connection_.stream),
        tcp_(beast::get_lowest_layer(stream_)) {
    auto found = parts_.upstreams.find(connection_.registry);
    upstream_ = found == parts_.upstreams.end() ? nullptr : found->second;
  }

  asio::awaitable<void> run() {
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
      tcp_.expires_after(limits_.request_timeout);
      error_code ec = co_await skip_empty_lines();
      if (!ec) {
        co_await http::async_read_header(stream_, buffer_, parser,
                                         asio::redirect_error(asio::use_awaitable, ec));
      }
      if (ec) {
        co_await end_unread(ec);
        co_return;
      }
      const auto& request = parser.get();
      (is_health_check(request) ? counters_.health_checks : counters_.requests).add();
      version_ = request.version();
      keep_alive_ = request.keep_alive() && !connection_.stopping();
      head_request_ = request.method() == http::verb::head;
      if (!co_await handle(request, parser)) {
        // A write failed or timed out, or a transfer was cut off: the response is incomplete, and
        // a client that stopped reading would not take a close_notify either.
        abort_connection();
        co_return;
      }
      if (!keep_alive_) break;
    }
    co_await close_politely();
  }

 private:
  spdlog::logger& log() { return *proxy_.log_; }

  // False when the connection must be closed (an aborted transfer, a write that failed).
  asio::awaitable<bool> handle(const http::request_header<>& request,
                               const http::request_parser<http::empty_body>& parser) {
    if (request.version() < 11 && request.find(http::field::host) == request.end()) {
      // HTTP/1.0 without Host: the SNI alone names the registry.
    } else if (host_of(request[http::field::host]).empty()) {
      counters_.requests_rejected.add();
      keep_alive_ = false;
      co_return co_await send_error(OciError::not_found, "a Host field is required", 400);
    } else if (parts_.config->find_registry(host_of(request[http::field::host])) !=
               connection_.registry) {
      counters_.requests_rejected.add();
      keep_alive_ = false;
      co_return co_await send_error(OciError::misdirected,
                                    "this connection is for " + connection_.server_name + ", not " +
                                        std::string(request[http::field::host]));
    }
    if ((parser.content_length() && *parser.content_length() > 0) || parser.chunked()) {
      counters_.requests_rejected.add();
      keep_alive_ = false;
      // Named first: g++ 12 mis-handles a conditional that builds a temporary string inside a
      // co_await expression.
      bool push = request.method() != http::verb::get && request.method() != http::verb::head;
      OciError error = push ? OciError::unsupported : OciError::not_found;
      std::string message =
          push ? "push is not supported by this registry cache" : "pull requests have no body";
      unsigned status = push ? 405 : 400;
      co_return co_await send_error(error, std::move(message), status);
    }

    RouteResult routed = parse_route(request.target());
    if (!routed.route) {
      counters_.requests_rejected.add();
      co_return co_await send_error(oci_error_of(routed.error), routed.message,
                                    status_of(routed.error));
    }
    const Route& route = *routed.route;
    bool head = request.method() == http::verb::head;
    if (route.endpoint == ApiEndpoint::upload || (request.method() != http::verb::get && !head)) {
      counters_.requests_rejected.add();
      co_return co_await send_error(OciError::unsupported,
                                    "this registry cache serves pulls only (GET and HEAD); push "
                                    "is not supported");
    }
    if (upstream_ == nullptr) {
      co_return co_await send_error(OciError::not_found, "no upstream for this registry");
    }
    switch (route.endpoint) {
      case ApiEndpoint::base:
        co_return co_await send_base(head);
      case ApiEndpoint::manifest:
        co_return co_await serve_manifest(route, request, head);
      case ApiEndpoint::blob:
        co_return co_await serve_blob(route, request, head);
      case ApiEndpoint::tags_list:
      case ApiEndpoint::referrers:
        co_return co_await pass_through(route, request, head);
      case ApiEndpoint::upload:
        break;
    }
    co_return co_await send_error(OciError::not_found, "not a registry API path");
  }

  // --- responses --------------------------------------------------------------------------

  template <typename Body>
  void common_fields(http::response<Body>& response) {
    response.version(version_);
    response.keep_alive(keep_alive_);
    response.set(http::field::server, "pullthrough");
    response.set("Docker-Distribution-API-Version", kApiVersion);
  }

  template <typename Message>
  asio::awaitable<bool> write(Message& message) {
    error_code ec;
    tcp_.expires_after(limits_.write_timeout);
    co_await http::async_write(stream_, message, asio::redirect_error(asio::use_awaitable, ec));
    // Beast reports end_of_stream after writing a message that closes the connection.
    co_return !ec || ec == http::error::end_of_stream;
  }

  // `status` overrides the code's own status when set. A HEAD gets the header alone.
  asio::awaitable<bool> send_error(OciError error, std::string message, unsigned status = 0,
                                   std::string retry_after = {}) {
    http::response<http::string_body> response{
        static_cast<http::status>(status != 0 ? status : status_of(error)), version_};
    common_fields(response);
    response.set(http::field::content_type, "application/json");
    if (!retry_after.empty()) response.set(http::field::retry_after, retry_after);
    response.body() = error_body(error, message);
    response.prepare_payload();
    if (head_request_) response.body().clear();
    co_return co_await write(response);
  }

  asio::awaitable<bool> send_base(bool head) {
    http::response<http::string_body> response{http::status::ok, version_};
    common_fields(response);
    response.set(http::field::content_type, "application/json");
    if (parts_.storage != nullptr) {
      response.set(health::kStorageHeader, storage_header_value(parts_.storage->problem()));
    }
    if (parts_.leaving != nullptr && parts_.leaving->load(std::memory_order_relaxed)) {
      response.set(health::kLeavingHeader, health::kLeavingShutdown);
    }
    response.body() = "{}";
    response.prepare_payload();
    if (head) response.body().clear();
    co_return co_await write(response);
  }

  // --- manifests --------------------------------------------------------------------------

  asio::awaitable<bool> serve_manifest(const Route& route, const http::request_header<>& request,
                                       bool head) {
    ManifestRequest wanted;
    wanted.registry = connection_.registry;
    wanted.upstream = upstream_;
    wanted.repository = route.repository;
    wanted.reference = route.reference;
    wanted.by_digest = route.reference_is_digest;
    wanted.accept = joined_accept(request);
    wanted.want_body = !head;
    ManifestAnswer answer = co_await parts_.manifests->get(std::move(wanted));
    if (!answer.found) {
      if (answer.error == OciError::unavailable) counters_.upstream_unavailable.add();
      co_return co_await send_error(answer.error, answer.message, 0, answer.retry_after);
    }
    http::response<http::string_body> response{http::status::ok, version_};
    common_fields(response);
    response.set(http::field::content_type, answer.media_type);
    response.set("Docker-Content-Digest", answer.digest);
    response.set(http::field::etag, "\"" + answer.digest + "\"");
    response.set(kCacheHeader, answer.stale ? "stale" : "ok");
    response.body() = std::move(answer.body);
    response.content_length(answer.size);
    if (head) {
      http::response<http::empty_body> header{response.base()};
      header.content_length(answer.size);
      co_return co_await write_header_only(header);
    }
    co_return co_await write(response);
  }

  asio::awaitable<bool> write_header_only(http::response<http::empty_body>& header) {
    http::response_serializer<http::empty_body> serializer(header);
    error_code ec;
    tcp_.expires_after(limits_.write_timeout);
    co_await http::async_write_header(stream_, serializer,
                                      asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  // --- blobs ------------------------------------------------------------------------------

  http::response<http::empty_body> blob_header(http::status status, const std::string& digest,
                                               std::uint64_t length) {
    http::response<http::empty_body> header{status, version_};
    common_fields(header);
    header.set(http::field::content_type, "application/octet-stream");
    header.set("Docker-Content-Digest", digest);
    header.set(http::field::etag, "\"" + digest + "\"");
    header.set(http::field::accept_ranges, "bytes");
    header.content_length(length);
    return header;
  }

  asio::awaitable<bool> serve_blob(const Route& route, const http::request_header<>& request,
                                   bool head) {
    const std::string& digest = route.reference;
    const std::string& host = connection_.registry->host;
    auto size = parts_.store->size(digest);
    if (size && !parts_.index->linked(host, route.repository, digest)) {
      // Stored for another repository. Ask upstream whether this one has it too before serving
      // it here, so a cached layer never leaks past upstream's access control.
      size = co_await confirm_upstream_has(route);
    }
    if (size) {
      if (auto reader = parts_.store->open(digest)) {
        co_return co_await serve_stored(digest, *size, std::move(reader), request, head);
      }
    }
    counters_.blob_misses.add();
    if (head) co_return co_await head_upstream_blob(route);
    co_return co_await serve_fetch(route);
  }

  // Upstream's answer to HEAD of the blob `route` names, in `route.repository`.
  asio::awaitable<UpstreamResult> upstream_blob_head(const Route& route) {
    UpstreamRequest probe;
    probe.method = http::verb::head;
    probe.target = "/v2/" + route.repository + "/blobs/" + route.reference;
    probe.repository = route.repository;
    co_return co_await upstream_->send(std::move(probe));
  }

  // Returns the stored size when upstream confirms `route.repository` has the blob.
  asio::awaitable<std::optional<std::uint64_t>> confirm_upstream_has(const Route& route) {
    UpstreamResult result = co_await upstream_blob_head(route);
    if (!result.response || result.response->header.result_int() != 200) co_return std::nullopt;
    try {
      parts_.index->link(connection_.registry->host, route.repository, route.reference);
    } catch (const std::exception& e) {
      log().error("linking {}: {}", route.reference, e.what());
    }
    co_return parts_.store->size(route.reference);
  }

  asio::awaitable<bool> serve_stored(const std::string& digest, std::uint64_t size,
                                     std::unique_ptr<BlobReader> reader,
                                     const http::request_header<>& request, bool head) {
    counters_.blob_hits.add();
    proxy_.record_access(digest);
    RangeDecision range = decide_range(range_field(request), size);
    if (range.kind == RangeKind::unsatisfiable) {
      http::response<http::string_body> response{http::status::range_not_satisfiable, version_};
      common_fields(response);
      response.set(http::field::content_range, unsatisfied_content_range(size));
      response.set(http::field::content_type, "application/json");
      response.body() =
          error_body(OciError::range_invalid, "the requested range is outside the blob's " +
                                                  std::to_string(size) + " bytes");
      response.prepare_payload();
      co_return co_await write(response);
    }
    ByteRange bytes =
        range.kind == RangeKind::partial ? range.range : ByteRange{0, size == 0 ? 0 : size - 1};
    std::uint64_t length = size == 0 ? 0 : bytes.length();
    auto header = blob_header(
        range.kind == RangeKind::partial ? http::status::partial_content : http::status::ok, digest,
        length);
    if (range.kind == RangeKind::partial) {
      header.set(http::field::content_range, content_range(range.range, size));
    }
    header.set(kCacheHeader, "hit");
    if (!co_await write_header_only(header)) co_return false;
    if (head || length == 0) co_return true;
    co_return co_await send_file_range(*reader, bytes.first, bytes.first + length, nullptr);
  }

  // Sends [from, to) of the reader. With `fetch`, the bytes are still arriving: waits for them.
  asio::awaitable<bool> send_file_range(BlobReader& reader, std::uint64_t from, std::uint64_t to,
                                        BlobFetch* fetch) {
    if (chunk_.size() < limits_.chunk_bytes) chunk_.resize(limits_.chunk_bytes);
    Counter& sent = fetch != nullptr ? counters_.bytes_while_fetching : counters_.bytes_from_cache;
    // The header went out through Asio and that write completed, so the body may bypass it (with
    // its own write timeout: the stream's would not see these writes).
    tcp_.expires_never();
    DirectTlsWriter direct(stream_);
    StreamSink sink = [this, &sent,
                       &direct](std::span<const std::uint8_t> bytes) -> asio::awaitable<bool> {
      error_code ec;
      if (direct.usable()) {
        ec = co_await direct.write(bytes, limits_.write_timeout);
      } else {
        tcp_.expires_after(limits_.write_timeout);
        co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(asio::use_awaitable, ec));
      }
      if (!ec) sent.add(bytes.size());
      co_return !ec;
    };
    StreamStatus status = co_await stream_range(reader, from, to, chunk_, sink, fetch);
    switch (status) {
      case StreamStatus::complete:
        co_return true;
      case StreamStatus::sink_failed:
        counters_.client_disconnects.add();
        co_return false;
      case StreamStatus::fetch_failed:
        log().warn("{}: cutting off a transfer of {}: {}", connection_.peer.to_string(),
                   fetch->digest(), fetch->progress().failure.message);
        break;
      case StreamStatus::read_failed:
        log().error("{}: the store could not read back a blob; cutting off the transfer",
                    connection_.peer.to_string());
        break;
    }
    counters_.transfers_aborted.add();
    abort_connection();
    co_return false;
  }

  asio::awaitable<bool> serve_fetch(const Route& route) {
    auto joined = parts_.fetches->join(route.reference, connection_.registry->host,
                                       route.repository, *upstream_);
    BlobFetch& fetch = *joined.fetch;
    FetchProgress progress = fetch.progress();
    // The size is known once streaming; without an announced size, wait for the verified end.
    while (progress.state == FetchState::connecting ||
           (progress.state == FetchState::streaming && !progress.size)) {
      progress = co_await fetch.wait_past(progress);
    }
    if (progress.state == FetchState::failed)
      co_return co_await send_fetch_failure(route, progress);
    auto reader = fetch.reader();
    if (!reader) co_return co_await send_fetch_failure(route, progress);
    std::uint64_t size = progress.size ? *progress.size : progress.written;
    auto header = blob_header(http::status::ok, route.reference, size);
    header.set(kCacheHeader, joined.coalesced ? "coalesced" : "miss");
    if (!co_await write_header_only(header)) co_return false;
    if (size == 0) {
      // Nothing to hold back for a zero-length blob: wait for the verdict before ending.
      while (progress.state == FetchState::streaming) progress = co_await fetch.wait_past(progress);
      if (progress.state != FetchState::stored) {
        counters_.transfers_aborted.add();
        abort_connection();
        co_return false;
      }
      co_return true;
    }
    co_return co_await send_file_range(*reader, 0, size, &fetch);
  }

  asio::awaitable<bool> send_fetch_failure(const Route& route, const FetchProgress& progress) {
    const FetchFailure& failure = progress.failure;
    const std::string what =
        connection_.registry->host + "/" + route.repository + "@" + route.reference;
    switch (failure.kind) {
      case FetchFailure::Kind::upstream_status:
        if (failure.status == 404) {
          co_return co_await send_error(OciError::blob_unknown,
                                        "blob " + what + " is not known upstream");
        }
        if (failure.status == 401) {
          co_return co_await send_error(
              OciError::unauthorized,
              "upstream refused the appliance's credentials for " + route.repository);
        }
        if (failure.status == 403) {
          co_return co_await send_error(OciError::denied,
                                        "upstream denied access to " + route.repository);
        }
        if (failure.status == 429) {
          co_return co_await send_error(OciError::too_many_requests,
                                        "upstream is rate limiting the appliance");
        }
        if (failure.status >= 500) break;
        co_return co_await send_error(OciError::upstream_error,
                                      "fetching " + what + ": " + failure.message);
      case FetchFailure::Kind::digest_mismatch:
      case FetchFailure::Kind::size_mismatch:
        co_return co_await send_error(OciError::upstream_error,
                                      "fetching " + what + ": " + failure.message);
      case FetchFailure::Kind::storage:
        co_return co_await send_error(OciError::unavailable,
                                      "the cache cannot store " + what + " right now", 503);
      case FetchFailure::Kind::upstream_failed:
      case FetchFailure::Kind::stopped:
        break;
    }
    counters_.upstream_unavailable.add();
    co_return co_await send_error(OciError::unavailable,
                                  "the registry cache has no copy of " + what +
                                      " and upstream cannot be reached (" + failure.message + ")");
  }

  asio::awaitable<bool> head_upstream_blob(const Route& route) {
    UpstreamResult result = co_await upstream_blob_head(route);
    if (!result.response) {
      counters_.upstream_unavailable.add();
      co_return co_await send_error(OciError::unavailable,
                                    "upstream cannot be reached: " + result.error);
    }
    unsigned status = result.response->header.result_int();
    if (status != 200) {
      co_return co_await send_error(
          status == 404 ? OciError::blob_unknown : OciError::upstream_error,
          "upstream answered " + std::to_string(status), status);
    }
    auto length = field(result.response->header, "Content-Length");
    http::response<http::empty_body> header{http::status::ok, version_};
    common_fields(header);
    header.set(http::field::content_type, "application/octet-stream");
    header.set("Docker-Content-Digest", route.reference);
    header.set(http::field::accept_ranges, "bytes");
    header.set(kCacheHeader, "miss");
    if (!length.empty()) header.set(http::field::content_length, length);
    co_return co_await write_header_only(header);
  }

  // --- tags/list and referrers ------------------------------------------------------------

  asio::awaitable<bool> pass_through(const Route& route, const http::request_header<>& request,
                                     bool head) {
    counters_.passthrough_requests.add();
    // The path passed parse_route; the query (n, last, artifactType) goes upstream as sent.
    std::string_view target = request.target();
    UpstreamRequest forward;
    forward.method = head ? http::verb::head : http::verb::get;
    forward.target = std::string(target);
    forward.repository = route.repository;
    forward.accept = joined_accept(request);
    UpstreamResult result = co_await upstream_->send(std::move(forward));
    if (!result.response) {
      counters_.upstream_unavailable.add();
      co_return co_await send_error(OciError::unavailable,
                                    "upstream cannot be reached: " + result.error);
    }
    auto& upstream_response = *result.response;
    http::response<http::string_body> response{upstream_response.header.result(), version_};
    common_fields(response);
    for (std::string_view name : {"Content-Type", "Link", "OCI-Filters-Applied"}) {
      auto value = field(upstream_response.header, name);
      if (!value.empty()) response.set(name, value);
    }
    if (upstream_response.body && !head) {
      std::array<std::uint8_t, std::size_t{16} * 1024> chunk{};
      for (;;) {
        BodyRead read = co_await upstream_response.body->read_some(chunk);
        if (read.error) {
          co_return co_await send_error(OciError::upstream_error,
                                        "upstream response broke off: " + read.error.message());
        }
        if (read.bytes == 0) break;
        if (response.body().size() + read.bytes > limits_.max_passthrough_bytes) {
          co_return co_await send_error(OciError::upstream_error,
                                        "upstream response exceeds the size limit");
        }
        response.body().append(reinterpret_cast<const char*>(chunk.data()), read.bytes);
      }
    }
    response.prepare_payload();
    co_return co_await write(response);
  }

  // --- closing ----------------------------------------------------------------------------

  // RFC 9112 2.2: a server SHOULD ignore empty lines received before a request line. Reads until
  // the buffer starts with some other byte; the empty lines count against the header limit.
  asio::awaitable<error_code> skip_empty_lines() {
    std::size_t skipped = 0;
    for (;;) {
      auto bytes = buffer_.cdata();
      const auto* data = static_cast<const char*>(bytes.data());
      std::size_t n = 0;
      while (n < bytes.size() && (data[n] == '\r' || data[n] == '\n')) ++n;
      buffer_.consume(n);
      skipped += n;
      if (buffer_.size() != 0) co_return error_code{};
      if (skipped > limits_.max_header_bytes) co_return http::error::header_limit;
      error_code ec;
      std::size_t read = co_await stream_.async_read_some(
          buffer_.prepare(kFirstReadBytes), asio::redirect_error(asio::use_awaitable, ec));
      buffer_.commit(read);
      // The TLS stream reports the client's close_notify as eof; Beast's parser, end_of_stream.
      if (ec == asio::error::eof) co_return http::error::end_of_stream;
      if (ec) co_return ec;
    }
  }

  // Ends a connection whose next request could not be read.
  asio::awaitable<void> end_unread(const error_code& ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      // The client sent close_notify, between requests or in the middle of one: answer it, so
      // that neither side sees the connection cut off while the other is still reading.
      co_await close_politely();
      co_return;
    }
    if (is_parse_error(ec)) {
      // Not HTTP, or too much of it: say so once, then close.
      counters_.requests_rejected.add();
      version_ = 11;
      head_request_ = false;
      keep_alive_ = false;
      bool too_large = ec == http::error::header_limit;
      bool written = co_await send_error(
          OciError::not_found, too_large ? "request header too large" : "malformed request",
          too_large ? 431 : 400);
      if (written) co_await close_politely();
      co_return;
    }
    // A timeout, a reset, or TCP closed without close_notify: nothing to answer.
    if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
        ec != asio::ssl::error::stream_truncated) {
      log().debug("{}: request not read: {}", connection_.peer.to_string(), ec.message());
    }
  }

  // No close_notify, so the client sees a transfer cut short rather than a complete response.
  // A reset, not a FIN: a FIN would wait behind the unsent bytes, which a client that stopped
  // reading never takes, so the kernel would keep the orphaned socket and up to its whole send
  // buffer for minutes, and the client would not learn that the transfer broke.
  void abort_connection() {
    error_code ignored;
    tcp_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    tcp_.socket().close(ignored);
  }

  asio::awaitable<void> close_politely() {
    error_code ec;
    tcp_.expires_after(std::chrono::seconds(5));
    co_await stream_.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  }

  RegistryProxy& proxy_;
  const RegistryProxyParts& parts_;
  const RegistryProxyLimits& limits_;
  RegistryCounters& counters_;
  TlsConnection connection_;
  TlsStream& stream_;
  beast::tcp_stream& tcp_;
  RegistryUpstream* upstream_ = nullptr;
  beast::flat_buffer buffer_;
  std::vector<std::uint8_t> chunk_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
};

RegistryProxy::RegistryProxy(RegistryProxyParts parts, RegistryProxyLimits limits)
    : parts_(std::move(parts)), limits_(limits), log_(core::logger("proxy")) {}

void RegistryProxy::record_access(const std::string& digest) {
  UnixSeconds now = unix_seconds(*parts_.clock);
  {
    std::lock_guard lock(access_mutex_);
    auto [it, inserted] = last_recorded_.try_emplace(digest, now);
    if (!inserted) {
      if (now >= it->second && now - it->second < kAccessGranularity.count()) return;
      it->second = now;
    }
    if (last_recorded_.size() > kMaxAccessEntries) last_recorded_.clear();
  }
  try {
    parts_.index->touch_blob(digest, now);
  } catch (const std::exception& e) {
    log_->error("recording access to {}: {}", digest, e.what());
  }
}

asio::awaitable<void> RegistryProxy::serve(TlsConnection connection) {
  Session session(*this, std::move(connection));
  co_await session.run();
}

}  // namespace pullthrough::proxy
