// Fuzzes what the proxy's resolver makes of a resolver's answers (dns::AddressResolver): the
// input becomes the answer to both the A and the AAAA query, with a header and question that
// match the query (so the fuzzer explores the records, not the checks that come before them).
// Byte 0: flags (rcode in the low bits), byte 1: ANCOUNT, byte 2: which family answers with the
// fuzz records (the other gets none); the rest: the answer section.
#include "core/asio.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/clock.hpp"
#include "dns/address_resolver.hpp"
#include "dns/upstream.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace pullthrough;
using pullthrough::fuzz::check;

constexpr std::size_t kHeaderBytes = 12;

class FuzzUpstream final : public dns::Upstream {
 public:
  FuzzUpstream(std::uint8_t flags, std::uint8_t count, std::uint8_t family,
               std::span<const std::uint8_t> records)
      : flags_(flags), count_(count), family_(family), records_(records) {}

  void forward(std::span<const std::uint8_t> query,
               std::function<void(dns::ForwardResult)> done) override {
    dns::ForwardResult result;
    result.status = dns::ForwardResult::Status::answer;
    if (query.size() < kHeaderBytes + 5) {
      result.status = dns::ForwardResult::Status::error;
      done(std::move(result));
      return;
    }
    // The question's type sits in the 4 bytes after the name, at the end of the query.
    std::uint16_t type =
        static_cast<std::uint16_t>(query[query.size() - 4] << 8 | query[query.size() - 3]);
    bool answers = (family_ & 1) != 0 ? type == 1 : type == 28;
    auto& out = result.answer;
    out.assign(query.begin(), query.end());
    out[2] = static_cast<std::uint8_t>(0x80 | (query[2] & 0x01));  // QR, RD echoed
    out[3] = static_cast<std::uint8_t>(0x80 | (flags_ & 0x0F));    // RA, rcode
    out[6] = 0;
    out[7] = answers ? count_ : 0;
    out[8] = out[9] = out[10] = out[11] = 0;
    if (answers) out.insert(out.end(), records_.begin(), records_.end());
    done(std::move(result));
  }
  void shutdown() override {}

 private:
  std::uint8_t flags_;
  std::uint8_t count_;
  std::uint8_t family_;
  std::span<const std::uint8_t> records_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  boost::asio::io_context io;
  core::SteadyClock clock;
  FuzzUpstream upstream(data[0], data[1], data[2],
                        std::span<const std::uint8_t>(data + 3, size - 3));
  dns::AddressResolver resolver(io, upstream, clock);
  int calls = 0;
  core::ResolveResult result;
  resolver.resolve("quay.io", [&](core::ResolveResult r) {
    ++calls;
    result = std::move(r);
  });
  io.run();
  check(calls == 1, "done called exactly once");
  check(result.addresses.empty() != result.error.empty(), "addresses or an error, not both");
  std::set<core::IpAddress> unique(result.addresses.begin(), result.addresses.end());
  check(unique.size() == result.addresses.size(), "no duplicate addresses");
  bool seen_v6 = false;
  for (const auto& address : result.addresses) {
    if (address.is_v6()) seen_v6 = true;
    check(!(seen_v6 && address.is_v4()), "IPv4 before IPv6");
  }
  return 0;
}
