// The health check a cache host must pass, made the way a client would reach it: a TCP connect to
// port 443, a TLS handshake with the SNI of an intercepted name (the certificate verified against
// the appliance's CA when it is known), and `GET /v2/`, which must answer 200 within the timeout.
// A pullthrough cache also says in its `Pullthrough-Storage` header whether its store can take
// new blobs; anything but "ok" fails the check, so a cache with a full or read-only disk is taken
// out of the DNS answers even when it runs on another machine.
#pragma once

#include "core/asio.hpp"

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>

#include "dns/health_monitor.hpp"

namespace pullthrough::dns {

// What a cache's answer to `GET /v2/` says about it: passed on 200 unless its storage header says
// otherwise; failed and `leaving` when it says the cache is about to stop. `detail` is printable
// ASCII and short, whatever the answer held.
CheckResult judge_answer(const boost::beast::http::response_header<>& answer);

// The bound on that answer's header (its body is never read): anything near it is not a registry.
inline constexpr std::size_t kMaxAnswerHeaderBytes = std::size_t{16} * 1024;

class TlsCacheProbe final : public CacheProbe {
 public:
  // `server_name`: an intercepted name, sent as SNI and Host. `ca_pem`: the CA the cache's
  // certificate must chain to, for that name; without it the certificate is not verified (the
  // check then proves reachability only). Throws std::runtime_error on a CA that does not parse.
  TlsCacheProbe(std::string server_name, std::optional<std::string> ca_pem);

  boost::asio::awaitable<CheckResult> check(const core::Endpoint& target,
                                            std::chrono::milliseconds timeout) override;

  bool verifies() const { return verifies_; }

 private:
  std::string server_name_;
  bool verifies_ = false;
  boost::asio::ssl::context context_;
};

}  // namespace pullthrough::dns
