#include "dns/codec_info.hpp"

// ldns/common.h defines bool/true/false as macros unless <stdbool.h> came first.
#include <ldns/ldns.h>
#include <stdbool.h>

namespace pullthrough::dns {

std::string ldns_version() { return ::ldns_version(); }

}  // namespace pullthrough::dns
