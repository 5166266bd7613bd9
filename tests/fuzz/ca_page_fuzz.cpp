// Fuzzes the CA page with arbitrary HTTP requests: whatever the Host header says, the install
// script's URL line must stay a plain http:// URL with no shell metacharacters.
#include "core/asio.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include <boost/beast/http.hpp>

#include "certs/ca_page.hpp"

namespace {

using namespace pullthrough;

const certs::CertificateAuthority& authority() {
  static const auto ca = [] {
    auto dir = std::filesystem::temp_directory_path() / "pullthrough-ca-page-fuzz";
    return certs::CertificateAuthority::load_or_create(dir, "fuzz",
                                                       std::chrono::system_clock::now());
  }();
  return ca;
}

bool safe_url_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view(".-:/[]").find(c) != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto handler = certs::make_ca_page_handler(authority(), {"quay.io", "docker.io"});
  http::request_parser<http::empty_body> parser;
  parser.header_limit(8192);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  auto local = *core::parse_endpoint("192.0.2.1:80");
  auto res = handler(core::HttpExchange{parser.get(), local, local});
  if (res.result() != http::status::ok) return 0;
  const std::string& body = res.body();
  auto at = body.find("\nURL=");
  if (at == std::string::npos) return 0;  // not the install script
  auto end = body.find('\n', at + 1);
  std::string_view url(body.data() + at + 5, end - at - 5);
  if (!url.starts_with("http://")) std::abort();
  for (char c : url) {
    if (!safe_url_char(c)) std::abort();
  }
  return 0;
}
