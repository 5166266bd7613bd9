// The glob language of retention rules and pins, over image references without a digest:
// `host/repository` or `host/repository:tag`.
//
//   quay.io/myorg/**                      every repository under quay.io/myorg, any tag
//   registry-1.docker.io/library/*:*-rc*  one level under library/, tags with "-rc" in them
//   *.gcr.io/**                           every repository of every host under gcr.io
//   **                                    everything
//
// A pattern is a repository part and, after the last ':' that follows its last '/', a tag part
// (a ':' before any '/' belongs to the host, as in `localhost:5000/app`; "**:latest" is the tag
// "latest" in every repository). In the repository part `*` matches any run of characters within
// one '/'-separated segment, and `**`, which must be a whole segment, matches segments: any
// number of them, at least one when it is the last segment ("quay.io/myorg/**" does not match the
// repository "quay.io/myorg"). In the tag part `*` matches any run of characters. Every other
// character matches itself; hosts compare without regard to case.
//
// A pattern with a tag part matches tagged references only; one without matches a repository's
// tags and its untagged content alike.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::config {

class RefGlob {
 public:
  // Matches nothing.
  RefGlob() = default;
  // Compiles `pattern`; on error, nullopt and `error` says what is wrong with it.
  static std::optional<RefGlob> compile(std::string_view pattern, std::string& error);

  // `repository` is "host/path" (the host in lower case, as the proxy keeps it); `tag` is empty
  // for content not reached through a tag.
  bool matches(std::string_view repository, std::string_view tag = {}) const;

  const std::string& pattern() const { return pattern_; }
  bool has_tag() const { return has_tag_; }
  bool operator==(const RefGlob& other) const { return pattern_ == other.pattern_; }

 private:
  std::string pattern_;
  std::vector<std::string> segments_;  // the repository part, split at '/'; "**" whole
  std::string tag_;                    // the tag part, when has_tag_
  bool has_tag_ = false;
};

}  // namespace pullthrough::config
