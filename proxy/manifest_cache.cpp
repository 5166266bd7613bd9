#include "proxy/manifest_cache.hpp"

#include <array>
#include <chrono>
#include <span>
#include <system_error>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/logging.hpp"
#include "proxy/digester.hpp"
#include "proxy/media_types.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

const std::array<std::string_view, 4> kManifestTypes = {kOciIndex, kDockerList, kOciManifest,
                                                        kDockerManifest};

// The Accept to send upstream for a client's request: the full list when the client takes every
// manifest type (then the answer is the canonical one for the tag and may be cached as the tag's
// mapping), else the client's own.
std::string upstream_accept_for(std::string_view client_accept) {
  for (auto type : kManifestTypes) {
    if (!accepts(client_accept, type)) return std::string(client_accept);
  }
  return std::string(upstream_accept());
}

std::string field(const http::response_header<>& header, std::string_view name) {
  auto found = header.find(name);
  return found == header.end() ? std::string() : std::string(found->value());
}

// Reads a whole body, refusing one longer than `limit`. Empty optional with `error` set when the
// body broke off or was too long.
asio::awaitable<std::optional<std::string>> read_body(UpstreamBody& body, std::size_t limit,
                                                      std::string& error) {
  if (auto length = body.content_length(); length && *length > limit) {
    error = "manifest of " + std::to_string(*length) + " bytes exceeds the limit of " +
            std::to_string(limit);
    co_return std::nullopt;
  }
  std::string out;
  std::array<std::uint8_t, std::size_t{16} * 1024> buffer{};
  for (;;) {
    BodyRead read = co_await body.read_some(buffer);
    if (read.error) {
      error = "body broke off: " + read.error.message();
      co_return std::nullopt;
    }
    if (read.bytes == 0) co_return out;
    if (out.size() + read.bytes > limit) {
      error = "manifest exceeds the limit of " + std::to_string(limit) + " bytes";
      co_return std::nullopt;
    }
    out.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
  }
}

bool retryable_status(unsigned status) { return status >= 500 || status == 429; }

std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace

struct ManifestCache::Cached {
  std::string media_type;
  std::uint64_t size = 0;
  std::string body;
};

ManifestCache::ManifestCache(BlobStore& store, MetadataIndex& index, const core::WallClock& clock,
                             asio::any_io_executor disk, ManifestCounters& counters)
    : store_(store),
      index_(index),
      clock_(clock),
      disk_(std::move(disk)),
      counters_(counters),
      log_(core::logger("proxy")) {}

std::int64_t ManifestCache::now_seconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
}

std::optional<ManifestCache::Cached> ManifestCache::cached(const std::string& digest,
                                                           bool want_body) {
  auto record = index_.manifest(digest);
  if (!record) return std::nullopt;
  auto stored_size = store_.size(digest);
  if (!stored_size || *stored_size != record->size || record->size > kMaxManifestBytes) {
    return std::nullopt;
  }
  Cached out{record->media_type, record->size, {}};
  if (!want_body) return out;
  auto reader = store_.open(digest);
  if (!reader) return std::nullopt;
  out.body.resize(record->size);
  std::uint64_t offset = 0;
  while (offset < record->size) {
    auto n = reader->read(
        offset, std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(out.body.data()) + offset,
                                        record->size - offset));
    if (n == 0) return std::nullopt;
    offset += n;
  }
  return out;
}

asio::awaitable<ManifestAnswer> ManifestCache::answer_cached(const ManifestRequest& request,
                                                             const std::string& digest,
                                                             bool stale) {
  ManifestAnswer answer;
  std::optional<Cached> hit;
  try {
    hit = cached(digest, request.want_body);
  } catch (const std::exception& e) {
    log_->error("reading cached manifest {}: {}", digest, e.what());
  }
  if (!hit) {
    // Vanished between the lookup and the read (removed by retention): go upstream instead.
    co_return co_await fetch(request, upstream_accept_for(request.accept));
  }
  answer.found = true;
  answer.digest = digest;
  answer.media_type = std::move(hit->media_type);
  answer.size = hit->size;
  answer.body = std::move(hit->body);
  answer.stale = stale;
  if (stale) {
    counters_.stale_tags_served.add();
  } else {
    counters_.manifest_hits.add();
  }
  co_return answer;
}

