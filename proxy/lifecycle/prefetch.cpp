#include "proxy/lifecycle/prefetch.hpp"

#include <algorithm>
#include <stdexcept>

#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include "core/logging.hpp"
#include "core/spawn.hpp"
#include "proxy/media_types.hpp"
#include "proxy/route.hpp"

namespace pullthrough::proxy {
namespace {

using Json = nlohmann::json;

struct ParsedRef {
  const config::RegistryConfig* registry = nullptr;
  std::string repository;
  std::string reference;
  bool by_digest = false;
};

std::optional<ParsedRef> parse_ref(const config::Config& config, std::string_view text,
                                   std::string& error) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    error = "not host/repository[:tag] or host/repository@digest";
    return std::nullopt;
  }
  ParsedRef ref;
  ref.registry = config.find_registry(text.substr(0, slash));
  if (ref.registry == nullptr) {
    error = "\"" + std::string(text.substr(0, slash)) + "\" is not an intercepted registry";
    return std::nullopt;
  }
  std::string_view rest = text.substr(slash + 1);
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    ref.repository = std::string(rest.substr(0, at));
    ref.reference = std::string(rest.substr(at + 1));
    ref.by_digest = true;
    if (check_digest(ref.reference) != DigestStatus::ok) {
      error = "\"" + ref.reference + "\" is not a sha256 or sha512 digest";
      return std::nullopt;
    }
  } else {
    auto colon = rest.rfind(':');
    ref.repository = std::string(rest.substr(0, colon));
    ref.reference =
        colon == std::string_view::npos ? "latest" : std::string(rest.substr(colon + 1));
    if (!is_valid_tag(ref.reference)) {
      error = "\"" + ref.reference + "\" is not a valid tag";
      return std::nullopt;
    }
  }
  if (!is_valid_repository(ref.repository)) {
    error = "\"" + ref.repository + "\" is not a valid repository name";
    return std::nullopt;
  }
  return ref;
}

bool is_index(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerList;
}

}  // namespace

std::optional<std::vector<IndexChild>> index_children(std::string_view body) {
  Json json = Json::parse(body, nullptr, false);
  if (!json.is_object() || !json.contains("manifests") || !json["manifests"].is_array()) {
    return std::nullopt;
  }
  std::vector<IndexChild> out;
  for (const auto& entry : json["manifests"]) {
    if (!entry.is_object() || !entry.contains("digest") || !entry["digest"].is_string()) {
      return std::nullopt;
    }
    IndexChild child;
    child.digest = entry["digest"].get<std::string>();
    child.platform = "unknown";
    if (entry.contains("platform") && entry["platform"].is_object()) {
      const auto& p = entry["platform"];
      auto text = [&](const char* key) {
        return p.contains(key) && p[key].is_string() ? p[key].get<std::string>() : std::string();
      };
      if (!text("os").empty() && !text("architecture").empty()) {
        child.platform = text("os") + "/" + text("architecture");
        if (!text("variant").empty()) child.platform += "/" + text("variant");
      }
    }
    out.push_back(std::move(child));
  }
  return out;
}

bool matches(const PlatformFilter& filter, std::string_view platform) {
  if (filter.all) return true;
  std::string want = filter.os + "/" + filter.architecture;
  if (!filter.variant.empty()) return platform == want + "/" + filter.variant;
  // Without a variant, any variant of the architecture (linux/arm64 takes linux/arm64/v8).
  return platform == want || platform.starts_with(want + "/");
}

std::optional<std::vector<BlobDescriptor>> image_blobs(std::string_view body) {
  Json json = Json::parse(body, nullptr, false);
  if (!json.is_object() || !json.contains("config") || !json["config"].is_object()) {
    return std::nullopt;
  }
  std::vector<BlobDescriptor> out;
  auto take = [&](const Json& descriptor) {
    if (!descriptor.is_object() || !descriptor.contains("digest") ||
        !descriptor["digest"].is_string() || !descriptor.contains("size") ||
        !descriptor["size"].is_number_unsigned()) {
      return false;
    }
    BlobDescriptor blob{descriptor["digest"].get<std::string>(),
                        descriptor["size"].get<std::uint64_t>()};
    if (check_digest(blob.digest) != DigestStatus::ok) return false;
    for (const auto& seen : out) {
      if (seen.digest == blob.digest) return true;
    }
    out.push_back(std::move(blob));
    return true;
  };
  if (!take(json["config"])) return std::nullopt;
  if (json.contains("layers")) {
    if (!json["layers"].is_array()) return std::nullopt;
    for (const auto& layer : json["layers"]) {
      if (!take(layer)) return std::nullopt;
    }
  }
  return out;
}

