#include "proxy/lifecycle/collector.hpp"

#include <utility>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "core/logging.hpp"
#include "core/units.hpp"
#include "proxy/lifecycle/pin.hpp"

namespace pullthrough::proxy {
namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
// Removals per index transaction. A pull that stores what it fetched waits for the transaction
// in progress (a few ms at this size), and so does the collection's thread, raised, while it is
// waited for.
constexpr std::size_t kRemovalBatch = 64;

// The first 16 hex digits of a digest's hash, with its algorithm in the top bit. Two digests
// sharing a key (about one chance in 10^7 among a million objects) are held as one object: both
// are kept if either is, so a collision can only keep too much.
std::uint64_t key_of(std::string_view digest) {
  auto colon = digest.find(':');
  if (colon == std::string_view::npos || digest.size() < colon + 1 + 16) {
    return std::hash<std::string_view>{}(digest);
  }
  std::uint64_t key = 0;
  for (std::size_t i = colon + 1; i < colon + 1 + 16; ++i) {
    char c = digest[i];
    unsigned value = 0;
    if (c >= '0' && c <= '9') {
      value = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      value = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return std::hash<std::string_view>{}(digest);
    }
    key = (key << 4) | value;
  }
  if (digest.substr(0, colon) != "sha256") key ^= std::uint64_t{1} << 63;
  return key;
}

std::string since(UnixSeconds now, UnixSeconds then) {
  auto seconds = std::max<UnixSeconds>(0, now - then);
  return core::format_duration(std::chrono::seconds(seconds));
}

std::string when(UnixSeconds at) {
  return core::format_rfc3339(core::SystemTime(std::chrono::seconds(at)));
}

struct Object {
  std::uint64_t key = 0;
  std::uint64_t size = 0;
  UnixSeconds last_access = 0;  // blobs
  bool manifest = false;
  bool blob = false;
};

struct Repo {
  std::string registry;
  std::string repository;
  std::string name;  // registry/repository, what globs match
};

struct Root {
  std::uint32_t repo = 0;
  std::string tag;                       // empty for a reference by digest
  std::vector<std::uint32_t> manifests;  // the objects it names (a tag: one per type set)
  std::vector<std::string> digests;      // theirs; the canonical one last
  UnixSeconds last_used = 0;             // its own; then including its children's
  // The decision.
  int rule = -1;
  std::string pin;
  bool forever = false;  // pinned or kept forever by its rule: never evicted
  bool removed = false;
  RemovalCause cause = RemovalCause::expired;
  std::string reason;

