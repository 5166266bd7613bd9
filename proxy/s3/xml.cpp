#include "proxy/s3/xml.hpp"

#include <cstdint>

namespace pullthrough::proxy::s3 {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool is_name_start(char c) {
  auto u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || u >= 0x80;
}

bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

void append_utf8(std::string& out, std::uint32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

class Reader {
 public:
  Reader(std::string_view text, XmlLimits limits) : text_(text), limits_(limits) {}

  std::optional<XmlElement> document() {
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") at_ = 3;
    if (!misc()) return std::nullopt;
    if (!peek("<")) return fail("no root element");
    XmlElement root;
    if (!element(root, 1)) return std::nullopt;
    if (!misc()) return std::nullopt;
    if (at_ != text_.size()) return fail("content after the root element");
    return root;
  }

  const std::string& error() const { return error_; }

 private:
  std::nullopt_t fail(std::string message) {
    if (error_.empty()) error_ = message + " at byte " + std::to_string(at_);
    return std::nullopt;
  }

  bool refuse(std::string message) {
    fail(std::move(message));
    return false;
  }

  bool peek(std::string_view what) const { return text_.substr(at_, what.size()) == what; }

  void skip_space() {
    while (at_ < text_.size() && is_space(text_[at_])) ++at_;
  }

  // Skips up to and past `end`; false when it never comes.
  bool skip_past(std::string_view end) {
    auto found = text_.find(end, at_);
    if (found == std::string_view::npos) return false;
    at_ = found + end.size();
    return true;
  }

  // White space, comments and processing instructions, outside the root element.
  bool misc() {
    for (;;) {
      skip_space();
      if (peek("<?")) {
        if (!skip_past("?>")) return refuse("unterminated processing instruction");
      } else if (peek("<!--")) {
        if (!skip_past("-->")) return refuse("unterminated comment");
      } else if (peek("<!")) {
        // A DTD could declare entities; S3 never sends one.
        return refuse("document type declarations are not accepted");
      } else {
        return true;
      }
    }
  }

  std::optional<std::string> name() {
    std::size_t start = at_;
    if (at_ >= text_.size() || !is_name_start(text_[at_])) return fail("expected a name");
    while (at_ < text_.size() && is_name_char(text_[at_])) ++at_;
    return std::string(text_.substr(start, at_ - start));
  }

  static std::string local(const std::string& qualified) {
    auto colon = qualified.rfind(':');
    return colon == std::string::npos ? qualified : qualified.substr(colon + 1);
  }

  // A reference after its '&': the five predefined entities and character references.
  bool reference(std::string& out) {
    auto semicolon = text_.find(';', at_);
    if (semicolon == std::string_view::npos || semicolon - at_ > 12) {
      return refuse("unterminated reference");
    }
    std::string_view ref = text_.substr(at_, semicolon - at_);
    at_ = semicolon + 1;
    if (ref == "lt") {
      out += '<';
    } else if (ref == "gt") {
      out += '>';
    } else if (ref == "amp") {
      out += '&';
    } else if (ref == "quot") {
      out += '"';
    } else if (ref == "apos") {
      out += '\'';
    } else if (ref.size() >= 2 && ref[0] == '#') {
      bool hex = ref[1] == 'x';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) return refuse("empty character reference");
      std::uint32_t code = 0;
      for (char c : digits) {
        int digit = -1;
        if (c >= '0' && c <= '9') digit = c - '0';
        if (hex && c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        if (hex && c >= 'A' && c <= 'F') digit = c - 'A' + 10;
        if (digit < 0) return refuse("bad character reference");
        code = code * (hex ? 16 : 10) + static_cast<std::uint32_t>(digit);
        if (code > 0x10FFFF) return refuse("character reference out of range");
      }
      if (code == 0 || (code >= 0xD800 && code <= 0xDFFF)) {
        return refuse("character reference to a code point XML excludes");
      }
      append_utf8(out, code);
    } else {
      return refuse("unknown entity");
    }
    return true;
  }

  bool attributes(bool& empty_element) {
    for (;;) {
      std::size_t before = at_;
      skip_space();
      if (peek("/>")) {
        at_ += 2;
        empty_element = true;
        return true;
      }
      if (peek(">")) {
        ++at_;
        empty_element = false;
        return true;
      }
      if (at_ == before) return refuse("expected white space before an attribute");
      if (!name()) return false;
      skip_space();
      if (!peek("=")) return refuse("expected '=' after an attribute name");
      ++at_;
      skip_space();
      if (at_ >= text_.size() || (text_[at_] != '"' && text_[at_] != '\'')) {
        return refuse("expected a quoted attribute value");
      }
      char quote = text_[at_++];
      auto end = text_.find(quote, at_);
      if (end == std::string_view::npos) return refuse("unterminated attribute value");
      if (text_.substr(at_, end - at_).find('<') != std::string_view::npos) {
        return refuse("'<' in an attribute value");
      }
      at_ = end + 1;
    }
  }

  bool element(XmlElement& out, std::size_t depth) {
    if (depth > limits_.max_depth) return refuse("elements nested too deeply");
    if (++elements_ > limits_.max_elements) return refuse("too many elements");
    ++at_;  // '<'
    auto qualified = name();
    if (!qualified) return false;
    out.name = local(*qualified);
    // "a:1" is no name: the local part is one too.
    if (out.name.empty() || !is_name_start(out.name.front())) {
      return refuse("an element name whose local part is not a name");
    }
    bool empty_element = false;
    if (!attributes(empty_element)) return false;
    if (empty_element) return true;
    for (;;) {
      if (at_ >= text_.size()) return refuse("unterminated element " + out.name);
      char c = text_[at_];
      if (c == '&') {
        ++at_;
        if (!reference(out.text)) return false;
      } else if (c != '<') {
        auto next = text_.find_first_of("<&", at_);
        if (next == std::string_view::npos) next = text_.size();
        out.text.append(text_.substr(at_, next - at_));
        at_ = next;
      } else if (peek("</")) {
        at_ += 2;
        auto closing = name();
        if (!closing) return false;
        if (*closing != *qualified) return refuse("</" + *closing + "> closes " + *qualified);
        skip_space();
        if (!peek(">")) return refuse("expected '>'");
        ++at_;
        return true;
      } else if (peek("<!--")) {
        if (!skip_past("-->")) return refuse("unterminated comment");
      } else if (peek("<![CDATA[")) {
        at_ += 9;
        auto end = text_.find("]]>", at_);
        if (end == std::string_view::npos) return refuse("unterminated CDATA section");
        out.text.append(text_.substr(at_, end - at_));
        at_ = end + 3;
      } else if (peek("<?")) {
        if (!skip_past("?>")) return refuse("unterminated processing instruction");
      } else if (peek("<!")) {
        return refuse("markup declarations are not accepted");
      } else {
        out.children.emplace_back();
        if (!element(out.children.back(), depth + 1)) return false;
      }
    }
  }

  std::string_view text_;
  XmlLimits limits_;
  std::size_t at_ = 0;
  std::size_t elements_ = 0;
  std::string error_;
};

}  // namespace

const XmlElement* XmlElement::find(std::string_view child) const {
  for (const auto& element : children) {
    if (element.name == child) return &element;
  }
  return nullptr;
}

std::string XmlElement::text_of(std::string_view child) const {
  const XmlElement* element = find(child);
  return element == nullptr ? std::string() : element->text;
}

std::optional<XmlElement> parse_xml(std::string_view document, std::string& error,
                                    XmlLimits limits) {
  Reader reader(document, limits);
  auto root = reader.document();
  if (!root) error = reader.error();
  return root;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace pullthrough::proxy::s3
