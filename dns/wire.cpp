#include "dns/wire.hpp"

#include <array>

#include "dns/wire_format.hpp"

namespace pullthrough::dns {

namespace {

using wire_format::read_u16;

constexpr std::size_t kHeaderSize = 12;
constexpr std::size_t kMaxNameOctets = 255;  // RFC 1035 section 3.1, length bytes and root included
// Smallest possible question: root name (1) + QTYPE + QCLASS; smallest RR adds TTL and RDLENGTH.
constexpr std::size_t kMinQuestionSize = 1 + 4;
constexpr std::size_t kMinRecordSize = 1 + 10;
// Real encoders need one or two jumps per name; anything near this is an attack, and the cap keeps
// the walk's cost bounded no matter what the pointers do.
constexpr int kMaxJumps = 64;
// Longest text: a name's label bytes D and labels L fit D + L <= 254, so even with every byte
// escaped as \DDD the text holds 4 * D + (L - 1) <= 1012 characters.
constexpr std::size_t kMaxTextSize = std::size_t{4} * 253;

// Collects the first question's name as text on the stack so the summary costs one allocation.
class NameText {
 public:
  void begin_label() {
    if (size_ != 0) buffer_[size_++] = '.';
  }

  void add(std::uint8_t byte) {
    // '.' and '\' would make two different wire names print alike; bytes outside graphic ASCII
    // would make log lines ambiguous. Both get the presentation format's \DDD escape.
    if (byte <= 0x20 || byte >= 0x7f || byte == '.' || byte == '\\') {
      buffer_[size_++] = '\\';
      buffer_[size_++] = static_cast<char>('0' + byte / 100);
      buffer_[size_++] = static_cast<char>('0' + byte / 10 % 10);
      buffer_[size_++] = static_cast<char>('0' + byte % 10);
      return;
    }
    if (byte >= 'A' && byte <= 'Z') byte = static_cast<std::uint8_t>(byte - 'A' + 'a');
    buffer_[size_++] = static_cast<char>(byte);
  }

  std::string_view view() const { return {buffer_.data(), size_}; }

