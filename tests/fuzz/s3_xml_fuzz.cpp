// Fuzzes the reader of S3's XML answers: any bytes are either refused or give a tree within the
// limits that, written out again, reads back as the same tree.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/s3/xml.hpp"

namespace {

using pullthrough::proxy::s3::XmlElement;

std::size_t depth_of(const XmlElement& element) {
  std::size_t deepest = 0;
  for (const auto& child : element.children) deepest = std::max(deepest, depth_of(child));
  return deepest + 1;
}

void write(const XmlElement& element, std::string& out) {
  out += "<" + element.name + ">" + pullthrough::proxy::s3::xml_escape(element.text);
  for (const auto& child : element.children) write(child, out);
  out += "</" + element.name + ">";
}

bool same(const XmlElement& a, const XmlElement& b) {
  if (a.name != b.name || a.text != b.text || a.children.size() != b.children.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.children.size(); ++i) {
    if (!same(a.children[i], b.children[i])) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view document(reinterpret_cast<const char*>(data), size);
  pullthrough::proxy::s3::XmlLimits limits;
  std::string error;
  auto root = pullthrough::proxy::s3::parse_xml(document, error, limits);
  if (!root) {
    pullthrough::fuzz::check(!error.empty(), "a refused document has a reason");
    return 0;
  }
  pullthrough::fuzz::check(depth_of(*root) <= limits.max_depth, "depth within the limit");
  std::string again;
  write(*root, again);
  std::string second_error;
  auto reread = pullthrough::proxy::s3::parse_xml(again, second_error, limits);
  pullthrough::fuzz::check(reread.has_value(), "a tree written out reads back");
  pullthrough::fuzz::check(same(*root, *reread), "and reads back the same");
  return 0;
}
