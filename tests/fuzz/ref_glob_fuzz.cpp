// Fuzzes the glob language of retention rules and pins (config::RefGlob), which will also come
// from the admin API. Input: a pattern, then after the first newline a subject "repository" or
// "repository\ttag". Invariants: compiling and matching never crash or hang, and a compiled
// pattern without wildcards or capitals matches the reference it spells.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/ref_glob.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using pullthrough::config::RefGlob;
  using pullthrough::fuzz::check;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  std::string_view pattern = input.substr(0, newline);
  std::string_view subject = newline == std::string_view::npos ? "" : input.substr(newline + 1);
  std::string error;
  auto glob = RefGlob::compile(pattern, error);
  if (!glob) {
    check(!error.empty(), "a refused pattern says why");
    return 0;
  }
  std::size_t tab = subject.find('\t');
  (void)glob->matches(subject.substr(0, tab),
                      tab == std::string_view::npos ? "" : subject.substr(tab + 1));
  if (pattern.find('*') == std::string_view::npos &&
      pattern.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string_view::npos) {
    // The pattern spells one reference: its repository part, and its tag if it has one.
    std::size_t slash = pattern.rfind('/');
    std::size_t colon = pattern.find(':', slash == std::string_view::npos ? 0 : slash);
    std::string_view repository = pattern.substr(0, colon);
    std::string_view tag = colon == std::string_view::npos ? "" : pattern.substr(colon + 1);
    check(glob->has_tag() == !tag.empty(), "a tag part is there when the pattern has one");
    check(glob->matches(repository, tag), "a pattern without wildcards matches itself");
  }
  return 0;
}
