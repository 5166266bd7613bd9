#include "dns/wire.hpp"

namespace pullthrough::dns {

// Placeholder body; the real walk is being written (see dns/wire.hpp for the contract).
std::string_view to_string(WireError) { return "unknown"; }

WireCheck check_message(std::span<const std::uint8_t>) {
  WireCheck out;
  out.error = WireError::short_header;
  return out;
}

}  // namespace pullthrough::dns
