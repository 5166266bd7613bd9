// Our own bounds-checked walk over a DNS message (RFC 1035 section 4, RFC 6891 for OPT). Every
// packet from the network goes through check_message() before anything else looks at it: a
// malformed one is dropped whole and counted by its WireError. ldns then decodes what passed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pullthrough::dns {

enum class WireError : std::uint8_t {
  none,
  short_header,      // fewer than 12 bytes
  bad_counts,        // a section count claims more records than the message holds
  bad_label,         // label length > 63, or a reserved label type (0x40, 0x80)
  name_too_long,     // a name longer than 255 octets in wire form
  bad_pointer,       // a compression pointer outside the message or into the header
  compression_loop,  // a compression pointer that does not point strictly backwards
  truncated,         // a question or record runs past the end of the message
  trailing_garbage,  // bytes after the last record the counts announce
  bad_opt,           // OPT record not owned by the root, outside the additional section, or twice
};

std::string_view to_string(WireError error);

struct WireSummary {
  std::uint16_t id = 0;
  std::uint16_t flags =
      0;  // the header's second 16 bits: QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;
  // The first question, when qdcount >= 1.
  std::string qname;  // lower case, dot-separated, no trailing dot; "" for the root
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  std::size_t question_offset = 12;  // where the first question's name starts
  std::size_t question_end = 12;     // offset just past the first question (after QCLASS)
  // EDNS (RFC 6891 section 6.1.3), when an OPT record is present.
  bool has_opt = false;
  std::uint16_t udp_payload = 0;  // OPT CLASS, as sent (may be below 512)
  std::uint8_t edns_version = 0;
  bool dnssec_ok = false;  // DO bit
};

struct WireCheck {
  WireError error = WireError::none;
  WireSummary summary;  // meaningful only when error == none
};

WireCheck check_message(std::span<const std::uint8_t> message);

// The name at `pos` in `message`, as lower-case text in the form of WireSummary::qname; `next`
// gets the offset just past it where it sits. Empty when the bytes there are not a valid name.
std::optional<std::string> read_name(std::span<const std::uint8_t> message, std::size_t pos,
                                     std::size_t* next = nullptr);

}  // namespace pullthrough::dns