asio::awaitable<ManifestAnswer> ManifestCache::get(ManifestRequest request) {
  const std::string& host = request.registry->host;
  if (request.by_digest) {
    if (index_.linked(host, request.repository, request.reference) &&
        index_.manifest(request.reference)) {
      co_return co_await answer_cached(request, request.reference, false);
    }
    co_return co_await fetch(request, upstream_accept_for(request.accept));
  }

  auto tag = index_.tag(host, request.repository, request.reference);
  bool usable = false;
  if (tag) {
    auto record = index_.manifest(tag->digest);
    usable = record && accepts(request.accept, record->media_type) &&
             store_.size(tag->digest).has_value();
  }
  if (!usable) {
    ManifestAnswer answer = co_await fetch(request, upstream_accept_for(request.accept));
    if (!answer.found && answer.error == OciError::unavailable && tag) {
      // Upstream is down and the cached mapping is of a type this client cannot take: there is
      // nothing better to say than the 503.
      log_->warn("{}/{}:{}: upstream unavailable and the cached manifest does not suit Accept",
                 host, request.repository, request.reference);
    }
    co_return answer;
  }

  auto age = std::chrono::seconds(now_seconds() - tag->confirmed_at);
  if (age >= std::chrono::seconds(0) && age < request.registry->manifest_ttl) {
    co_return co_await answer_cached(request, tag->digest, false);
  }

  counters_.tag_revalidations.add();
  UpstreamRequest head;
  head.method = http::verb::head;
  head.target = "/v2/" + request.repository + "/manifests/" + request.reference;
  head.repository = request.repository;
  head.accept = std::string(upstream_accept());
  UpstreamResult result = co_await request.upstream->send(std::move(head));
  std::string why;
  if (!result.response) {
    why = std::string(to_string(result.failure)) + ": " + result.error;
  } else {
    unsigned status = result.response->header.result_int();
    if (status == 200) {
      std::string digest = field(result.response->header, "Docker-Content-Digest");
      if (digest == tag->digest) {
        counters_.tag_revalidations_unchanged.add();
        try {
          index_.put_tag(host, request.repository, request.reference, digest, now_seconds());
        } catch (const std::exception& e) {
          log_->error("recording tag {}/{}:{}: {}", host, request.repository, request.reference,
                      e.what());
        }
        co_return co_await answer_cached(request, digest, false);
      }
      // Moved (or upstream did not say): fetch what it names now.
      ManifestAnswer answer = co_await fetch(request, upstream_accept());
      if (answer.found || answer.error != OciError::unavailable) co_return answer;
      why = answer.message;
    } else if (retryable_status(status)) {
      why = "upstream answered " + std::to_string(status);
    } else {
      // A definite answer (the tag is gone, access is refused): pass it on rather than serve a
      // mapping upstream has withdrawn.
      co_return co_await fetch(request, upstream_accept());
    }
  }
  log_->warn("{}/{}:{}: serving the cached mapping to {} (confirmed {} s ago): {}", host,
             request.repository, request.reference, tag->digest, age.count(), why);
  co_return co_await answer_cached(request, tag->digest, true);
}