  std::string ref(const std::vector<Repo>& repos) const {
    const auto& name = repos[repo].name;
    return tag.empty() ? name + "@" + digests.back() : name + ":" + tag;
  }
};

// The snapshot as numbers: objects sorted by key (an object's id is its position), the contents
// as adjacency lists, and the references.
class Model {
 public:
  explicit Model(const MetadataSnapshot& snapshot) {
    // Sized up front: a million blobs must not cost twice their memory in growth.
    const auto counts = snapshot.counts();
    objects.reserve(counts.manifests + counts.blobs);
    snapshot.manifests([&](std::string_view digest, std::uint64_t size, bool known) {
      if (!known) ++unknown_contents;
      objects.push_back(Object{key_of(digest), size, 0, true, false});
    });
    snapshot.blobs([&](std::string_view digest, const BlobRecord& record) {
      objects.push_back(Object{key_of(digest), record.size, record.last_access, false, true});
    });
    std::sort(objects.begin(), objects.end(),
              [](const Object& a, const Object& b) { return a.key < b.key; });
    // One object per key: a digest stored as a manifest and as a blob is one set of bytes. Merged
    // in place (rare: the vector keeps its size).
    std::size_t kept = 0;
    for (std::size_t i = 0; i < objects.size(); ++i) {
      if (kept > 0 && objects[kept - 1].key == objects[i].key) {
        Object& into = objects[kept - 1];
        into.size = std::max(into.size, objects[i].size);
        into.last_access = std::max(into.last_access, objects[i].last_access);
        into.manifest = into.manifest || objects[i].manifest;
        into.blob = into.blob || objects[i].blob;
      } else {
        objects[kept++] = objects[i];
      }
    }
    objects.resize(kept);

    std::vector<std::pair<std::uint32_t, std::uint32_t>> edges;
    edges.reserve(counts.contents);
    snapshot.contents([&](std::string_view manifest, std::string_view digest) {
      auto parent = find(manifest);
      auto child = find(digest);
      if (parent != kNone && child != kNone && parent != child) edges.emplace_back(parent, child);
    });
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
    first_child.assign(objects.size() + 1, 0);
    for (const auto& edge : edges) ++first_child[edge.first + 1];
    for (std::size_t i = 1; i < first_child.size(); ++i) first_child[i] += first_child[i - 1];
    children.reserve(edges.size());
    for (const auto& edge : edges) children.push_back(edge.second);
    // Parents of child manifests, for telling a reference from a child fetched by digest.
    for (const auto& [parent, child] : edges) {
      if (objects[child].manifest) manifest_parents.emplace_back(child, parent);
    }
    std::sort(manifest_parents.begin(), manifest_parents.end());
    edges = {};

    std::string last_tag_key;
    snapshot.tags([&](std::string_view registry, std::string_view repository, std::string_view tag,
                      std::string_view digest, UnixSeconds last_used) {
      auto repo = intern(registry, repository);
      if (roots.empty() || roots.back().repo != repo || roots.back().tag != tag) {
        Root root;
        root.repo = repo;
        root.tag = std::string(tag);
        roots.push_back(std::move(root));
      }
      Root& root = roots.back();
      root.last_used = std::max(root.last_used, last_used);
      auto id = find(digest);
      if (id == kNone || !objects[id].manifest) return;  // its manifest is not stored
      root.manifests.push_back(id);
      root.digests.emplace_back(digest);
      held.emplace(link_key(repo, id), 0);
      tag_held.emplace(link_key(repo, id), 0);
    });
    // A tag none of whose manifests is stored holds nothing.
    std::erase_if(roots, [](const Root& root) { return root.manifests.empty(); });

    struct ManifestLink {
      std::uint32_t repo;
      std::uint32_t object;
      std::string digest;
      UnixSeconds last_used;
    };
    std::vector<ManifestLink> manifest_links;
    blob_links.reserve(counts.links);
    snapshot.links([&](std::string_view registry, std::string_view repository,
                       std::string_view digest, UnixSeconds last_used) {
      auto id = find(digest);
      if (id == kNone) return;
      auto repo = intern(registry, repository);
      if (objects[id].manifest) {
        manifest_links.push_back(ManifestLink{repo, id, std::string(digest), last_used});
        link_last_used[link_key(repo, id)] = last_used;
        link_digest.emplace(link_key(repo, id), digest);
        held.emplace(link_key(repo, id), 0);
      }
      if (objects[id].blob) blob_links.emplace_back(id, repo);
    });
    std::sort(blob_links.begin(), blob_links.end());
    // A manifest link is a reference of its own unless a tag of the repository names it (the
    // link was made when the tag was pulled), or a manifest of the same repository (a tag's or a
    // link's) contains it: then it is a child fetched by digest, part of that image.
    for (auto& link : manifest_links) {
      if (tag_held.contains(link_key(link.repo, link.object))) continue;
      auto [begin, end] = std::equal_range(
          manifest_parents.begin(), manifest_parents.end(), std::make_pair(link.object, 0U),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      bool child = std::any_of(begin, end, [&](const auto& edge) {
        return held.contains(link_key(link.repo, edge.second));
      });
      if (child) continue;
      Root root;
      root.repo = link.repo;
      root.manifests.push_back(link.object);
      root.digests.push_back(std::move(link.digest));
      root.last_used = link.last_used;
      roots.push_back(std::move(root));
    }
    std::sort(roots.begin(), roots.end(),
              [&](const Root& a, const Root& b) { return a.ref(repos) < b.ref(repos); });
  }

  std::uint32_t find(std::string_view digest) const {
    auto key = key_of(digest);
    auto it = std::lower_bound(objects.begin(), objects.end(), key,
                               [](const Object& o, std::uint64_t k) { return o.key < k; });
    if (it == objects.end() || it->key != key) return kNone;
    return static_cast<std::uint32_t>(it - objects.begin());
  }

  // Calls visit(id) once for each object `root` reaches, its manifests first. `stamp` is a
  // per-object scratch array; `mark` must differ from every value in it.
  template <typename Visit>
  void reach(const Root& root, std::vector<std::uint32_t>& stamp, std::uint32_t mark,
             std::vector<std::uint32_t>& stack, const Visit& visit) const {
    stack.clear();
    for (auto id : root.manifests) {
      if (stamp[id] != mark) {
        stamp[id] = mark;
        stack.push_back(id);
      }
    }
    while (!stack.empty()) {
      auto id = stack.back();
      stack.pop_back();
      visit(id);
      for (auto i = first_child[id]; i < first_child[id + 1]; ++i) {
        auto child = children[i];
        if (stamp[child] != mark) {
          stamp[child] = mark;
          stack.push_back(child);
        }
      }
    }
  }

  std::vector<Object> objects;
  std::vector<std::uint32_t> first_child;
  std::vector<std::uint32_t> children;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> manifest_parents;  // (child, parent)
  std::vector<Repo> repos;
  std::vector<Root> roots;
  std::unordered_map<std::uint64_t, UnixSeconds> link_last_used;  // manifest links
  std::unordered_map<std::uint64_t, std::string> link_digest;     // manifest links
  std::unordered_map<std::uint64_t, int> held;      // (repo, manifest) a tag or link names
  std::unordered_map<std::uint64_t, int> tag_held;  // (repo, manifest) a tag names
  std::vector<std::pair<std::uint32_t, std::uint32_t>> blob_links;  // (object, repo)
  std::size_t unknown_contents = 0;

  static std::uint64_t link_key(std::uint32_t repo, std::uint32_t object) {
    return (std::uint64_t{repo} << 32) | object;
  }

 private:
  std::uint32_t intern(std::string_view registry, std::string_view repository) {
    std::string name;
    name.reserve(registry.size() + 1 + repository.size());
    name.append(registry).append("/").append(repository);
    auto [it, inserted] = repo_ids_.try_emplace(name, static_cast<std::uint32_t>(repos.size()));
    if (inserted) {
      repos.push_back(Repo{std::string(registry), std::string(repository), std::move(name)});
    }
    return it->second;
  }

  std::unordered_map<std::string, std::uint32_t> repo_ids_;
};

std::vector<PinPattern> live_pins(const MetadataSnapshot& snapshot, UnixSeconds now) {
  std::vector<PinPattern> pins;
  for (const auto& record : snapshot.pins()) {
    if (record.expires_at != 0 && record.expires_at <= now) continue;
    std::string error;
    // Pins are checked when made; one that no longer parses (a future syntax) is skipped.
    if (auto pin = PinPattern::parse(record.pattern, error)) pins.push_back(std::move(*pin));
  }
  return pins;
}

std::string rule_name(const RetentionPolicy& policy, int rule) {
  if (rule < 0) return {};
  return fmt::format("rule {}: {}", rule + 1,
                     policy.rules[static_cast<std::size_t>(rule)].match.pattern());
}

// Everything a plan, `ls` and `du` share: the model, each reference's decision and effective last
// use, and how many kept references reach each object.
class Decisions {
 public:
  Decisions(const MetadataSnapshot& snapshot, const RetentionPolicy& policy, UnixSeconds now)
      : model(snapshot), policy_(policy), now_(now) {
    auto pins = live_pins(snapshot, now);
    stamp.assign(model.objects.size(), kNone);
    // Effective last use: a child manifest fetched by digest counts for its reference.
    for (auto& root : model.roots) {
      model.reach(root, stamp, next_mark(), stack_, [&](std::uint32_t id) {
        if (!model.objects[id].manifest) return;
        auto found = model.link_last_used.find(Model::link_key(root.repo, id));
        if (found != model.link_last_used.end()) {
          root.last_used = std::max(root.last_used, found->second);
        }
      });
    }
    for (auto& root : model.roots) decide(root, pins);
    limit_tags();
  }

