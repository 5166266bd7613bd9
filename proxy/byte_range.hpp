// Range requests on blob GETs (RFC 9110 section 14): which bytes of a representation of known size
// a request's Range field asks for, and the Content-Range that answers it. Only a single byte range
// is honoured; registries and their clients never send more than one, so a multi-range request is
// served whole rather than as multipart/byteranges.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pullthrough::proxy {

// Inclusive on both ends, as in the "first-last" of a byte-range-spec (RFC 9110 14.1.2).
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t length() const { return last - first + 1; }
};

// whole: 200 with the full body. partial: 206 for `range`. unsatisfiable: 416 (RFC 9110 15.5.17).
enum class RangeKind { whole, partial, unsatisfiable };

struct RangeDecision {
  RangeKind kind = RangeKind::whole;
  ByteRange range;  // meaningful only for partial
};

// `header`: the Range field value, or nullopt when absent. `size`: the representation's length.
//
// A server may ignore Range (RFC 9110 14.2), so anything not understood is served whole rather
// than rejected: another unit (units compare case-insensitively, 14.1), a ranges-specifier outside
// the 14.1.1 grammar, or more than one range-spec. Leading and trailing spaces and tabs of the
// field value and of the range-spec are ignored; none are allowed inside it. Numbers are digits
// only, leading zeros allowed, at most 19 of them, so they always fit in 64 bits.
//
// Satisfiability follows 14.1.1: an int-range needs first < size (last is clamped to size - 1,
// 14.1.2) and a suffix-range a non-zero length. A suffix-range on an empty representation is
// also unsatisfiable here: 14.1.1 counts it satisfiable, but a 206 has no way to carry zero bytes.
// A range that happens to cover every byte is still partial: the client asked for a range.
RangeDecision decide_range(std::optional<std::string_view> header, std::uint64_t size);

// "bytes 0-99/1234" for a 206 (RFC 9110 14.4).
std::string content_range(const ByteRange& range, std::uint64_t size);

// "bytes */1234": a 416 should say the current length (RFC 9110 14.4, 15.5.17).
std::string unsatisfied_content_range(std::uint64_t size);

}  // namespace pullthrough::proxy