asio::awaitable<ManifestAnswer> ManifestCache::fetch(const ManifestRequest& request,
                                                     std::string_view accept) {
  const std::string& host = request.registry->host;
  const std::string what =
      host + "/" + request.repository + (request.by_digest ? "@" : ":") + request.reference;
  ManifestAnswer answer;
  UpstreamRequest get;
  get.method = http::verb::get;
  get.target = "/v2/" + request.repository + "/manifests/" + request.reference;
  get.repository = request.repository;
  get.accept = std::string(accept);
  UpstreamResult result = co_await request.upstream->send(std::move(get));
  if (!result.response) {
    counters_.manifests_unavailable.add();
    answer.error = OciError::unavailable;
    answer.message = "the registry cache has no copy of " + what + " and upstream " + host +
                     " cannot be reached (" + std::string(to_string(result.failure)) + ": " +
                     result.error + ")";
    co_return answer;
  }
  UpstreamResponse& response = *result.response;
  unsigned status = response.header.result_int();
  if (status != 200) {
    answer.retry_after = field(response.header, "Retry-After");
    if (status == 404) {
      answer.error = OciError::manifest_unknown;
      answer.message = "manifest " + what + " is not known upstream";
    } else if (status == 401) {
      answer.error = OciError::unauthorized;
      answer.message =
          "upstream " + host + " refused the appliance's credentials for " + request.repository;
    } else if (status == 403) {
      answer.error = OciError::denied;
      answer.message = "upstream " + host + " denied access to " + request.repository;
    } else if (status == 429) {
      answer.error = OciError::too_many_requests;
      answer.message = "upstream " + host + " is rate limiting the appliance";
    } else if (retryable_status(status)) {
      counters_.manifests_unavailable.add();
      answer.error = OciError::unavailable;
      answer.message = "the registry cache has no copy of " + what + " and upstream " + host +
                       " answered " + std::to_string(status);
    } else {
      answer.error = OciError::upstream_error;
      answer.message = "upstream " + host + " answered " + std::to_string(status) + " for " + what;
    }
    co_return answer;
  }

  std::string error;
  std::optional<std::string> body;
  if (response.body) {
    body = co_await read_body(*response.body, kMaxManifestBytes, error);
  } else {
    body = std::string();
  }
  if (!body) {
    answer.error = OciError::upstream_error;
    answer.message = "manifest " + what + " from upstream: " + error;
    co_return answer;
  }
  std::string media_type = media_type_of(field(response.header, "Content-Type"));
  if (media_type.empty()) {
    answer.error = OciError::upstream_error;
    answer.message = "upstream sent manifest " + what + " without a Content-Type";
    co_return answer;
  }
  std::string claimed = field(response.header, "Docker-Content-Digest");
  if (!claimed.empty() && check_digest(claimed) != DigestStatus::ok) claimed.clear();
  std::string algorithm = request.by_digest  ? std::string(digest_algorithm(request.reference))
                          : !claimed.empty() ? std::string(digest_algorithm(claimed))
                                             : std::string("sha256");
  Digester digester(algorithm);
  digester.update(bytes_of(*body));
  std::string digest = digester.finish();
  std::string_view expected = request.by_digest ? std::string_view(request.reference) : claimed;
  if (!expected.empty() && digest != expected) {
    counters_.manifest_digest_mismatches.add();
    log_->error("manifest {} from {}: bytes hash to {}, not {}: not stored", what, response.url,
                digest, expected);
    answer.error = OciError::upstream_error;
    answer.message = "upstream sent a manifest for " + what + " whose digest is " + digest +
                     ", not " + std::string(expected);
    co_return answer;
  }

  // Verified: keep it. A failure to store costs the cache, not this client.
  try {
    if (!store_.size(digest)) {
      auto writer = store_.create(digest, body->size());
      writer->write(bytes_of(*body));
      CommitResult commit = co_await asio::co_spawn(
          disk_, [&writer]() -> asio::awaitable<CommitResult> { co_return writer->commit(); },
          asio::use_awaitable);
      if (commit.status != CommitStatus::stored) {
        throw std::runtime_error("commit failed: " + commit.error + commit.actual_digest);
      }
    }
    index_.put_manifest(digest, media_type, body->size());
    index_.link(host, request.repository, digest);
    if (!request.by_digest && accept == upstream_accept()) {
      index_.put_tag(host, request.repository, request.reference, digest, now_seconds());
    }
  } catch (const std::exception& e) {
    log_->error("caching manifest {} ({}): {}", what, digest, e.what());
  }
  counters_.manifest_misses.add();
  answer.found = true;
  answer.digest = std::move(digest);
  answer.media_type = std::move(media_type);
  answer.size = body->size();
  if (request.want_body) answer.body = std::move(*body);
  co_return answer;
}

}  // namespace pullthrough::proxy