  // How many kept references reach each object, and whether a pinned one does.
  void count_kept() {
    kept_count.assign(model.objects.size(), 0);
    pinned.assign(model.objects.size(), false);
    for (const auto& root : model.roots) {
      if (root.removed) continue;
      model.reach(root, stamp, next_mark(), stack_, [&](std::uint32_t id) {
        ++kept_count[id];
        if (root.forever) pinned[id] = true;
      });
    }
  }

  std::uint32_t next_mark() {
    if (++mark_ == kNone) {
      std::fill(stamp.begin(), stamp.end(), kNone);
      mark_ = 0;
    }
    return mark_;
  }

  template <typename Visit>
  void reach(const Root& root, const Visit& visit) {
    model.reach(root, stamp, next_mark(), stack_, visit);
  }

  Model model;
  std::vector<std::uint32_t> stamp;
  std::vector<std::uint32_t> kept_count;
  std::vector<bool> pinned;

 private:
  void decide(Root& root, const std::vector<PinPattern>& pins) {
    const auto& name = model.repos[root.repo].name;
    for (std::size_t i = 0; i < policy_.rules.size(); ++i) {
      if (policy_.rules[i].match.matches(name, root.tag)) {
        root.rule = static_cast<int>(i);
        break;
      }
    }
    for (const auto& pin : pins) {
      if (pin.covers(name, root.tag, root.digests)) {
        root.pin = pin.text();
        root.forever = true;
        return;
      }
    }
    if (root.rule < 0) return;
    const auto& rule = policy_.rules[static_cast<std::size_t>(root.rule)];
    if (rule.keep_forever) {
      root.forever = true;
      return;
    }
    if (rule.expire_unused_after) {
      auto limit = std::chrono::duration_cast<std::chrono::seconds>(*rule.expire_unused_after);
      if (now_ - root.last_used >= limit.count()) {
        root.removed = true;
        root.cause = RemovalCause::expired;
        root.reason = fmt::format("unused for {} (last used {}); {} expires after {}",
                                  since(now_, root.last_used), when(root.last_used),
                                  rule_name(policy_, root.rule),
                                  core::format_duration(*rule.expire_unused_after));
      }
    }
  }

