// The XML that S3 answers with: error documents, the upload id of a multipart upload, the result
// of completing one, of a batch delete, and of a listing. A small reader of our own, because these
// documents are flat and small and the reader sees untrusted bytes from the network: it takes no
// DTD (so no entity expansion and no external entities), only the five predefined entities and
// character references, and it bounds the depth and the number of elements. Namespaces are
// dropped: an element is known by its local name.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pullthrough::proxy::s3 {

struct XmlElement {
  std::string name;  // local name, without a namespace prefix
  std::string text;  // character data directly inside, entities decoded (mixed content joined)
  std::vector<XmlElement> children;

  // The first child named `child`, or null. Valid as long as this element is.
  const XmlElement* find(std::string_view child) const;
  // The text of the first child named `child`; empty when there is none.
  std::string text_of(std::string_view child) const;
};

struct XmlLimits {
  std::size_t max_depth = 16;
  std::size_t max_elements = 20000;  // a listing of 1000 keys has about 7000
};

// The document's root element, or nothing with `error` saying what is wrong (for logs).
std::optional<XmlElement> parse_xml(std::string_view document, std::string& error,
                                    XmlLimits limits = {});

// Escapes text for an element's content (&, <, >).
std::string xml_escape(std::string_view text);

}  // namespace pullthrough::proxy::s3
