// The health check a cache host must pass, made the way a client would reach it: a TCP connect to
// port 443, a TLS handshake with the SNI of an intercepted name (the certificate verified against
// the appliance's CA when it is known), and `GET /v2/`, which must answer 200 within the timeout.
// A pullthrough cache also says in its `Pullthrough-Storage` header whether its store can take
// new blobs; anything but "ok" fails the check, so a cache with a full or read-only disk is taken
// out of the DNS answers even when it runs on another machine.
#pragma once

#include "core/asio.hpp"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>

#include "health/client_events.hpp"
#include "health/monitor.hpp"

namespace pullthrough::health {

// What a cache's answer to `GET /v2/` says about it: passed on 200 unless its storage header says
// otherwise; failed and `leaving` when it says the cache is about to stop. `detail` is printable
// ASCII and short, whatever the answer held.
CheckResult judge_answer(const boost::beast::http::response_header<>& answer);

// The client events in a cache's answer (health/client_events.hpp): its cursor and the events, at
// most kMaxEventsPerAnswer of them; fields that do not parse are skipped. Nothing when the answer
// has no valid cursor.
struct ClientEventsAnswer {
  EventCursor cursor;
  std::vector<NumberedEvent> events;
};
std::optional<ClientEventsAnswer> read_client_events(
    const boost::beast::http::response_header<>& answer);

// Where the client events of a cache's answers go, with the cache's address for the log. Called
// on the checking coroutine's thread.
using ClientEventSink =
    std::function<void(const ClientEventsAnswer& answer, const core::Endpoint& cache)>;

// The bound on that answer's header (its body is never read): anything near it is not a registry.
inline constexpr std::size_t kMaxAnswerHeaderBytes = std::size_t{16} * 1024;

// Where the probe gets the CA the cache's certificate must chain to: the PEM text, or nothing yet.
// Asked at construction and then before each check until it has an answer, so that a dns role
// started before the proxy role first made its CA picks the CA up once it exists.
using CaSource = std::function<std::optional<std::string>()>;

class TlsCacheProbe final : public CacheProbe {
 public:
  // `server_name`: an intercepted name, sent as SNI and Host. `ca`: the CA the cache's certificate
  // must chain to, for that name; while there is none the certificate is not verified (the check
  // then proves reachability only). Throws std::runtime_error on a CA that does not parse at
  // construction; one found later that does not parse fails the check, and is asked for again.
  // `events`: where the client events of the answers go; without one none are asked for.
  TlsCacheProbe(std::string server_name, CaSource ca, ClientEventSink events = {});
  // A fixed CA, or none.
  TlsCacheProbe(std::string server_name, std::optional<std::string> ca_pem);

  boost::asio::awaitable<CheckResult> check(const core::Endpoint& target,
                                            std::chrono::milliseconds timeout) override;

  bool verifies() const;

 private:
  // The TLS context for the next check, with the CA once the source has it. Throws as
  // make_context does. Checks of several hosts run at once: each keeps the context it started with.
  std::shared_ptr<boost::asio::ssl::context> current_context();

  std::string server_name_;
  CaSource ca_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;  // verifies the peer once it has the CA
  ClientEventSink events_;
  // The last client event seen from each cache, by its endpoint.
  std::map<std::string, EventCursor> cursors_;
};

}  // namespace pullthrough::health