 private:
  std::array<char, kMaxTextSize> buffer_;
  std::size_t size_ = 0;
};

// Walks the name starting at `pos`. On success `next` is the offset just past the name where it
// sits (after its root byte or its first pointer), which is where the record continues.
//
// Once the name has jumped, everything it reads must lie before its first pointer. A legitimate
// encoder only points at names it has already written, so this costs nothing real, and it rules
// out a pointer into the middle of a label whose bytes run forward over the pointer and into
// whatever follows: the name then depends only on bytes before it, so the question section copied
// into a response means there what it meant here.
WireError walk_name(std::span<const std::uint8_t> message, std::size_t pos, std::size_t& next,
                    NameText* text) {
  const std::uint8_t* data = message.data();
  const std::size_t size = message.size();
  std::size_t end = size;  // reads stay below this
  WireError past_end = WireError::truncated;
  std::size_t octets = 1;  // the root byte every name ends with
  std::array<std::uint16_t, kMaxJumps> targets;
  int jumps = 0;
  for (;;) {
    if (pos >= end) return past_end;
    const std::uint8_t length = data[pos];
    switch (length & 0xc0) {
      case 0x00: {
        if (length == 0) {
          if (jumps == 0) next = pos + 1;
          return WireError::none;
        }
        if (end - pos - 1 < length) return past_end;
        octets += 1 + std::size_t{length};
        if (octets > kMaxNameOctets) return WireError::name_too_long;
        if (text != nullptr) {
          text->begin_label();
          for (std::size_t i = pos + 1; i <= pos + length; ++i) text->add(data[i]);
        }
        pos += 1 + std::size_t{length};
        break;
      }
      case 0xc0: {
        if (end - pos < 2) return past_end;
        const std::size_t target = read_u16(data + pos) & 0x3fffU;
        if (target >= size || target < kHeaderSize) return WireError::bad_pointer;
        if (target >= pos) return WireError::compression_loop;
        // Backwards pointers can still cycle through a label that precedes them; a cycle must
        // come back to a target it already used, so report it as what it is instead of waiting
        // for the name to grow too long.
        for (int i = 0; i < jumps; ++i) {
          if (targets[static_cast<std::size_t>(i)] == target) return WireError::compression_loop;
        }
        if (jumps == kMaxJumps) return WireError::compression_loop;
        if (jumps == 0) {
          next = pos + 2;
          end = pos;
          past_end = WireError::compression_loop;
        }
        targets[static_cast<std::size_t>(jumps++)] = static_cast<std::uint16_t>(target);
        pos = target;
        break;
      }
      default:  // 0x40 (extended label, RFC 6891 deprecated it) and 0x80 are reserved
        return WireError::bad_label;
    }
  }
}

WireError check_into(std::span<const std::uint8_t> message, WireSummary& summary) {
  const std::uint8_t* data = message.data();
  const std::size_t size = message.size();
  if (size < kHeaderSize) return WireError::short_header;

  summary.id = read_u16(data);
  summary.flags = read_u16(data + 2);
  summary.qdcount = read_u16(data + 4);
  summary.ancount = read_u16(data + 6);
  summary.nscount = read_u16(data + 8);
  summary.arcount = read_u16(data + 10);

  const std::size_t records = std::size_t{summary.ancount} + summary.nscount + summary.arcount;
  // Rejects absurd counts before walking anything, so a 12-byte packet claiming 65535 records
  // costs nothing.
  if (std::size_t{summary.qdcount} * kMinQuestionSize + records * kMinRecordSize >
      size - kHeaderSize) {
    return WireError::bad_counts;
  }

  std::size_t pos = kHeaderSize;
  NameText qname;
  for (std::size_t i = 0; i < summary.qdcount; ++i) {
    std::size_t next = 0;
    const WireError error = walk_name(message, pos, next, i == 0 ? &qname : nullptr);
    if (error != WireError::none) return error;
    if (size - next < 4) return WireError::truncated;
    if (i == 0) {
      summary.qtype = read_u16(data + next);
      summary.qclass = read_u16(data + next + 2);
      summary.question_offset = pos;
      summary.question_end = next + 4;
    }
    pos = next + 4;
  }

  const std::size_t additional_start = std::size_t{summary.ancount} + summary.nscount;
  for (std::size_t i = 0; i < records; ++i) {
    std::size_t next = 0;
    const WireError error = walk_name(message, pos, next, nullptr);
    if (error != WireError::none) return error;
    if (size - next < 10) return WireError::truncated;
    const std::uint16_t type = read_u16(data + next);
    const std::size_t rdata = next + 10;
    const std::size_t rdlength = read_u16(data + next + 8);
    if (size - rdata < rdlength) return WireError::truncated;
    if (type == rrtype::kOpt) {
      // RFC 6891 section 6.1.1: one OPT, in the additional section, owned by the root.
      if (i < additional_start || summary.has_opt || next != pos + 1) {
        return WireError::bad_opt;
      }
      summary.has_opt = true;
      summary.udp_payload = read_u16(data + next + 2);
      // TTL field: extended RCODE, VERSION, then the DO bit leading the 16 flag bits.
      summary.edns_version = data[next + 5];
      summary.dnssec_ok = (read_u16(data + next + 6) & wire_format::kEdnsDo) != 0;
    }
    pos = rdata + rdlength;
  }
  if (pos != size) return WireError::trailing_garbage;

  summary.qname.assign(qname.view());
  return WireError::none;
}

}  // namespace

std::string_view to_string(WireError error) {
  switch (error) {
    case WireError::none:
      return "none";
    case WireError::short_header:
      return "short_header";
    case WireError::bad_counts:
      return "bad_counts";
    case WireError::bad_label:
      return "bad_label";
    case WireError::name_too_long:
      return "name_too_long";
    case WireError::bad_pointer:
      return "bad_pointer";
    case WireError::compression_loop:
      return "compression_loop";
    case WireError::truncated:
      return "truncated";
    case WireError::trailing_garbage:
      return "trailing_garbage";
    case WireError::bad_opt:
      return "bad_opt";
  }
  return "unknown";
}

WireCheck check_message(std::span<const std::uint8_t> message) {
  WireCheck out;
  out.error = check_into(message, out.summary);
  return out;
}

std::optional<std::string> read_name(std::span<const std::uint8_t> message, std::size_t pos,
                                     std::size_t* next) {
  NameText text;
  std::size_t after = 0;
  if (walk_name(message, pos, after, &text) != WireError::none) return std::nullopt;
  if (next != nullptr) *next = after;
  return std::string(text.view());
}

}  // namespace pullthrough::dns
