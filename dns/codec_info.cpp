#include "dns/codec_info.hpp"

// ldns/common.h defines bool/true/false as macros unless <stdbool.h> came first.
#include <stdbool.h>

#include <ldns/ldns.h>

namespace pullthrough::dns {

std::string ldns_version() { return ::ldns_version(); }

}  // namespace pullthrough::dns
