// What a DNS listener hands each query to, and how the answer comes back: the contract between the
// UDP and TCP listeners, which know sockets and framing, and the policy, which knows answers.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/net.hpp"

namespace pullthrough::dns {

// What became of one query: answered at once (the answer is in `out`), deferred (the handler
// called `defer` and will pass the answer to the Send it got, exactly once), or dropped (nothing
// goes back: a malformed packet, or a response).
enum class Outcome : std::uint8_t { answered, deferred, dropped };

// Takes an answer that was deferred. Runs on whichever thread finished the work (an upstream's),
// so it must be safe to call from any thread.
using Send = std::function<void(std::vector<std::uint8_t>)>;

// Called at most once per query, and only for a deferred one, to make its Send. A listener keeps
// what this captures to one reference, so that std::function holds it inline: building one per
// datagram then costs no allocation.
using Defer = std::function<Send()>;

// A function pointer and its context rather than a std::function or a virtual call: the UDP
// listener calls it for every datagram, and this way that is one indirect call with nothing to
// copy, count or allocate. `context` must outlive every listener that holds the handler.
struct QueryHandler {
  using Answer = Outcome (*)(void* context, std::span<const std::uint8_t> packet,
                             const core::Endpoint& client, bool over_tcp,
                             std::vector<std::uint8_t>& out, const Defer& defer);
  Answer answer = nullptr;
  void* context = nullptr;

  Outcome operator()(std::span<const std::uint8_t> packet, const core::Endpoint& client,
                     bool over_tcp, std::vector<std::uint8_t>& out, const Defer& defer) const {
    return answer(context, packet, client, over_tcp, out, defer);
  }
};

}  // namespace pullthrough::dns
