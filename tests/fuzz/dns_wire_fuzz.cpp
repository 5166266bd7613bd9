// Placeholder: the fuzz target over dns::check_message is being written.
#include <cstddef>
#include <cstdint>
#include <span>

#include "dns/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pullthrough::dns::check_message(std::span<const std::uint8_t>(data, size));
  return 0;
}