struct Prefetcher::Job {
  std::uint64_t id = 0;
  std::vector<PlatformFilter> platforms;
  UnixSeconds pin_until = 0;
  mutable std::mutex mutex;  // guards what follows: the job runs on a strand, status() anywhere
  std::vector<PrefetchRefStatus> refs;
  // Per ref, per blob: the fetch a blob is waiting on, for its bytes so far (null otherwise).
  std::vector<std::vector<std::shared_ptr<BlobFetch>>> fetches;
  // Per ref: what pins it (host/repository@digest of what it named), once resolved.
  std::vector<std::string> pins;
  bool done = false;
};

Prefetcher::Prefetcher(
    asio::io_context& io, const config::Config& config,
    std::unordered_map<const config::RegistryConfig*, RegistryUpstream*> upstreams,
    ManifestCache& manifests, CachedBlobs& blobs, AccessBooks& access)
    : io_(io),
      config_(config),
      upstreams_(std::move(upstreams)),
      manifests_(manifests),
      blobs_(blobs),
      access_(access),
      log_(core::logger("proxy")) {}

Prefetcher::~Prefetcher() = default;

std::uint64_t Prefetcher::start(std::vector<std::string> refs,
                                std::vector<PlatformFilter> platforms, UnixSeconds pin_until) {
  if (refs.empty()) throw std::invalid_argument("no reference to prefetch");
  if (platforms.empty()) throw std::invalid_argument("no platform to prefetch");
  if (refs.size() > kMaxRefs) {
    throw std::invalid_argument("at most " + std::to_string(kMaxRefs) + " references at once");
  }
  auto job = std::make_shared<Job>();
  job->platforms = std::move(platforms);
  job->pin_until = pin_until;
  for (auto& ref : refs) {
    PrefetchRefStatus status;
    status.ref = std::move(ref);
    status.state = "waiting";
    job->refs.push_back(std::move(status));
  }
  job->fetches.resize(job->refs.size());
  job->pins.resize(job->refs.size());
  {
    std::lock_guard lock(mutex_);
    job->id = next_id_++;
    jobs_.emplace(job->id, job);
    while (jobs_.size() > kMaxJobs) jobs_.erase(jobs_.begin());
  }
  core::spawn_logged(asio::make_strand(io_), run(job), log_, "prefetch failed");
  return job->id;
}

std::optional<PrefetchStatus> Prefetcher::status(std::uint64_t id) const {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mutex_);
    auto found = jobs_.find(id);
    if (found == jobs_.end()) return std::nullopt;
    job = found->second;
  }
  std::lock_guard lock(job->mutex);
  PrefetchStatus status{job->id, job->done, job->refs};
  for (std::size_t r = 0; r < status.refs.size(); ++r) {
    for (std::size_t b = 0; b < status.refs[r].blobs.size() && b < job->fetches[r].size(); ++b) {
      auto& blob = status.refs[r].blobs[b];
      if (const auto& fetch = job->fetches[r][b]; fetch && blob.state == "fetching") {
        blob.fetched = fetch->progress().written;
      }
    }
  }
  return status;
}

