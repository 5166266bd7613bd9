// The fixed parts of the DNS wire format (RFC 1035 section 4.1) that the code here shares: the one
// table of record types, classes and rcodes, header flag bits, sizes, and big-endian reads and
// writes. Callers check bounds before they read or write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pullthrough::dns {

// Record types (RFC 1035 section 3.2.2 and the IANA registry) that the code here names.
namespace rrtype {
inline constexpr std::uint16_t kA = 1;
inline constexpr std::uint16_t kCname = 5;
inline constexpr std::uint16_t kSoa = 6;
inline constexpr std::uint16_t kAaaa = 28;
inline constexpr std::uint16_t kOpt = 41;    // RFC 6891
inline constexpr std::uint16_t kSvcb = 64;   // RFC 9460
inline constexpr std::uint16_t kHttps = 65;  // RFC 9460
inline constexpr std::uint16_t kTsig = 250;  // RFC 8945
inline constexpr std::uint16_t kAny = 255;
}  // namespace rrtype

namespace rrclass {
inline constexpr std::uint16_t kIn = 1;
}  // namespace rrclass

// Response codes (RFC 1035 section 4.1.1).
namespace rcode {
inline constexpr std::uint8_t kNoError = 0;
inline constexpr std::uint8_t kFormErr = 1;
inline constexpr std::uint8_t kServFail = 2;
inline constexpr std::uint8_t kNxDomain = 3;
inline constexpr std::uint8_t kNotImp = 4;
inline constexpr std::uint8_t kRefused = 5;

// The mnemonic, for logs and error messages; "rcode N" for one without a name here.
inline std::string name(unsigned value) {
  switch (value) {
    case kNoError:
      return "NOERROR";
    case kFormErr:
      return "FORMERR";
    case kServFail:
      return "SERVFAIL";
    case kNxDomain:
      return "NXDOMAIN";
    case kNotImp:
      return "NOTIMP";
    case kRefused:
      return "REFUSED";
    default:
      return "rcode " + std::to_string(value);
  }
}
}  // namespace rcode

namespace wire_format {

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::size_t kRecordFixedSize = 10;  // TYPE, CLASS, TTL, RDLENGTH

// Header flag bits (RFC 1035 section 4.1.1, RFC 4035 section 3.2 for AD and CD).
inline constexpr std::uint16_t kQr = 0x8000;
inline constexpr std::uint16_t kOpcodeMask = 0x7800;
inline constexpr std::uint16_t kAa = 0x0400;
inline constexpr std::uint16_t kTc = 0x0200;
inline constexpr std::uint16_t kRd = 0x0100;
inline constexpr std::uint16_t kRa = 0x0080;
inline constexpr std::uint16_t kZ = 0x0040;
inline constexpr std::uint16_t kCd = 0x0010;
inline constexpr std::uint16_t kRcodeMask = 0x000F;
inline constexpr unsigned kOpcodeShift = 11;
inline constexpr unsigned kOpcodeQuery = 0;

// The DO bit, the top bit of the flags in the OPT record's TTL (RFC 3225 section 3).
inline constexpr std::uint16_t kEdnsDo = 0x8000;

inline unsigned opcode(std::uint16_t flags) { return (flags & kOpcodeMask) >> kOpcodeShift; }
inline unsigned rcode_of(std::uint16_t flags) { return flags & kRcodeMask; }

inline std::uint16_t read_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}

inline std::uint32_t read_u32(const std::uint8_t* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (static_cast<std::uint32_t>(p[1]) << 16) |
         (static_cast<std::uint32_t>(p[2]) << 8) | p[3];
}

inline void put_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

inline void put_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

}  // namespace wire_format
}  // namespace pullthrough::dns
