// The plain-HTTP page on proxy.http_listen that gets the CA onto clients: /ca.crt (PEM), /ca.der,
// /install.sh (scripts/install-ca.sh with this appliance's address and names filled in) and / (how
// to trust the CA on each kind of client). Nothing else is served there.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "certs/authority.hpp"
#include "certs/install_script.hpp"
#include "core/http_service.hpp"

namespace pullthrough::certs {

// The handler for core::HttpService. `ca` must outlive it; `names` are the intercepted names.
core::HttpHandler make_ca_page_handler(const CertificateAuthority& ca,
                                       std::vector<std::string> names);

// The base URL clients should use for this appliance: the request's Host when it is a plain host
// name or address with an optional port, else the address the request arrived on. Never contains
// characters that need quoting in a shell script.
std::string base_url(std::string_view host_header, const core::Endpoint& local);

}  // namespace pullthrough::certs