asio::awaitable<void> Prefetcher::run(std::shared_ptr<Job> job) {
  for (std::size_t i = 0; i < job->refs.size(); ++i) {
    try {
      co_await fetch_ref(*job, i);
    } catch (const std::exception& e) {
      std::lock_guard lock(job->mutex);
      job->refs[i].state = "failed";
      job->refs[i].error = e.what();
    }
    std::string pin;
    {
      std::lock_guard lock(job->mutex);
      const auto& ref = job->refs[i];
      if (ref.state == "failed") {
        log_->warn("prefetch of {} failed: {}", ref.ref, ref.error);
      } else {
        log_->info("prefetched {} ({}, {} blobs)", ref.ref, ref.digest, ref.blobs.size());
        if (job->pin_until != 0 && retention_ != nullptr) pin = job->pins[i];
      }
    }
    if (!pin.empty()) {
      try {
        std::string source = "prefetch";
        co_await retention_->pin(pin, job->pin_until, source);
      } catch (const std::exception& e) {
        log_->error("pinning {}: {}", pin, e.what());
      }
    }
  }
  std::lock_guard lock(job->mutex);
  job->done = true;
}

asio::awaitable<void> Prefetcher::fetch_ref(Job& job, std::size_t index) {
  auto set = [&](auto&& change) {
    std::lock_guard lock(job.mutex);
    change(job.refs[index]);
  };
  auto fail = [&](std::string error) {
    set([&](PrefetchRefStatus& ref) {
      ref.state = "failed";
      ref.error = std::move(error);
    });
  };
  std::string text;
  {
    std::lock_guard lock(job.mutex);
    text = job.refs[index].ref;
    job.refs[index].state = "resolving";
  }
  std::string error;
  auto parsed = parse_ref(config_, text, error);
  if (!parsed) {
    fail(error);
    co_return;
  }
  RegistryUpstream* upstream = upstreams_.at(parsed->registry);

  ManifestRequest request;
  request.registry = parsed->registry;
  request.upstream = upstream;
  request.repository = parsed->repository;
  request.reference = parsed->reference;
  request.by_digest = parsed->by_digest;
  request.accept = accept_of(kAllManifestTypes);
  ManifestAnswer top = co_await manifests_.get(request);
  if (!top.found) {
    fail(top.message);
    co_return;
  }
  {
    std::lock_guard lock(job.mutex);
    job.refs[index].digest = top.digest;
    job.pins[index] = parsed->registry->host + "/" + parsed->repository + "@" + top.digest;
  }

  // Whether anyone may be served it: what a client's first pull would have asked (an anonymous
  // HEAD), so that the access check knows the answer while upstream is down.
  if (!parsed->registry->share_private) {
    UpstreamRequest probe;
    probe.method = http::verb::head;
    probe.target = "/v2/" + parsed->repository + "/manifests/" + parsed->reference;
    probe.repository = parsed->repository;
    probe.accept = request.accept;
    probe.credentials = UpstreamCredentials{UpstreamAuth::anonymous, {}};
    UpstreamResult probed = co_await upstream->send(std::move(probe));
    if (probed.response) {
      unsigned status = probed.response->header.result_int();
      if (status == 200)
        access_.record_visibility(parsed->registry->host, parsed->repository, true);
      if (status == 401 || status == 403) {
        access_.record_visibility(parsed->registry->host, parsed->repository, false);
      }
    }
  }

  // The image manifests to fetch: the reference's own, or the chosen children of its index.
  std::vector<std::string> images;
  std::vector<std::string> platforms;
  if (is_index(top.media_type)) {
    auto children = index_children(top.body);
    if (!children) {
      fail("the index " + top.digest + " does not list its manifests");
      co_return;
    }
    std::vector<std::string> offered;
    for (const auto& child : *children) {
      offered.push_back(child.platform);
      if (std::none_of(job.platforms.begin(), job.platforms.end(),
                       [&](const PlatformFilter& f) { return matches(f, child.platform); })) {
        continue;
      }
      ManifestRequest child_request = request;
      child_request.reference = child.digest;
      child_request.by_digest = true;
      ManifestAnswer answer = co_await manifests_.get(child_request);
      if (!answer.found) {
        fail("manifest " + child.digest + " (" + child.platform + "): " + answer.message);
        co_return;
      }
      if (is_index(answer.media_type)) continue;  // nested indexes are not followed
      images.push_back(std::move(answer.body));
      platforms.push_back(child.platform);
    }
    if (images.empty()) {
      std::string list;
      for (const auto& p : offered) list += (list.empty() ? "" : ", ") + p;
      std::string wanted;
      for (const auto& p : job.platforms) wanted += (wanted.empty() ? "" : ", ") + p.to_string();
      fail("no manifest for " + wanted + " in the index (it has " + list + ")");
      co_return;
    }
  } else {
    images.push_back(std::move(top.body));
  }

  std::vector<BlobDescriptor> blobs;
  for (const auto& body : images) {
    auto named = image_blobs(body);
    if (!named) {
      fail("an image manifest of " + text + " does not name its config and layers");
      co_return;
    }
    for (auto& blob : *named) {
      if (std::none_of(blobs.begin(), blobs.end(),
                       [&](const BlobDescriptor& b) { return b.digest == blob.digest; })) {
        blobs.push_back(std::move(blob));
      }
    }
  }
  {
    std::lock_guard lock(job.mutex);
    auto& ref = job.refs[index];
    ref.state = "fetching";
    ref.platforms = platforms;
    for (const auto& blob : blobs) {
      ref.blobs.push_back(PrefetchBlobStatus{blob.digest, blob.size, 0, "fetching", {}});
    }
    job.fetches[index].assign(blobs.size(), nullptr);
  }

  // Every missing blob's fetch starts at once (each runs on its own); then each is waited for.
  // Only the fetches are kept: each holds its own use of its digest until it is stored.
  std::vector<std::shared_ptr<BlobFetch>> fetches(blobs.size());
  const config::RegistryConfig& registry = *parsed->registry;
  const UpstreamCredentials credentials;  // the appliance's own
  for (std::size_t b = 0; b < blobs.size(); ++b) {
    const std::string& digest = blobs[b].digest;
    auto copy = co_await blobs_.find(registry, parsed->repository, digest, *upstream, credentials);
    if (copy) {
      std::lock_guard lock(job.mutex);
      auto& status = job.refs[index].blobs[b];
      status.state = "cached";
      status.fetched = copy->size;
      continue;
    }
    fetches[b] = blobs_.fetch(registry, parsed->repository, digest, *upstream, credentials).fetch;
    std::lock_guard lock(job.mutex);
    job.fetches[index][b] = fetches[b];
  }
  std::size_t failed = 0;
  for (std::size_t b = 0; b < blobs.size(); ++b) {
    if (!fetches[b]) continue;
    BlobFetch& fetch = *fetches[b];
    FetchProgress progress = fetch.progress();
    while (progress.state != FetchState::stored && progress.state != FetchState::failed) {
      progress = co_await fetch.wait_past(progress);
    }
    std::lock_guard lock(job.mutex);
    auto& status = job.refs[index].blobs[b];
    if (progress.state == FetchState::stored) {
      status.state = "fetched";
      status.fetched = progress.written;
    } else {
      status.state = "failed";
      status.error = progress.failure.message;
      ++failed;
    }
    job.fetches[index][b] = nullptr;
  }
  if (failed > 0) {
    fail(std::to_string(failed) + " of " + std::to_string(blobs.size()) + " blobs failed");
  } else {
    set([](PrefetchRefStatus& ref) { ref.state = "done"; });
  }
}

void Prefetcher::start_schedule(const config::PrefetchConfig& prefetch, Retention& retention,
                                const core::WallClock& clock) {
  retention_ = &retention;
  clock_ = &clock;
  if (prefetch.refs.empty()) return;
  schedule_ = &prefetch;
  timer_ = std::make_unique<asio::steady_timer>(io_);
  schedule(std::chrono::milliseconds(0));
}

void Prefetcher::schedule(std::chrono::milliseconds after) {
  timer_->expires_after(after);
  timer_->async_wait([this](const error_code& ec) {
    if (ec) return;
    const auto interval = std::chrono::duration_cast<std::chrono::seconds>(schedule_->interval);
    const UnixSeconds pin_until = unix_seconds(*clock_) + interval.count() + interval.count() / 2;
    log_->info("prefetching the {} references of the configuration", schedule_->refs.size());
    start(schedule_->refs, schedule_->platforms, pin_until);
    schedule(std::chrono::duration_cast<std::chrono::milliseconds>(schedule_->interval));
  });
}

void Prefetcher::stop() {
  if (timer_) asio::post(io_, [this] { timer_->cancel(); });
}

}  // namespace pullthrough::proxy
