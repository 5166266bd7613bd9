// DNS over UDP: on each address one SO_REUSEPORT socket per CPU, each with its own thread pinned to
// that CPU and its own event loop. A wake-up reads up to a batch of datagrams with recvmmsg, hands
// each to the QueryHandler and sends the answers it got at once with one sendmmsg. What an answer
// says is the handler's business; this knows sockets only.
#pragma once

#include <memory>
#include <vector>

#include "core/counters.hpp"
#include "core/gate.hpp"
#include "core/net.hpp"
#include "dns/query_handler.hpp"

namespace pullthrough::dns {

class UdpListener {
 public:
  // Where the listener counts what never reaches the handler, or never leaves.
  struct Counters {
    core::Counter& malformed;    // every datagram dropped here
    core::Counter& too_large;    // larger than any query of ours (cut short by the kernel)
    core::Counter& send_errors;  // answers the socket would not take
  };

  // `handler` must stay valid until the destructor returns; `counters` as long as any Send this
  // listener made lives (see start()).
  UdpListener(std::vector<core::Endpoint> listen, QueryHandler handler, Counters counters);
  // Joins the socket threads.
  ~UdpListener();
  UdpListener(const UdpListener&) = delete;
  UdpListener& operator=(const UdpListener&) = delete;

  // Binds `per_address` sockets to every address; throws std::system_error naming the one that
  // failed. An IPv6 wildcard is IPv6-only when its port also has an IPv4 address configured.
  void bind(unsigned per_address);
  // Starts one thread per socket, named dns-udp-N. Each socket's read loop holds a place in `gate`
  // until stop(). A Send made for a deferred answer holds `owner` (who owns the handler's context,
  // the counters and this listener), so the socket it writes to stays open until it has run.
  void start(core::Gate& gate, const std::shared_ptr<void>& owner);
  // Stops reading. The sockets stay open for answers still to come back from upstream. Safe from
  // any thread.
  void stop();
  // Stops the socket threads and waits for them (the destructor does too). The sockets stay open
  // while this listener lives.
  void join();

  // The addresses bound, one per configured address (port 0 becomes the kernel's choice). Valid
  // after bind().
  const std::vector<core::Endpoint>& bound() const;

 private:
  struct Shard;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace pullthrough::dns
