// The plain-HTTP page on proxy.http_listen that gets the CA onto clients: /ca.crt (PEM), /ca.der,
// /install.sh (scripts/install-ca.sh with this appliance's address and names filled in), / (how
// to trust the CA on each kind of client) and, when the appliance enrolls clients, POST /enroll
// (a client that now trusts the CA asks to have its registry traffic intercepted). Nothing else is
// served there.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "certs/authority.hpp"
#include "certs/install_script.hpp"
#include "core/http_service.hpp"

namespace pullthrough::certs {

// What POST /enroll answered: the status and a one-line text/plain message for the person at the
// client.
struct EnrollOutcome {
  boost::beast::http::status status = boost::beast::http::status::ok;
  std::string message;
  // Sent as Retry-After (RFC 9110 section 10.2.3), e.g. with 429.
  std::optional<std::chrono::seconds> retry_after;
};

// Called on a connection's io_context thread for each POST /enroll, with the client's address
// (IPv4-mapped IPv6 already unmapped); must not block. An exception becomes a 500.
using EnrollHandler = std::function<EnrollOutcome(const core::IpAddress& client)>;

// The handler for core::HttpService. `ca` must outlive it; `names` are the intercepted names.
// Without `enroll`, /enroll is not served: it answers as any unknown path does.
core::HttpHandler make_ca_page_handler(const CertificateAuthority& ca,
                                       std::vector<std::string> names, EnrollHandler enroll = {});

// The base URL clients should use for this appliance: the request's Host when it is a plain host
// name or address with an optional port, else the address the request arrived on. Never contains
// characters that need quoting in a shell script.
std::string base_url(std::string_view host_header, const core::Endpoint& local);

}  // namespace pullthrough::certs
