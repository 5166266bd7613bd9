#include "dns/forwarder.hpp"

namespace pullthrough::dns {

// Placeholder body; the real forwarder is being written (see dns/forwarder.hpp for the contract).
struct Forwarder::State {
  ForwarderCounters counters;
};

Forwarder::Forwarder(boost::asio::io_context&, std::vector<core::Endpoint>,
                     std::chrono::milliseconds)
    : state_(std::make_shared<State>()) {}

Forwarder::~Forwarder() = default;

void Forwarder::forward(std::span<const std::uint8_t>, std::function<void(ForwardResult)> done) {
  ForwardResult result;
  result.error = "not implemented";
  done(std::move(result));
}

void Forwarder::shutdown() {}

const ForwarderCounters& Forwarder::counters() const { return state_->counters; }

}  // namespace pullthrough::dns
