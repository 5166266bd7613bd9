#include "proxy/manifest_cache.hpp"

#include "core/asio.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <span>
#include <system_error>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/logging.hpp"
#include "core/thread_priority.hpp"
#include "proxy/digester.hpp"
#include "proxy/lifecycle/manifest_references.hpp"
#include "proxy/media_types.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

// The Accept to send upstream for a client's request: the full list when the client takes every
// manifest type (then the answer is the canonical one for the tag), else the client's own. Either
// way the answer is cached as the tag's mapping for the manifest types that Accept admits.
std::string upstream_accept_for(std::string_view client_accept) {
  if (accepted_manifest_types(client_accept) == kAllManifestTypes) {
    return std::string(upstream_accept());
  }
  return std::string(client_accept);
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

ManifestCache::ManifestCache(BlobStore& store, MetadataIndex& index, AccessRecorder& recorder,
                             ContentGuard& guard, const core::WallClock& clock,
                             asio::any_io_executor disk, ManifestCounters& counters)
    : store_(store),
      index_(index),
      recorder_(recorder),
      guard_(guard),
      clock_(clock),
      disk_(std::move(disk)),
      counters_(counters),
      log_(core::logger("proxy")) {}

asio::awaitable<std::shared_ptr<const ManifestCache::Cached>> ManifestCache::cached(
    const std::string& digest) {
  {
    std::lock_guard lock(hot_mutex_);
    auto found = hot_manifests_.find(digest);
    if (found != hot_manifests_.end()) co_return found->second;
  }
  auto record = index_.manifest(digest);
  if (!record) co_return nullptr;
  auto stored_size = store_.size(digest);
  if (!stored_size || *stored_size != record->size || record->size > kMaxManifestBytes) {
    co_return nullptr;
  }
  std::optional<std::string> body = co_await store_.read_all(digest, record->size);
  if (!body) co_return nullptr;
  co_return remember(digest, record->media_type, std::move(*body));
}

std::shared_ptr<const ManifestCache::Cached> ManifestCache::remember(const std::string& digest,
                                                                     std::string media_type,
                                                                     std::string body) {
  auto entry = std::make_shared<const Cached>(Cached{std::move(media_type), std::move(body)});
  std::lock_guard lock(hot_mutex_);
  auto [it, inserted] = hot_manifests_.emplace(digest, entry);
  if (!inserted) return it->second;
  hot_bytes_ += entry->body.size();
  // Bounded: past the budget, drop arbitrary entries (they are re-read from the store when
  // asked for again; the hot set refills with what is actually being pulled).
  while (hot_bytes_ > kHotManifestBytes && hot_manifests_.size() > 1) {
    auto victim = hot_manifests_.begin();
    if (victim->first == digest) ++victim;
    hot_bytes_ -= victim->second->body.size();
    hot_manifests_.erase(victim);
  }
  return entry;
}

std::optional<TagRecord> ManifestCache::tag_of(const std::string& host,
                                               const ManifestRequest& request,
                                               ManifestTypeSet types) {
  std::string key = tag_key(host, request.repository, request.reference, types);
  {
    std::lock_guard lock(hot_mutex_);
    auto found = hot_tags_.find(key);
    if (found != hot_tags_.end()) return found->second;
  }
  auto record = index_.tag(host, request.repository, request.reference, types);
  if (record) {
    std::lock_guard lock(hot_mutex_);
    if (hot_tags_.size() >= kHotTags) hot_tags_.clear();
    hot_tags_.emplace(key, *record);
  }
  return record;
}

void ManifestCache::remember_tag(const std::string& host, const ManifestRequest& request,
                                 const std::string& digest, ManifestTypeSet types) {
  TagRecord record{digest, unix_seconds(clock_)};
  std::lock_guard lock(hot_mutex_);
  if (hot_tags_.size() >= kHotTags) hot_tags_.clear();
  hot_tags_[tag_key(host, request.repository, request.reference, types)] = std::move(record);
}

bool ManifestCache::is_linked(const std::string& host, const std::string& repository,
                              const std::string& digest) {
  std::string name = host + "/" + repository;
  auto holds = [&name](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  {
    std::lock_guard lock(hot_mutex_);
    auto found = hot_links_.find(digest);
    if (found != hot_links_.end() && holds(found->second)) return true;
  }
  if (!index_.linked(host, repository, digest)) return false;
  std::lock_guard lock(hot_mutex_);
  if (hot_link_count_ >= kHotLinks) {
    hot_links_.clear();
    hot_link_count_ = 0;
  }
  auto& names = hot_links_[digest];
  if (!holds(names)) {
    names.push_back(std::move(name));
    ++hot_link_count_;
  }
  return true;
}

std::string ManifestCache::tag_key(std::string_view host, std::string_view repository,
                                   std::string_view tag, ManifestTypeSet types) {
  // '#' is in neither the repository nor the tag grammar.
  std::string key;
  key.reserve(host.size() + repository.size() + tag.size() + 5);
  key.append(host).append("/").append(repository).append(":").append(tag).append("#");
  key += std::to_string(types);
  return key;
}

asio::awaitable<ManifestAnswer> ManifestCache::answer_cached(const ManifestRequest& request,
                                                             const std::string& digest,
                                                             bool stale) {
  ManifestAnswer answer;
  std::shared_ptr<const Cached> hit;
  try {
    hit = co_await cached(digest);
  } catch (const std::exception& e) {
    log_->error("reading cached manifest {}: {}", digest, e.what());
  }
  if (!hit) {
    // Vanished between the lookup and the read (removed by retention): go upstream instead.
    co_return co_await fetch(request, upstream_accept_for(request.accept));
  }
  if (request.by_digest) {
    recorder_.manifest(request.registry->host, request.repository, digest);
  } else {
    recorder_.tag(request.registry->host, request.repository, request.reference);
  }
  answer.found = true;
  answer.digest = digest;
  answer.media_type = hit->media_type;
  answer.size = hit->body.size();
  if (request.want_body) answer.body = hit->body;
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
    if (is_linked(host, request.repository, request.reference)) {
      std::shared_ptr<const Cached> hit = co_await cached(request.reference);
      if (hit) co_return co_await answer_cached(request, request.reference, false);
    }
    co_return co_await fetch(request, upstream_accept_for(request.accept));
  }

  // The canonical mapping (every type accepted) serves any client that accepts its manifest's
  // type; otherwise the mapping made for exactly the types this client accepts. The client's set
  // is worked out only when the canonical mapping does not serve: the hot path is one accepts().
  std::optional<TagRecord> tag;
  ManifestTypeSet asked = kAllManifestTypes;
  bool unsuitable = false;  // a mapping exists, but of a type this client cannot take
  for (int pass = 0; pass < 2 && !tag; ++pass) {
    ManifestTypeSet types = kAllManifestTypes;
    if (pass == 1) {
      types = accepted_manifest_types(request.accept);
      if (types == kAllManifestTypes || types == 0) break;
    }
    auto record = tag_of(host, request, types);
    if (!record) continue;
    std::shared_ptr<const Cached> manifest = co_await cached(record->digest);
    if (!manifest || !accepts(request.accept, manifest->media_type)) {
      unsuitable = true;
      continue;
    }
    tag = std::move(record);
    asked = types;
  }
  if (!tag) {
    ManifestAnswer answer = co_await fetch(request, upstream_accept_for(request.accept));
    if (!answer.found && answer.error == OciError::unavailable && unsuitable) {
      // Upstream is down and the cached mapping is of a type this client cannot take: there is
      // nothing better to say than the 503.
      log_->warn("{}/{}:{}: upstream unavailable and the cached manifest does not suit Accept",
                 host, request.repository, request.reference);
    }
    co_return answer;
  }

  auto age = std::chrono::seconds(unix_seconds(clock_) - tag->confirmed_at);
  if (age >= std::chrono::seconds(0) && age < request.registry->manifest_ttl) {
    co_return co_await answer_cached(request, tag->digest, false);
  }

  counters_.tag_revalidations.add();
  UpstreamRequest head;
  head.method = http::verb::head;
  head.target = "/v2/" + request.repository + "/manifests/" + request.reference;
  head.repository = request.repository;
  // Asked as the mapping was made, so that upstream picks the same kind of manifest.
  head.accept = accept_of(asked);
  head.credentials = request.credentials;
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
        remember_tag(host, request, digest, asked);
        // The confirmation goes to the index from the disk pool; a failure costs one more
        // revalidation after a restart, not this answer.
        // Not `this`: the write may run after the cache is gone; the index outlives the pool.
        asio::post(disk_, [&index = index_, log = log_, host, repository = request.repository,
                           tag = request.reference, digest, asked, now = unix_seconds(clock_)] {
          try {
            index.put_tag(host, repository, tag, digest, now, asked);
          } catch (const std::exception& e) {
            log->error("recording tag {}/{}:{}: {}", host, repository, tag, e.what());
          }
        });
        co_return co_await answer_cached(request, digest, false);
      }
      // Moved (or upstream did not say): fetch what it names now.
      ManifestAnswer answer = co_await fetch(request, accept_of(asked));
      if (answer.found || answer.error != OciError::unavailable) co_return answer;
      why = answer.message;
    } else if (retryable_status(status)) {
      why = "upstream answered " + std::to_string(status);
    } else {
      // A definite answer (the tag is gone, access is refused): pass it on rather than serve a
      // mapping upstream has withdrawn.
      co_return refused(request, status, result.response->header);
    }
  }
  log_->warn("{}/{}:{}: serving the cached mapping to {} (confirmed {} s ago): {}", host,
             request.repository, request.reference, tag->digest, age.count(), why);
  co_return co_await answer_cached(request, tag->digest, true);
}

