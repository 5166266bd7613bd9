#pragma once

#include <string>

namespace pullthrough::dns {

// The version of the ldns library the DNS codec runs on (ldns headers stay inside dns/*.cpp).
std::string ldns_version();

}  // namespace pullthrough::dns