  // keep_tags: per repository and rule, the most recently used tags stay.
  void limit_tags() {
    std::map<std::pair<std::uint32_t, int>, std::vector<Root*>> groups;
    for (auto& root : model.roots) {
      if (root.tag.empty() || root.rule < 0) continue;
      if (!policy_.rules[static_cast<std::size_t>(root.rule)].keep_tags) continue;
      groups[{root.repo, root.rule}].push_back(&root);
    }
    for (auto& [key, tags] : groups) {
      const auto keep = *policy_.rules[static_cast<std::size_t>(key.second)].keep_tags;
      if (tags.size() <= keep) continue;
      std::sort(tags.begin(), tags.end(), [](const Root* a, const Root* b) {
        if (a->last_used != b->last_used) return a->last_used > b->last_used;
        return a->tag < b->tag;
      });
      for (std::size_t i = keep; i < tags.size(); ++i) {
        Root& root = *tags[i];
        if (root.forever || root.removed) continue;
        root.removed = true;
        root.cause = RemovalCause::too_many_tags;
        root.reason = fmt::format("tag {} of {} in {} by last use (last used {}); {} keeps {}",
                                  i + 1, tags.size(), model.repos[root.repo].name,
                                  when(root.last_used), rule_name(policy_, key.second), keep);
      }
    }
  }