ManifestAnswer ManifestCache::refused(const ManifestRequest& request, unsigned status,
                                      const http::response_header<>& header) {
  const std::string& host = request.registry->host;
  const std::string what =
      host + "/" + request.repository + (request.by_digest ? "@" : ":") + request.reference;
  ManifestAnswer answer;
  answer.retry_after = field(header, "Retry-After");
  if (status == 404) {
    answer.error = OciError::manifest_unknown;
    answer.message = "manifest " + what + " is not known upstream";
  } else if (status == 401) {
    answer.error = OciError::unauthorized;
    answer.message =
        "upstream " + host + " refused " +
        (request.credentials.auth == UpstreamAuth::client ? "this client's credentials"
                                                          : "the appliance's credentials") +
        " for " + request.repository;
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
  return answer;
}

asio::awaitable<void> ManifestCache::keep(const std::string& host, const std::string& repository,
                                          const std::string& tag, ManifestTypeSet types,
                                          const std::string& digest, const std::string& media_type,
                                          const std::string& body) {
  std::string error;
  auto references = manifest_references(media_type, body, error);
  std::vector<std::string> contents;
  if (references) {
    contents = std::move(references->manifests);
    contents.insert(contents.end(), references->blobs.begin(), references->blobs.end());
    if (!references->subject.empty()) contents.push_back(references->subject);
  } else {
    // Served as upstream sent it, verified by digest; retention sees nothing it references.
    log_->warn("manifest {} in {}/{}: cannot read its references: {}", digest, host, repository,
               error);
  }
  const UnixSeconds now = unix_seconds(clock_);
  // Held until the rows are written: a collection does not remove the manifest meanwhile.
  ContentGuard::Use use = guard_.write(digest);
  const bool rewrite = use.during_removal();
  bool wrote = false;
  co_await asio::co_spawn(
      disk_,
      [&]() -> asio::awaitable<void> {
        if (rewrite || !store_.size(digest)) {
          auto writer = store_.create(digest, body.size());
          writer->write(bytes_of(body));
          guard_.wait_for_removal(digest);
          CommitResult commit = writer->commit();
          if (commit.status != CommitStatus::stored) {
            throw std::runtime_error("commit failed: " + commit.error + commit.actual_digest);
          }
          if (!store_.commit_publishes()) {
            // Into the bucket before the index says it is stored: another appliance, or this
            // one after a restart, reads it from there.
            std::string failed = co_await store_.publish(digest, body.size());
            if (!failed.empty()) throw std::runtime_error(failed);
          }
          wrote = true;
        }
        index_.put_manifest(digest, media_type, body.size(), contents);
        // The link's last use is that of pulls by digest; a tag's are the tag's own.
        index_.link(host, repository, digest, tag.empty() ? now : 0);
        if (!tag.empty() && types != 0) {
          index_.put_tag(host, repository, tag, digest, now, types);
        }
        co_return;
      },
      asio::use_awaitable);
  if (wrote && stored_) stored_(body.size());
}

void ManifestCache::forget(const RemovalBatch& removed) {
  // The keys are made before the lock, which is taken for a chunk at a time: pulls wait on it.
  std::vector<std::string> tags;
  tags.reserve(removed.tags.size() * kAllManifestTypes);
  for (const auto& tag : removed.tags) {
    for (ManifestTypeSet types = 1; types <= kAllManifestTypes; ++types) {
      tags.push_back(tag_key(tag.registry, tag.repository, tag.tag, types));
    }
  }
  std::vector<std::string> link_names;
  link_names.reserve(removed.links.size());
  for (const auto& link : removed.links)
    link_names.push_back(link.registry + "/" + link.repository);
  auto in_chunks = [this](std::size_t count, auto&& forget_one) {
    constexpr std::size_t kChunk = 256;
    for (std::size_t at = 0; at < count; at += kChunk) {
      // A collection's idle thread, preempted while it held the lock, would stall every hit.
      core::RaisedPriority priority;
      std::lock_guard lock(hot_mutex_);
      for (std::size_t i = at; i < std::min(count, at + kChunk); ++i) forget_one(i);
    }
  };
  in_chunks(removed.objects.size(), [&](std::size_t i) {
    const auto& digest = removed.objects[i];
    if (auto found = hot_manifests_.find(digest); found != hot_manifests_.end()) {
      hot_bytes_ -= found->second->body.size();
      hot_manifests_.erase(found);
    }
    if (auto found = hot_links_.find(digest); found != hot_links_.end()) {
      hot_link_count_ -= found->second.size();
      hot_links_.erase(found);
    }
  });
  in_chunks(tags.size(), [&](std::size_t i) { hot_tags_.erase(tags[i]); });
  in_chunks(removed.links.size(), [&](std::size_t i) {
    auto found = hot_links_.find(removed.links[i].digest);
    if (found == hot_links_.end()) return;
    auto name = std::find(found->second.begin(), found->second.end(), link_names[i]);
    if (name == found->second.end()) return;
    found->second.erase(name);
    --hot_link_count_;
    if (found->second.empty()) hot_links_.erase(found);
  });
}

asio::awaitable<void> ManifestCache::put_pushed(const config::RegistryConfig& registry,
                                                const std::string& repository,
                                                const std::string& tag, const std::string& digest,
                                                const std::string& media_type, std::string body) {
  const std::string& host = registry.host;
  try {
    co_await keep(host, repository, tag, kAllManifestTypes, digest, media_type, body);
    remember(digest, media_type, std::move(body));
    if (!tag.empty()) {
      ManifestRequest request;
      request.registry = &registry;
      request.repository = repository;
      request.reference = tag;
      remember_tag(host, request, digest, kAllManifestTypes);
    }
  } catch (const std::exception& e) {
    log_->error("caching pushed manifest {}/{} ({}): {}", host, repository, digest, e.what());
  }
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
  get.credentials = request.credentials;
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
  if (status != 200) co_return refused(request, status, response.header);

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
    const ManifestTypeSet types = request.by_digest ? 0 : accepted_manifest_types(accept);
    // Named, not a temporary in the call: g++ 12 mishandles those across a co_await.
    const std::string tag = request.by_digest ? std::string() : request.reference;
    co_await keep(host, request.repository, tag, types, digest, media_type, *body);
    remember(digest, media_type, *body);
    if (types != 0) remember_tag(host, request, digest, types);
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
