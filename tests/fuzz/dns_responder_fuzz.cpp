// Fuzzes the DNS packet entry point, Responder::handle(): any datagram, over UDP or TCP, with the
// gate open or closed. The upstream answers each forwarded query with that query turned into a
// response carrying one A record. Whatever comes back must be a well-formed message for the same
// ID that fits the client's buffer.
#include "core/asio.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "config/loader.hpp"
#include "dns/answers.hpp"
#include "dns/responder.hpp"
#include "dns/wire.hpp"
#include "health/gate.hpp"

namespace {

using namespace pullthrough;

class EchoUpstream final : public dns::Upstream {
 public:
  void forward(std::span<const std::uint8_t> query,
               std::function<void(dns::ForwardResult)> done) override {
    dns::ForwardResult result;
    result.status = dns::ForwardResult::Status::answer;
    result.answer.assign(query.begin(), query.end());
    result.answer[2] |= 0x80;  // QR
    result.answer[3] |= 0x80;  // RA
    result.answer[7] = 1;      // ANCOUNT = 1 (the query had none: check_message allowed it)
    result.answer[6] = 0;
    // An A record for the question's name, by a pointer to offset 12.
    static constexpr std::uint8_t kRecord[] = {0xC0, 0x0C, 0, 1, 0,   1,  0,   0,
                                               0,    60,   0, 4, 198, 51, 100, 1};
    // Records go after the question; anything after it in the query is dropped.
    auto checked = dns::check_message(query);
    result.answer.resize(checked.summary.question_end);
    result.answer[8] = result.answer[9] = result.answer[10] = result.answer[11] = 0;
    result.answer.insert(result.answer.end(), std::begin(kRecord), std::end(kRecord));
    done(std::move(result));
  }
  void shutdown() override {}
};

struct World {
  config::Config config = *config::load_string(
                               "dns: {listen: [\"127.0.0.1:0\"], rate_limit: {per_client_qps: 0}}\n"
                               "registries: [{host: quay.io, aliases: [docker.io]}]\n",
                               "fuzz.yaml")
                               .config;
  core::SteadyClock clock;
  health::SwitchableHealthGate gate;
  EchoUpstream upstream;
  boost::asio::io_context io;
  std::vector<std::string> intercepted = dns::intercepted_names(config.registries);
  dns::Responder responder{io, config.dns, intercepted, gate, upstream, clock};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  if (size < 1) return 0;
  bool over_tcp = (data[0] & 1) != 0;
  if (data[0] & 2) {
    world.gate.set({*core::parse_ip("192.0.2.10"), *core::parse_ip("fd00::10")});
  } else {
    world.gate.close();
  }
  std::span<const std::uint8_t> packet(data + 1, size - 1);
  auto client = core::Endpoint{*core::parse_ip("192.168.1.2"), 5353};
  world.responder.handle(packet, client, over_tcp, [&](std::vector<std::uint8_t> answer) {
    auto query = dns::check_message(packet);
    if (query.error != dns::WireError::none) std::abort();  // malformed input must be dropped
    if (answer.size() > dns::max_answer_size(query.summary, over_tcp)) std::abort();
    auto checked = dns::check_message(answer);
    if (checked.error != dns::WireError::none) {
      std::fprintf(stderr, "answer rejected: %s\n",
                   std::string(dns::to_string(checked.error)).c_str());
      for (auto b : answer) std::fprintf(stderr, "%02x ", b);
      std::fprintf(stderr, "\n");
      std::abort();
    }
    if (checked.summary.id != query.summary.id) std::abort();
    if ((checked.summary.flags & 0x8000) == 0) std::abort();  // QR set
  });
  return 0;
}