  const RetentionPolicy& policy_;
  UnixSeconds now_;
  std::vector<std::uint32_t> stack_;
  std::uint32_t mark_ = 0;
};

// Fills plan.objects with the digests of `removal`'s objects (a scan of the snapshot, since the
// model holds keys, not digests).
void name_objects(const MetadataSnapshot& snapshot, const Model& model,
                  std::vector<std::uint32_t>& cause_of, const std::vector<std::string>& reasons,
                  const std::vector<RemovalCause>& causes, CollectionPlan& plan) {
  auto take = [&](std::string_view digest) {
    auto id = model.find(digest);
    if (id == kNone || cause_of[id] == kNone) return;
    ObjectRemoval removal;
    removal.digest = std::string(digest);
    removal.size = model.objects[id].size;
    removal.manifest = model.objects[id].manifest;
    removal.cause = causes[cause_of[id]];
    removal.reason = reasons[cause_of[id]];
    plan.bytes_freed += removal.size;
    plan.objects.push_back(std::move(removal));
    cause_of[id] = kNone;  // once, though stored as a manifest and as a blob
  };
  snapshot.manifests([&](std::string_view digest, std::uint64_t, bool) { take(digest); });
  snapshot.blobs([&](std::string_view digest, const BlobRecord&) { take(digest); });
}

ReferenceRemoval reference_removal(const Model& model, const Root& root) {
  const auto& repo = model.repos[root.repo];
  return ReferenceRemoval{repo.registry,       repo.repository, root.tag,
                          root.digests.back(), root.cause,      root.reason};
}

// Why nothing may be decided yet: manifests whose contents are not known (a start's back-fill of
// an older cache is still under way). Empty when there is nothing in the way.
std::string blocked_reason(const Model& model) {
  if (model.unknown_contents == 0) return {};
  return fmt::format(
      "{} manifests stored by an older version are still being read for what they reference",
      model.unknown_contents);
}

std::uint64_t total_bytes(const Model& model) {
  std::uint64_t total = 0;
  for (const auto& object : model.objects) total += object.size;
  return total;
}

}  // namespace

std::string_view to_string(RemovalCause cause) {
  switch (cause) {
    case RemovalCause::expired:
      return "expired";
    case RemovalCause::too_many_tags:
      return "keep_tags";
    case RemovalCause::evicted:
      return "evicted";
    case RemovalCause::requested:
      return "requested";
  }
  return "unknown";
}

std::string ReferenceRemoval::ref() const {
  return registry + "/" + repository + (tag.empty() ? "@" + digest : ":" + tag);
}

CollectionPlan Collector::plan(const MetadataSnapshot& snapshot, const RetentionPolicy& policy,
                               UnixSeconds now) {
  CollectionPlan plan;
  Decisions decisions(snapshot, policy, now);
  Model& model = decisions.model;
  plan.blocked = blocked_reason(model);
  if (!plan.blocked.empty()) return plan;
  plan.stored_bytes = total_bytes(model);
  decisions.count_kept();
  const std::size_t n = model.objects.size();

  // Why each object goes: an index into `reasons`.
  std::vector<std::uint32_t> cause_of(n, kNone);
  std::vector<std::string> reasons;
  std::vector<RemovalCause> causes;
  std::vector<bool> reached(n, false);
  auto add_reason = [&](RemovalCause cause, std::string reason) {
    reasons.push_back(std::move(reason));
    causes.push_back(cause);
    return static_cast<std::uint32_t>(reasons.size() - 1);
  };
  std::uint64_t freed = 0;
  auto remove_object = [&](std::uint32_t id, std::uint32_t reason) {
    if (cause_of[id] != kNone) return;
    cause_of[id] = reason;
    freed += model.objects[id].size;
  };

  // How many kept references of its repository hold each manifest link; a link no kept one
  // holds goes with the reference that made it (it would otherwise turn into a reference by
  // digest of its own).
  std::unordered_map<std::uint64_t, std::uint32_t> link_holders;
  auto each_link = [&](const Root& root, const auto& visit) {
    decisions.reach(root, [&](std::uint32_t id) {
      if (!model.objects[id].manifest) return;
      auto key = Model::link_key(root.repo, id);
      if (model.link_digest.contains(key)) visit(key);
    });
  };
  for (const auto& root : model.roots) {
    if (!root.removed) each_link(root, [&](std::uint64_t key) { ++link_holders[key]; });
  }
  std::unordered_map<std::uint64_t, int> links_dropped;
  auto drop_reference = [&](const Root& root) {
    plan.references.push_back(reference_removal(model, root));
    if (root.tag.empty()) links_dropped.emplace(Model::link_key(root.repo, root.manifests[0]), 0);
    each_link(root, [&](std::uint64_t key) {
      if (link_holders[key] > 0 || !links_dropped.emplace(key, 0).second) return;
      const auto& repo = model.repos[root.repo];
      plan.references.push_back(ReferenceRemoval{repo.registry,
                                                 repo.repository,
                                                 {},
                                                 model.link_digest.at(key),
                                                 root.cause,
                                                 "part of " + root.ref(model.repos),
                                                 true});
    });
  };

  for (const auto& root : model.roots) {
    if (root.removed) {
      auto reason = add_reason(root.cause, "only in " + root.ref(model.repos) + ": " + root.reason);
      decisions.reach(root, [&](std::uint32_t id) {
        reached[id] = true;
        if (decisions.kept_count[id] == 0) remove_object(id, reason);
      });
      drop_reference(root);
    } else {
      decisions.reach(root, [&](std::uint32_t id) { reached[id] = true; });
    }
  }
  for (std::size_t id = 0; id < n; ++id) {
    if (decisions.pinned[id]) plan.pinned_bytes += model.objects[id].size;
  }

  // Content no reference reaches: the rules of the repositories that fetched it decide, as for
  // untagged content, on its own last use. Without such a repository it is kept.
  auto pins = live_pins(snapshot, now);
  std::vector<std::uint32_t> unreached;
  for (std::size_t i = 0; i < model.blob_links.size();) {
    auto id = model.blob_links[i].first;
    std::size_t end = i;
    while (end < model.blob_links.size() && model.blob_links[end].first == id) ++end;
    if (reached[id] || cause_of[id] != kNone) {
      i = end;
      continue;
    }
    const Object& object = model.objects[id];
    bool keep = false;
    std::string why;
    for (std::size_t j = i; j < end && !keep; ++j) {
      const auto& name = model.repos[model.blob_links[j].second].name;
      if (std::any_of(pins.begin(), pins.end(),
                      [&](const PinPattern& pin) { return pin.covers(name, {}, {}); })) {
        keep = true;
        break;
      }
      auto rule = std::find_if(policy.rules.begin(), policy.rules.end(),
                               [&](const auto& r) { return r.match.matches(name); });
      if (rule == policy.rules.end() || rule->keep_forever || !rule->expire_unused_after) {
        keep = true;
        break;
      }
      auto limit = std::chrono::duration_cast<std::chrono::seconds>(*rule->expire_unused_after);
      if (now - object.last_access < limit.count()) {
        keep = true;
        break;
      }
      if (why.empty()) {
        why = fmt::format("in no cached image; unused for {} (last used {}); {} expires after {}",
                          since(now, object.last_access), when(object.last_access),
                          rule_name(policy, static_cast<int>(rule - policy.rules.begin())),
                          core::format_duration(*rule->expire_unused_after));
      }
    }
    if (keep) {
      unreached.push_back(id);
    } else {
      remove_object(id, add_reason(RemovalCause::expired, std::move(why)));
    }
    i = end;
  }
  for (std::uint32_t id = 0; id < n; ++id) {
    if (!reached[id] && cause_of[id] == kNone &&
        !std::binary_search(model.blob_links.begin(), model.blob_links.end(),
                            std::make_pair(id, 0U),
                            [](const auto& a, const auto& b) { return a.first < b.first; })) {
      unreached.push_back(id);
    }
  }

  // The size bound and the free space: least recently used first.
  std::uint64_t need = 0;
  const std::uint64_t left = plan.stored_bytes - freed;
  std::string pressure;
  if (policy.max_size > 0 && left > policy.max_size) {
    need = left - std::min(policy.low_watermark, left);
    pressure = fmt::format("the store holds {} bytes, above max_size {}", left, policy.max_size);
  }
  if (policy.free_up > freed && policy.free_up - freed > need) {
    need = policy.free_up - freed;
    pressure = fmt::format("the disk needs {} bytes back to stay above min_free", policy.free_up);
  }
  if (need > 0) {
    const std::uint64_t goal = freed + need;
    std::sort(unreached.begin(), unreached.end(), [&](std::uint32_t a, std::uint32_t b) {
      const auto& x = model.objects[a];
      const auto& y = model.objects[b];
      return x.last_access != y.last_access ? x.last_access < y.last_access : x.key < y.key;
    });
    for (auto id : unreached) {
      if (freed >= goal) break;
      remove_object(id, add_reason(RemovalCause::evicted,
                                   fmt::format("in no cached image, least recently used (last "
                                               "used {}): {}",
                                               when(model.objects[id].last_access), pressure)));
    }
    std::vector<Root*> candidates;
    for (auto& root : model.roots) {
      if (!root.removed && !root.forever) candidates.push_back(&root);
    }
    // Ties keep ref order.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Root* a, const Root* b) { return a->last_used < b->last_used; });
    for (Root* root : candidates) {
      if (freed >= goal) break;
      root->removed = true;
      root->cause = RemovalCause::evicted;
      root->reason =
          fmt::format("least recently used (last used {}): {}", when(root->last_used), pressure);
      auto reason = add_reason(RemovalCause::evicted,
                               "only in " + root->ref(model.repos) + ": " + root->reason);
      decisions.reach(*root, [&](std::uint32_t id) {
        if (--decisions.kept_count[id] == 0) remove_object(id, reason);
      });
      each_link(*root, [&](std::uint64_t key) { --link_holders[key]; });
      drop_reference(*root);
    }
    if (freed < goal) plan.shortfall = goal - freed;
  }

  name_objects(snapshot, model, cause_of, reasons, causes, plan);
  return plan;
}

CollectionPlan Collector::plan_removal(const MetadataSnapshot& snapshot, std::string_view ref,
                                       std::string& error) {
  CollectionPlan plan;
  std::optional<PinPattern> pattern = PinPattern::parse(ref, error);
  if (!pattern) return plan;
  RetentionPolicy keep_all;
  Decisions decisions(snapshot, keep_all, 0);
  Model& model = decisions.model;
  plan.blocked = blocked_reason(model);
  if (!plan.blocked.empty()) return plan;
  plan.stored_bytes = total_bytes(model);
  for (auto& root : model.roots) {
    if (!pattern->covers(model.repos[root.repo].name, root.tag, root.digests)) continue;
    root.removed = true;
    root.cause = RemovalCause::requested;
    root.reason = "removed by request (" + std::string(ref) + ")";
    plan.references.push_back(reference_removal(model, root));
  }
  if (plan.references.empty()) return plan;
  decisions.count_kept();
  std::vector<std::uint32_t> cause_of(model.objects.size(), kNone);
  std::vector<std::string> reasons;
  std::vector<RemovalCause> causes;
  for (const auto& root : model.roots) {
    if (!root.removed) continue;
    reasons.push_back("only in " + root.ref(model.repos) + ": " + root.reason);
    causes.push_back(RemovalCause::requested);
    auto reason = static_cast<std::uint32_t>(reasons.size() - 1);
    decisions.reach(root, [&](std::uint32_t id) {
      if (decisions.kept_count[id] == 0 && cause_of[id] == kNone) cause_of[id] = reason;
    });
  }
  name_objects(snapshot, model, cause_of, reasons, causes, plan);
  return plan;
}

std::vector<ReferenceReport> Collector::references(const MetadataSnapshot& snapshot,
                                                   const RetentionPolicy& policy, UnixSeconds now,
                                                   std::string_view glob, std::string& error) {
  std::optional<config::RefGlob> filter;
  if (!glob.empty()) {
    filter = config::RefGlob::compile(glob, error);
    if (!filter) return {};
  }
  Decisions decisions(snapshot, policy, now);
  Model& model = decisions.model;
  // How many references (kept or not) reach each object: unique bytes are those only one does.
  std::vector<std::uint32_t> count(model.objects.size(), 0);
  for (const auto& root : model.roots) {
    decisions.reach(root, [&](std::uint32_t id) { ++count[id]; });
  }
  std::vector<ReferenceReport> out;
  for (const auto& root : model.roots) {
    const auto& name = model.repos[root.repo].name;
    if (filter && !filter->matches(name, root.tag)) continue;
    ReferenceReport report;
    report.ref = root.ref(model.repos);
    report.digest = root.digests.back();
    report.last_used = root.last_used;
    report.pinned = !root.pin.empty();
    report.rule = !root.pin.empty() ? "pin " + root.pin : rule_name(policy, root.rule);
    decisions.reach(root, [&](std::uint32_t id) {
      report.size += model.objects[id].size;
      if (count[id] == 1) report.unique_size += model.objects[id].size;
    });
    out.push_back(std::move(report));
  }
  return out;
}

UsageReport Collector::usage(const MetadataSnapshot& snapshot, const RetentionPolicy& policy,
                             UnixSeconds now) {
  Decisions decisions(snapshot, policy, now);
  Model& model = decisions.model;
  decisions.count_kept();
  UsageReport usage;
  usage.total = total_bytes(model);
  for (std::size_t id = 0; id < model.objects.size(); ++id) {
    if (decisions.pinned[id]) usage.pinned += model.objects[id].size;
  }
  usage.evictable = usage.total - usage.pinned;
  // Per registry, each object once: a stamp per registry.
  std::map<std::string, std::vector<const Root*>> by_registry;
  for (const auto& root : model.roots) {
    by_registry[model.repos[root.repo].registry].push_back(&root);
  }
  for (const auto& [registry, roots] : by_registry) {
    std::uint64_t bytes = 0;
    std::vector<bool> seen(model.objects.size(), false);
    for (const Root* root : roots) {
      decisions.reach(*root, [&](std::uint32_t id) {
        if (!seen[id]) {
          seen[id] = true;
          bytes += model.objects[id].size;
        }
      });
    }
    usage.by_registry.emplace_back(registry, bytes);
  }
  return usage;
}

Collector::Applied Collector::apply(const CollectionPlan& plan, MetadataIndex& index,
                                    BlobStore& store, ContentGuard& guard, UnixSeconds now,
                                    const std::function<void(const RemovalBatch&)>& forget) {
  Applied applied;
  auto log = core::logger("proxy");
  // The references go first, all of them: a reference whose objects stay (shared with a kept
  // one) goes even when every object is busy. A crash between two of these transactions leaves
  // references that the next collection plans again.
  for (std::size_t at = 0; at < plan.references.size(); at += kRemovalBatch) {
    RemovalBatch references;
    for (std::size_t i = at; i < std::min(plan.references.size(), at + kRemovalBatch); ++i) {
      const auto& ref = plan.references[i];
      if (ref.tag.empty()) {
        references.links.push_back({ref.registry, ref.repository, ref.digest});
      } else {
        references.tags.push_back({ref.registry, ref.repository, ref.tag});
      }
    }
    index.begin_removal(references, now);
    applied.references_removed += references.tags.size() + references.links.size();
    if (forget) forget(references);
  }

  for (std::size_t at = 0; at < plan.objects.size(); at += kRemovalBatch) {
    auto end = std::min(plan.objects.size(), at + kRemovalBatch);
    RemovalBatch batch;
    std::vector<std::uint64_t> sizes;
    for (std::size_t i = at; i < end; ++i) {
      const auto& object = plan.objects[i];
      if (!guard.begin_removal(object.digest)) {
        ++applied.objects_busy;
        continue;
      }
      batch.objects.push_back(object.digest);
      sizes.push_back(object.size);
    }
    if (batch.objects.empty()) continue;
    try {
      index.begin_removal(batch, now);
    } catch (...) {
      for (const auto& digest : batch.objects) guard.end_removal(digest);
      throw;
    }
    if (forget) forget(batch);
    std::vector<std::string> done;
    for (std::size_t i = 0; i < batch.objects.size(); ++i) {
      const auto& digest = batch.objects[i];
      try {
        store.remove(digest);
        done.push_back(digest);
        ++applied.objects_removed;
        applied.bytes_freed += sizes[i];
      } catch (const std::exception& e) {
        // Its rows are gone and it stays journaled: the next start tries again.
        log->error("removing {}: {}", digest, e.what());
      }
      guard.end_removal(digest);
    }
    index.end_removal(done);
  }
  return applied;
}

std::size_t Collector::finish_removals(MetadataIndex& index, BlobStore& store) {
  auto pending = index.pending_removals();
  std::vector<std::string> done;
  for (const auto& digest : pending) {
    // Stored again since (fetched anew after the crash's removal began): it stays.
    if (!index.holds(digest)) store.remove(digest);
    done.push_back(digest);
  }
  index.end_removal(done);
  return done.size();
}

}  // namespace pullthrough::proxy
