#include "certs/ca_page.hpp"

#include "core/asio.hpp"

#include <algorithm>

namespace pullthrough::certs {
namespace {

core::HttpResponse respond(http::status status, std::string_view type, std::string body) {
  core::HttpResponse res{status, 11};
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

std::string instructions(const std::string& url, const CertificateAuthority& ca,
                         const std::vector<std::string>& names) {
  std::string list;
  for (const auto& name : names) list += "  " + name + "\n";
  auto info = describe(ca.certificate());
  return "pullthrough: container registry cache for this network\n"
         "\n"
         "This appliance answers for these registries:\n" +
         list +
         "\n"
         "Clients must trust its CA once. On any Linux client, as root:\n"
         "\n"
         "  curl -fsSL " +
         url +
         "/install.sh | sh\n"
         "  (or: wget -qO- " +
         url +
         "/install.sh | sh)\n"
         "\n"
         "It installs the CA into the OS trust store and, where present, for Docker,\n"
         "containerd and podman, and says what needs a restart.\n"
         "Enroll this machine: install.sh does that as its last step, telling the\n"
         "appliance that this machine now trusts its CA (POST " +
         url +
         "/enroll).\n"
         "\n"
         "CA certificate: " +
         url + "/ca.crt (PEM), " + url +
         "/ca.der (DER)\n"
         "Subject:        " +
         info.subject +
         "\n"
         "SHA-256:        " +
         info.sha256_fingerprint +
         "\n"
         "\n"
         "By hand on Linux, as root:\n"
         "  Debian, Ubuntu, Alpine:\n"
         "    curl -fsSLo /usr/local/share/ca-certificates/pullthrough.crt " +
         url +
         "/ca.crt\n"
         "    update-ca-certificates\n"
         "  RHEL, Fedora:\n"
         "    curl -fsSLo /etc/pki/ca-trust/source/anchors/pullthrough.crt " +
         url +
         "/ca.crt\n"
         "    update-ca-trust extract\n"
         "  Docker: /etc/docker/certs.d/<registry>/ca.crt for each registry above (read per\n"
         "    pull), or the OS trust store and a restart of dockerd.\n"
         "  containerd: the OS trust store and a restart of containerd, or\n"
         "    /etc/containerd/certs.d/<registry>/hosts.toml with ca = \".../ca.crt\" when\n"
         "    config_path is set.\n"
         "  podman, skopeo, CRI-O: /etc/containers/certs.d/<registry>/ca.crt (read per pull).\n"
         "  Then enroll the machine:\n"
         "    curl -X POST " +
         url +
         "/enroll\n"
         "\n"
         "macOS with Docker Desktop, in Terminal:\n"
         "    curl -fsSLo pullthrough.crt " +
         url +
         "/ca.crt\n"
         "    sudo security add-trusted-cert -d -r trustRoot \\\n"
         "      -k /Library/Keychains/System.keychain pullthrough.crt\n"
         "  Restart Docker Desktop, which reads the keychain when it starts. Then enroll:\n"
         "    curl -X POST " +
         url +
         "/enroll\n"
         "\n"
         "Windows with Docker Desktop, in a Command Prompt run as administrator:\n"
         "    curl.exe -fsSLo pullthrough.crt " +
         url +
         "/ca.crt\n"
         "    certutil -addstore -f Root pullthrough.crt\n"
         "  Restart Docker Desktop. Then enroll (curl.exe comes with Windows 10 and later):\n"
         "    curl.exe -X POST " +
         url +
         "/enroll\n"
         "\n"
         "Kubernetes node (kubelet pulls through containerd), as root on the node:\n"
         "  For each registry above, put the CA at /etc/containerd/certs.d/<registry>/ca.crt\n"
         "  and next to it a hosts.toml holding the line\n"
         "    ca = \"/etc/containerd/certs.d/<registry>/ca.crt\"\n"
         "  containerd reads these at each pull, but only when its CRI registry config has\n"
         "  config_path = \"/etc/containerd/certs.d\". Otherwise use the OS trust store as\n"
         "  above and restart containerd. (A DaemonSet can do this on every node.)\n"
         "  Then enroll the node:\n"
         "    curl -X POST " +
         url + "/enroll\n";
}

// Enrolling changes what the appliance does for this client, so only POST (RFC 9110 section
// 9.2.1: GET and HEAD must be safe; a prefetching browser or link checker must not enroll).
core::HttpResponse answer_enroll(const EnrollHandler& enroll, http::verb method,
                                 const core::Endpoint& peer) {
  if (method != http::verb::post) {
    auto res =
        respond(http::status::method_not_allowed, "text/plain; charset=utf-8", "only POST\n");
    res.set(http::field::allow, "POST");
    return res;
  }
  auto outcome = enroll(core::unmapped(peer.address));
  auto res =
      respond(outcome.status, "text/plain; charset=utf-8", std::move(outcome.message) + "\n");
  if (outcome.retry_after) {
    // delta-seconds is a non-negative integer (RFC 9110 section 10.2.3).
    auto seconds = std::max<std::chrono::seconds::rep>(0, outcome.retry_after->count());
    res.set(http::field::retry_after, std::to_string(seconds));
  }
  return res;
}

}  // namespace

std::string base_url(std::string_view host_header, const core::Endpoint& local) {
  auto host = host_header;
  bool ok = !host.empty() && host.size() <= 262;
  if (ok && host.front() == '[') {
    auto close = host.find(']');
    ok = close != std::string_view::npos && core::parse_ip(host.substr(1, close - 1)).has_value();
    auto rest = host.substr(ok ? close + 1 : 0);
    ok = ok && (rest.empty() || (rest.size() > 1 && rest.front() == ':' && rest.size() <= 6 &&
                                 std::all_of(rest.begin() + 1, rest.end(),
                                             [](char c) { return c >= '0' && c <= '9'; })));
  } else if (ok) {
    auto colon = host.find(':');
    auto name = host.substr(0, colon);
    ok = !name.empty() && std::all_of(name.begin(), name.end(), is_host_char);
    if (ok && colon != std::string_view::npos) {
      auto port = host.substr(colon + 1);
      ok = !port.empty() && port.size() <= 5 &&
           std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    }
  }
  if (ok) return "http://" + std::string(host);
  auto port = local.port == 80 ? std::string() : ":" + std::to_string(local.port);
  if (local.address.is_v6()) return "http://[" + local.address.to_string() + "]" + port;
  return "http://" + local.address.to_string() + port;
}

core::HttpHandler make_ca_page_handler(const CertificateAuthority& ca,
                                       std::vector<std::string> names, EnrollHandler enroll) {
  std::string joined;
  for (const auto& name : names) joined += (joined.empty() ? "" : " ") + name;
  return [&ca, names = std::move(names), joined,
          enroll = std::move(enroll)](const core::HttpExchange& exchange) {
    const auto& request = exchange.request;
    std::string_view target = request.target();
    auto path = target.substr(0, target.find('?'));
    if (enroll && path == "/enroll") return answer_enroll(enroll, request.method(), exchange.peer);
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      auto res = respond(http::status::method_not_allowed, "text/plain; charset=utf-8",
                         "only GET and HEAD\n");
      res.set(http::field::allow, "GET, HEAD");
      return res;
    }
    std::string url = base_url(request[http::field::host], exchange.local);
    if (path == "/ca.crt") {
      auto res = respond(http::status::ok, "application/x-pem-file", ca.certificate_pem());
      res.set(http::field::content_disposition, "attachment; filename=\"pullthrough-ca.crt\"");
      return res;
    }
    if (path == "/ca.der") {
      // RFC 2585 section 4.1.
      auto res = respond(http::status::ok, "application/pkix-cert", ca.certificate_der());
      res.set(http::field::content_disposition, "attachment; filename=\"pullthrough-ca.der\"");
      return res;
    }
    if (path == "/install.sh") {
      auto script = replace_all(std::string(install_script_template()), "__PULLTHROUGH_URL__", url);
      script = replace_all(std::move(script), "__PULLTHROUGH_NAMES__", joined);
      return respond(http::status::ok, "text/x-shellscript; charset=utf-8", std::move(script));
    }
    if (path == "/") {
      return respond(http::status::ok, "text/plain; charset=utf-8", instructions(url, ca, names));
    }
    return respond(http::status::not_found, "text/plain; charset=utf-8",
                   "not found: this listener serves /, /ca.crt, /ca.der and /install.sh\n");
  };
}

}  // namespace pullthrough::certs
