#include "proxy/api/blob_handler.hpp"

#include <optional>
#include <string>
#include <string_view>

#include "proxy/api/manifest_handler.hpp"
#include "proxy/byte_range.hpp"

namespace pullthrough::proxy {
namespace {

std::optional<std::string_view> range_field(const http::request_header<>& header) {
  auto found = header.find(http::field::range);
  if (found == header.end()) return std::nullopt;
  return std::string_view(found->value());
}

std::string field(const http::response_header<>& header, std::string_view name) {
  auto found = header.find(name);
  return found == header.end() ? std::string() : std::string(found->value());
}

http::response<http::empty_body> blob_header(const HttpSession& session, http::status status,
                                             const std::string& digest) {
  auto header = session.header_response(status);
  header.set(http::field::content_type, "application/octet-stream");
  header.set("Docker-Content-Digest", digest);
  header.set(http::field::etag, "\"" + digest + "\"");
  header.set(http::field::accept_ranges, "bytes");
  return header;
}

}  // namespace

asio::awaitable<bool> BlobHandler::serve(HttpSession& session, const ApiRequest& request) {
  const Route& route = request.route;
  auto copy = co_await blobs_.find(request.registry, route.repository, route.reference,
                                   request.upstream, request.credentials);
  if (copy) co_return co_await serve_stored(session, request, std::move(*copy));
  counters_.blob_misses.add();
  if (request.head) co_return co_await head_upstream(session, request);
  co_return co_await serve_fetch(session, request);
}

asio::awaitable<bool> BlobHandler::serve_stored(HttpSession& session, const ApiRequest& request,
                                                CachedBlobs::Copy copy) {
  const std::uint64_t size = copy.size;
  RangeDecision range = decide_range(range_field(request.header), size);
  if (range.kind == RangeKind::unsatisfiable) {
    auto response = session.response(http::status::range_not_satisfiable);
    response.set(http::field::content_range, unsatisfied_content_range(size));
    response.set(http::field::content_type, "application/json");
    response.body() =
        error_body(OciError::range_invalid,
                   "the requested range is outside the blob's " + std::to_string(size) + " bytes");
    response.prepare_payload();
    co_return co_await session.write(response);
  }
  bool partial = range.kind == RangeKind::partial;
  ByteRange bytes = partial ? range.range : ByteRange{0, size == 0 ? 0 : size - 1};
  std::uint64_t length = size == 0 ? 0 : bytes.length();
  // Opened before the answer starts: a copy the store has lost is fetched instead.
  std::unique_ptr<BlobStream> stream;
  if (!request.head && length > 0) {
    stream = co_await blobs_.read(request.route.reference, bytes.first, bytes.first + length);
    if (!stream) {
      copy.use = {};
      counters_.blob_misses.add();
      co_return co_await serve_fetch(session, request);
    }
  }
  counters_.blob_hits.add();
  auto header = blob_header(session, partial ? http::status::partial_content : http::status::ok,
                            request.route.reference);
  header.content_length(length);
  if (partial) header.set(http::field::content_range, content_range(range.range, size));
  header.set(kCacheHeader, "hit");
  if (!co_await session.write_header(header)) co_return false;
  if (!stream) co_return true;
  auto status = co_await session.send_stored(*stream, length, counters_.bytes_from_cache);
  co_return finished(session, status, nullptr);
}

asio::awaitable<bool> BlobHandler::serve_fetch(HttpSession& session, const ApiRequest& request) {
  const Route& route = request.route;
  auto joined = blobs_.fetch(request.registry, route.repository, route.reference, request.upstream,
                             request.credentials);
  BlobFetch& fetch = *joined.fetch;
  FetchProgress progress = fetch.progress();
  // The size is known once streaming; without an announced size, wait for the verified end.
  while (progress.state == FetchState::connecting ||
         (progress.state == FetchState::streaming && !progress.size)) {
    progress = co_await fetch.wait_past(progress);
  }
  if (progress.state == FetchState::failed) {
    co_return co_await send_fetch_failure(session, request, progress);
  }
  auto reader = fetch.reader();
  if (!reader) co_return co_await send_fetch_failure(session, request, progress);
  std::uint64_t size = progress.size ? *progress.size : progress.written;
  auto header = blob_header(session, http::status::ok, route.reference);
  header.content_length(size);
  header.set(kCacheHeader, joined.coalesced ? "coalesced" : "miss");
  if (!co_await session.write_header(header)) co_return false;
  if (size == 0) {
    // Nothing to hold back for a zero-length blob: wait for the verdict before ending.
    while (progress.state == FetchState::streaming) progress = co_await fetch.wait_past(progress);
    if (progress.state != FetchState::stored) {
      counters_.transfers_aborted.add();
      co_return false;
    }
    co_return true;
  }
  auto status =
      co_await session.send_body(*reader, 0, size, &fetch, counters_.bytes_while_fetching);
  co_return finished(session, status, &fetch);
}

bool BlobHandler::finished(HttpSession& session, StreamStatus status, BlobFetch* fetch) {
  switch (status) {
    case StreamStatus::complete:
      return true;
    case StreamStatus::sink_failed:
      counters_.client_disconnects.add();
      return false;
    case StreamStatus::fetch_failed:
      log_.warn("{}: cutting off a transfer of {}: {}", session.connection().peer.to_string(),
                fetch->digest(), fetch->progress().failure.message);
      break;
    case StreamStatus::read_failed:
      log_.error("{}: the store could not read back a blob; cutting off the transfer",
                 session.connection().peer.to_string());
      break;
  }
  counters_.transfers_aborted.add();
  return false;
}

asio::awaitable<bool> BlobHandler::send_fetch_failure(HttpSession& session,
                                                      const ApiRequest& request,
                                                      const FetchProgress& progress) {
  const FetchFailure& failure = progress.failure;
  const Route& route = request.route;
  const std::string what = request.registry.host + "/" + route.repository + "@" + route.reference;
  switch (failure.kind) {
    case FetchFailure::Kind::upstream_status:
      if (failure.status == 404) {
        co_return co_await session.send_error(OciError::blob_unknown,
                                              "blob " + what + " is not known upstream");
      }
      if (failure.status == 401 && request.credentials.auth == UpstreamAuth::client) {
        co_return co_await send_client_refused(
            session, request, access_,
            "upstream refused this client's credentials for " + route.repository);
      }
      if (failure.status == 401) {
        co_return co_await session.send_error(
            OciError::unauthorized,
            std::string("upstream refused ") +
                (request.credentials.auth == UpstreamAuth::client ? "this client's credentials"
                                                                  : "the appliance's credentials") +
                " for " + route.repository);
      }
      if (failure.status == 403) {
        co_return co_await session.send_error(OciError::denied,
                                              "upstream denied access to " + route.repository);
      }
      if (failure.status == 429) {
        co_return co_await session.send_error(OciError::too_many_requests,
                                              "upstream is rate limiting the appliance");
      }
      if (failure.status >= 500) break;
      co_return co_await session.send_error(OciError::upstream_error,
                                            "fetching " + what + ": " + failure.message);
    case FetchFailure::Kind::digest_mismatch:
    case FetchFailure::Kind::size_mismatch:
      co_return co_await session.send_error(OciError::upstream_error,
                                            "fetching " + what + ": " + failure.message);
    case FetchFailure::Kind::storage:
      co_return co_await session.send_error(OciError::unavailable,
                                            "the cache cannot store " + what + " right now", 503);
    case FetchFailure::Kind::upstream_failed:
    case FetchFailure::Kind::stopped:
      break;
  }
  counters_.upstream_unavailable.add();
  co_return co_await session.send_error(
      OciError::unavailable, "the registry cache has no copy of " + what +
                                 " and upstream cannot be reached (" + failure.message + ")");
}

asio::awaitable<bool> BlobHandler::head_upstream(HttpSession& session, const ApiRequest& request) {
  const Route& route = request.route;
  UpstreamResult result = co_await head_upstream_blob(request.upstream, route.repository,
                                                      route.reference, request.credentials);
  if (!result.response) {
    counters_.upstream_unavailable.add();
    co_return co_await session.send_error(OciError::unavailable,
                                          "upstream cannot be reached: " + result.error);
  }
  unsigned status = result.response->header.result_int();
  if (status != 200) {
    co_return co_await session.send_error(
        status == 404 ? OciError::blob_unknown : OciError::upstream_error,
        "upstream answered " + std::to_string(status), status);
  }
  auto length = field(result.response->header, "Content-Length");
  auto header = session.header_response(http::status::ok);
  header.set(http::field::content_type, "application/octet-stream");
  header.set("Docker-Content-Digest", route.reference);
  header.set(http::field::accept_ranges, "bytes");
  header.set(kCacheHeader, "miss");
  if (!length.empty()) header.set(http::field::content_length, length);
  co_return co_await session.write_header(header);
}

}  // namespace pullthrough::proxy
