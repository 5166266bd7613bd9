// Building DNS messages with ldns (the reference codec) for the dns tests.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "dns/answers.hpp"
#include "dns/upstream.hpp"

namespace pullthrough::dns::testing {

struct QuerySpec {
  std::string name = {};  // presentation form, case as it should appear on the wire
  std::uint16_t type = 1;
  std::uint16_t id = 0x1234;
  bool edns = false;
  std::uint16_t udp_size = 1232;
  bool dnssec_ok = false;
  bool ad = false;
  bool cd = false;
};

std::vector<std::uint8_t> make_query(const QuerySpec& spec);

// A query built from `spec` that passed check_message(), owning its bytes (moving it keeps
// `query.wire` valid: a vector's buffer moves with it).
struct TestQuery {
  std::vector<std::uint8_t> bytes;
  Query query;
};

TestQuery query_for(const QuerySpec& spec);

// A response built from zone-file lines, e.g. {"foo.example. 300 IN CNAME quay.io."}.
struct ResponseSpec {
  std::string qname = {};
  std::uint16_t qtype = 1;
  std::uint16_t id = 0x1234;
  std::uint8_t rcode = 0;
  bool tc = false;
  std::vector<std::string> answer = {};
  std::vector<std::string> authority = {};
  std::vector<std::string> additional = {};
  bool edns = false;  // an OPT record after the additional section
  bool ad = false;
};

std::vector<std::uint8_t> make_response(const ResponseSpec& spec);

// A decoded message, for assertions.
struct Decoded {
  bool ok = false;
  std::uint16_t id = 0;
  std::uint8_t rcode = 0;
  bool qr = false, aa = false, tc = false, rd = false, ra = false, ad = false, cd = false;
  bool has_opt = false;
  bool dnssec_ok = false;
  std::uint16_t udp_size = 0;
  std::vector<std::string> question;  // "name type" lines
  std::vector<std::string> answer;    // zone-file lines as ldns prints them, tabs as spaces
  std::vector<std::string> authority = {};
  std::vector<std::string> additional;
  bool operator==(const Decoded&) const = default;
};

// Every field and record of a decoded message on one line each, for readable test failures.
std::string describe(const Decoded& d);

Decoded decode(const std::vector<std::uint8_t>& wire);

// Answers every forwarded query at once, on the caller's thread, with what the test says.
class FakeUpstream final : public Upstream {
 public:
  std::function<ForwardResult(std::span<const std::uint8_t>)> respond;
  int calls = 0;
  bool shut_down = false;

  void forward(std::span<const std::uint8_t> query,
               std::function<void(ForwardResult)> done) override {
    ++calls;
    done(respond(query));
  }
  void shutdown() override { shut_down = true; }
};

// An upstream's answer built from `spec`, and an upstream that timed out.
ForwardResult answer_with(const ResponseSpec& spec);
ForwardResult timed_out();

// The qname text (the form of WireSummary::qname) of an uncompressed wire name, written
// independently of dns/wire.cpp so that tests and fuzz targets can check it.
std::string qname_text(std::span<const std::uint8_t> name);

}  // namespace pullthrough::dns::testing
