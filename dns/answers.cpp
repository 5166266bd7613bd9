#include "dns/answers.hpp"

#include <algorithm>
#include <cstring>
#include <string>

// ldns/common.h defines bool/true/false as macros unless <stdbool.h> came first.
#include <stdbool.h>

#include "dns/wire_answers.hpp"

#include <ldns/ldns.h>

namespace pullthrough::dns {
namespace {

struct PktFree {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RrFree {
  void operator()(ldns_rr* p) const { ldns_rr_free(p); }
};
struct RdfFree {
  void operator()(ldns_rdf* p) const { ldns_rdf_deep_free(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktFree>;
using RrPtr = std::unique_ptr<ldns_rr, RrFree>;
using RdfPtr = std::unique_ptr<ldns_rdf, RdfFree>;

constexpr std::uint32_t kMaxCacheTtl = 86400;
constexpr int kMaxCnameHops = 16;

// The name of the query as an ldns dname; its case is restored from the client's bytes at the end.
RdfPtr dname(const std::string& lower_name) {
  return RdfPtr(ldns_dname_new_frm_str(lower_name.empty() ? "." : (lower_name + ".").c_str()));
}

std::string lower_text(const ldns_rdf* name) {
  char* text = ldns_rdf2str(name);
  if (text == nullptr) return {};
  std::string out(text);
  free(text);  // NOLINT(cppcoreguidelines-no-malloc): ldns allocates with malloc
  if (!out.empty() && out.back() == '.') out.pop_back();
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A response skeleton for `query`: ID, opcode, RD and CD copied, QR and RA set, the question,
// and OPT when the query had one.
PktPtr response_for(const Query& query, std::uint8_t rcode_value) {
  const auto& q = query.summary;
  PktPtr pkt(ldns_pkt_new());
  ldns_pkt_set_id(pkt.get(), q.id);
  ldns_pkt_set_qr(pkt.get(), true);
  ldns_pkt_set_opcode(pkt.get(), static_cast<ldns_pkt_opcode>(wire_format::opcode(q.flags)));
  ldns_pkt_set_rd(pkt.get(), (q.flags & wire_format::kRd) != 0);
  ldns_pkt_set_cd(pkt.get(), (q.flags & wire_format::kCd) != 0);
  ldns_pkt_set_ra(pkt.get(), true);
  ldns_pkt_set_rcode(pkt.get(), rcode_value);
  if (q.qdcount > 0) {
    ldns_rr* question = ldns_rr_new();
    ldns_rr_set_question(question, true);
    ldns_rr_set_owner(question, dname(q.qname).release());
    ldns_rr_set_type(question, static_cast<ldns_rr_type>(q.qtype));
    ldns_rr_set_class(question, static_cast<ldns_rr_class>(q.qclass));
    ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_QUESTION, question);
  }
  if (q.has_opt) {
    ldns_pkt_set_edns_udp_size(pkt.get(), static_cast<std::uint16_t>(kMaxUdpPayload));
    ldns_pkt_set_edns_do(pkt.get(), q.dnssec_ok);
  }
  return pkt;
}

void clear_section(ldns_pkt* pkt, ldns_pkt_section section) {
  switch (section) {
    case LDNS_SECTION_ANSWER:
      ldns_rr_list_deep_free(ldns_pkt_answer(pkt));
      ldns_pkt_set_answer(pkt, ldns_rr_list_new());
      ldns_pkt_set_ancount(pkt, 0);
      break;
    case LDNS_SECTION_AUTHORITY:
      ldns_rr_list_deep_free(ldns_pkt_authority(pkt));
      ldns_pkt_set_authority(pkt, ldns_rr_list_new());
      ldns_pkt_set_nscount(pkt, 0);
      break;
    case LDNS_SECTION_ADDITIONAL:
      ldns_rr_list_deep_free(ldns_pkt_additional(pkt));
      ldns_pkt_set_additional(pkt, ldns_rr_list_new());
      ldns_pkt_set_arcount(pkt, 0);
      break;
    default:
      break;
  }
}

// The cached answer is shared: the response gets copies of its records.
void push_clones(ldns_pkt* pkt, ldns_pkt_section section, const ldns_rr_list* list) {
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    ldns_pkt_push_rr(pkt, section, ldns_rr_clone(ldns_rr_list_rr(list, i)));
  }
}

std::vector<std::uint8_t> to_wire(const ldns_pkt* pkt) {
  std::uint8_t* data = nullptr;
  std::size_t size = 0;
  if (ldns_pkt2wire(&data, pkt, &size) != LDNS_STATUS_OK) return {};
  std::vector<std::uint8_t> out(data, data + size);
  free(data);  // NOLINT(cppcoreguidelines-no-malloc): ldns allocates with malloc
  return out;
}

bool same_but_case(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  auto fold = [](std::uint8_t c) {
    return static_cast<std::uint8_t>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [&](std::uint8_t x, std::uint8_t y) { return fold(x) == fold(y); });
}

// Encodes `pkt`; when it does not fit `max_size`, sets TC and empties the record sections
// (RFC 2181 section 9: the client retries over TCP). The question bytes are then replaced by the
// client's own, so its letter case comes back exactly as sent.
Built finish(const Query& query, ldns_pkt* pkt, std::size_t max_size, bool rewritten) {
  Built built;
  built.rewritten = rewritten;
  built.wire = to_wire(pkt);
  if (built.wire.size() > max_size) {
    clear_section(pkt, LDNS_SECTION_ANSWER);
    clear_section(pkt, LDNS_SECTION_AUTHORITY);
    clear_section(pkt, LDNS_SECTION_ADDITIONAL);
    ldns_pkt_set_tc(pkt, true);
    built.wire = to_wire(pkt);
    built.truncated = true;
  }
  // Only when ldns wrote the very same bytes but for letter case: a question that compresses its
  // name into itself (legal, never sent by real clients) encodes differently, and copying it
  // would corrupt the answer.
  const auto& q = query.summary;
  std::size_t length = q.question_end - q.question_offset;
  if (q.qdcount > 0 && built.wire.size() >= 12 + length && q.question_end <= query.wire.size() &&
      same_but_case(std::span<const std::uint8_t>(built.wire).subspan(12, length),
                    query.wire.subspan(q.question_offset, length))) {
    std::memcpy(built.wire.data() + 12, query.wire.data() + q.question_offset, length);
  }
  return built;
}

// A record of class IN without rdata yet.
RrPtr new_record(const ldns_rdf* owner, ldns_rr_type type, std::uint32_t ttl) {
  RrPtr rr(ldns_rr_new());
  ldns_rr_set_owner(rr.get(), ldns_rdf_clone(owner));
  ldns_rr_set_type(rr.get(), type);
  ldns_rr_set_class(rr.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr.get(), ttl);
  return rr;
}

RrPtr address_record(const ldns_rdf* owner, const core::IpAddress& address, std::uint32_t ttl) {
  if (address.is_v4()) {
    auto bytes = address.to_v4().to_bytes();
    RrPtr rr = new_record(owner, LDNS_RR_TYPE_A, ttl);
    ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, bytes.size(), bytes.data()));
    return rr;
  }
  auto bytes = address.to_v6().to_bytes();
  RrPtr rr = new_record(owner, LDNS_RR_TYPE_AAAA, ttl);
  ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, bytes.size(), bytes.data()));
  return rr;
}

// The SOA that makes a NODATA answer cacheable for `ttl` (RFC 2308 section 3): the intercepted
// name stands as its own zone apex.
RrPtr soa_record(const ldns_rdf* owner, std::uint32_t ttl) {
  RrPtr rr = new_record(owner, LDNS_RR_TYPE_SOA, ttl);
  ldns_rr_push_rdf(rr.get(), ldns_rdf_clone(owner));  // MNAME
  RdfPtr hostmaster(ldns_dname_new_frm_str("hostmaster"));
  // RNAME: hostmaster.<name>, or the name itself where that would pass 255 octets.
  if (ldns_rdf_size(owner) + 11 <= 255) {  // 11: the "hostmaster" label and its length
    ldns_rr_push_rdf(rr.get(), ldns_dname_cat_clone(hostmaster.get(), owner));
  } else {
    ldns_rr_push_rdf(rr.get(), ldns_rdf_clone(owner));
  }
  ldns_rr_push_rdf(rr.get(), ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, 1));  // SERIAL
  for (int i = 0; i < 4; ++i) {  // REFRESH, RETRY, EXPIRE, MINIMUM
    ldns_rr_push_rdf(rr.get(), ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, ttl));
  }
  return rr;
}

// RFC 8482 section 4.2: the synthesized HINFO for ANY when there is nothing better to give.
RrPtr hinfo_record(const ldns_rdf* owner, std::uint32_t ttl) {
  RrPtr rr = new_record(owner, LDNS_RR_TYPE_HINFO, ttl);
  static constexpr std::uint8_t kCpu[] = {7, 'R', 'F', 'C', '8', '4', '8', '2'};
  static constexpr std::uint8_t kOs[] = {0};
  ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, sizeof kCpu, kCpu));
  ldns_rr_push_rdf(rr.get(), ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, sizeof kOs, kOs));
  return rr;
}

// Adds to `pkt` the records that answer `qtype` for the intercepted `owner`: its addresses of
// that family (rotated), or for ANY the first family that has any, else an SOA (NODATA) or for
// ANY a HINFO. Returns nothing; the caller encodes.
void add_intercepted(ldns_pkt* pkt, const ldns_rdf* owner, std::uint16_t qtype,
                     const std::vector<core::IpAddress>& addresses, std::uint32_t ttl,
                     std::size_t rotation) {
  std::vector<core::IpAddress> v4;
  std::vector<core::IpAddress> v6;
  for (const auto& a : addresses) (a.is_v4() ? v4 : v6).push_back(a);
  const std::vector<core::IpAddress>* chosen = nullptr;
  if (qtype == rrtype::kA) {
    chosen = &v4;
  } else if (qtype == rrtype::kAaaa) {
    chosen = &v6;
  } else if (qtype == rrtype::kAny) {
    chosen = !v4.empty() ? &v4 : &v6;
  }
  if (chosen != nullptr && !chosen->empty()) {
    std::size_t n = chosen->size();
    for (std::size_t i = 0; i < n; ++i) {
      auto rr = address_record(owner, (*chosen)[(i + rotation) % n], ttl);
      ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, rr.release());
    }
    return;
  }
  if (qtype == rrtype::kAny) {
    ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, hinfo_record(owner, ttl).release());
    return;
  }
  ldns_pkt_push_rr(pkt, LDNS_SECTION_AUTHORITY, soa_record(owner, ttl).release());
}

void adjust_ttls(ldns_rr_list* list, const RelayOptions& options) {
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    ldns_rr* rr = ldns_rr_list_rr(list, i);
    std::uint32_t ttl = ldns_rr_ttl(rr);
    ttl = ttl > options.age_seconds ? ttl - options.age_seconds : 0;
    if (options.ttl_cap) ttl = std::min(ttl, *options.ttl_cap);
    ldns_rr_set_ttl(rr, ttl);
  }
}

// Follows the CNAME chain from the question's name through the answer section. When it reaches an
// intercepted name, replaces the answer with the chain up to that point plus our own records for
// the intercepted name. Returns true when it rewrote.
bool rewrite_cname_chain(ldns_pkt* pkt, const Query& query, const RelayOptions& options) {
  if (!options.intercepted || options.rewrite_to == nullptr || options.rewrite_to->empty()) {
    return false;
  }
  ldns_rr_list* answer = ldns_pkt_answer(pkt);
  std::string current = query.summary.qname;
  std::vector<std::size_t> chain;
  for (int hop = 0; hop < kMaxCnameHops; ++hop) {
    std::optional<std::size_t> next;
    for (std::size_t i = 0; i < ldns_rr_list_rr_count(answer); ++i) {
      ldns_rr* rr = ldns_rr_list_rr(answer, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1 &&
          lower_text(ldns_rr_owner(rr)) == current) {
        next = i;
        break;
      }
    }
    if (!next) return false;
    chain.push_back(*next);
    ldns_rr* cname = ldns_rr_list_rr(answer, *next);
    current = lower_text(ldns_rr_rdf(cname, 0));
    if (!options.intercepted(current)) continue;
    // Cut here: keep the chain, answer for `current` ourselves.
    std::vector<ldns_rr*> kept;
    kept.reserve(chain.size());
    for (auto index : chain) kept.push_back(ldns_rr_clone(ldns_rr_list_rr(answer, index)));
    RdfPtr target(ldns_rdf_clone(ldns_rr_rdf(cname, 0)));
    clear_section(pkt, LDNS_SECTION_ANSWER);
    clear_section(pkt, LDNS_SECTION_AUTHORITY);
    clear_section(pkt, LDNS_SECTION_ADDITIONAL);
    for (ldns_rr* rr : kept) ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, rr);
    ldns_pkt_set_rcode(pkt, LDNS_RCODE_NOERROR);
    ldns_pkt_set_ad(pkt, false);
    add_intercepted(pkt, target.get(), query.summary.qtype, *options.rewrite_to, options.answer_ttl,
                    options.rotation);
    return true;
  }
  return false;
}

}  // namespace

class UpstreamAnswer {
 public:
  UpstreamAnswer(PktPtr pkt, std::optional<wire_answers::ReplayTemplate> replay)
      : pkt_(std::move(pkt)), replay_(std::move(replay)) {}
  const ldns_pkt* pkt() const { return pkt_.get(); }
  const wire_answers::ReplayTemplate* replay() const { return replay_ ? &*replay_ : nullptr; }

 private:
  PktPtr pkt_;
  std::optional<wire_answers::ReplayTemplate> replay_;
};

std::size_t max_answer_size(const WireSummary& query, bool over_tcp) {
  if (over_tcp) return 65535;
  if (!query.has_opt) return 512;
  return std::clamp<std::size_t>(query.udp_payload, 512, kMaxUdpPayload);
}

std::optional<ParsedUpstream> parse_upstream(std::span<const std::uint8_t> wire) {
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, wire.data(), wire.size()) != LDNS_STATUS_OK || raw == nullptr) {
    return std::nullopt;
  }
  PktPtr pkt(raw);
  ParsedUpstream out;
  out.rcode = static_cast<std::uint8_t>(ldns_pkt_get_rcode(pkt.get()));
  bool cacheable = !ldns_pkt_tc(pkt.get()) &&
                   (out.rcode == LDNS_RCODE_NOERROR || out.rcode == LDNS_RCODE_NXDOMAIN);
  if (cacheable) {
    std::optional<std::uint32_t> ttl;
    const ldns_rr_list* answer = ldns_pkt_answer(pkt.get());
    const ldns_rr_list* authority = ldns_pkt_authority(pkt.get());
    bool negative = out.rcode == LDNS_RCODE_NXDOMAIN || ldns_rr_list_rr_count(answer) == 0;
    if (negative) {
      // RFC 2308 section 5: min(SOA TTL, SOA MINIMUM); no SOA, no caching.
      for (std::size_t i = 0; i < ldns_rr_list_rr_count(authority); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(authority, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || ldns_rr_rd_count(rr) < 7) continue;
        std::uint32_t minimum = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
        ttl = std::min(ldns_rr_ttl(rr), minimum);
        break;
      }
    } else {
      for (const ldns_rr_list* list : {answer, authority}) {
        for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
          std::uint32_t rr_ttl = ldns_rr_ttl(ldns_rr_list_rr(list, i));
          ttl = ttl ? std::min(*ttl, rr_ttl) : rr_ttl;
        }
      }
    }
    if (ttl && *ttl > 0) out.cache_ttl = std::chrono::seconds(std::min(*ttl, kMaxCacheTtl));
  }
  out.answer = std::make_shared<const UpstreamAnswer>(std::move(pkt), wire_answers::prepare(wire));
  return out;
}

namespace reference {

Built synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                 std::uint32_t ttl, std::size_t rotation, std::size_t max_size) {
  auto pkt = response_for(query, rcode::kNoError);
  ldns_pkt_set_aa(pkt.get(), true);
  RdfPtr owner = dname(query.summary.qname);
  add_intercepted(pkt.get(), owner.get(), query.summary.qtype, addresses, ttl, rotation);
  return finish(query, pkt.get(), max_size, false);
}

Built relay(const Query& query, const UpstreamAnswer& upstream, const RelayOptions& options,
            std::size_t max_size) {
  // A fresh response for the client (its ID, RD, CD, question, and EDNS only when it used EDNS:
  // a clone of the upstream's packet would keep the upstream's OPT), with the upstream's header
  // bits and records.
  const ldns_pkt* up = upstream.pkt();
  auto pkt = response_for(query, static_cast<std::uint8_t>(ldns_pkt_get_rcode(up)));
  ldns_pkt_set_opcode(pkt.get(), ldns_pkt_get_opcode(up));
  ldns_pkt_set_aa(pkt.get(), ldns_pkt_aa(up));
  ldns_pkt_set_tc(pkt.get(), ldns_pkt_tc(up));
  ldns_pkt_set_ra(pkt.get(), ldns_pkt_ra(up));
  ldns_pkt_set_ad(pkt.get(), ldns_pkt_ad(up));
  push_clones(pkt.get(), LDNS_SECTION_ANSWER, ldns_pkt_answer(up));
  push_clones(pkt.get(), LDNS_SECTION_AUTHORITY, ldns_pkt_authority(up));
  push_clones(pkt.get(), LDNS_SECTION_ADDITIONAL, ldns_pkt_additional(up));
  adjust_ttls(ldns_pkt_answer(pkt.get()), options);
  adjust_ttls(ldns_pkt_authority(pkt.get()), options);
  adjust_ttls(ldns_pkt_additional(pkt.get()), options);
  bool rewritten = rewrite_cname_chain(pkt.get(), query, options);
  return finish(query, pkt.get(), max_size, rewritten);
}

Built error_answer(const Query& query, std::uint8_t rcode_value, std::size_t max_size) {
  auto pkt = response_for(query, rcode_value);
  return finish(query, pkt.get(), max_size, false);
}

}  // namespace reference

Built synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                 std::uint32_t ttl, std::size_t rotation, std::size_t max_size) {
  Built built;
  if (wire_answers::synthesize(query, addresses, ttl, rotation, max_size, built)) return built;
  return reference::synthesize(query, addresses, ttl, rotation, max_size);
}

Built relay(const Query& query, const UpstreamAnswer& upstream, const RelayOptions& options,
            std::size_t max_size) {
  Built built;
  if (const auto* replay = upstream.replay();
      replay != nullptr && wire_answers::relay(query, *replay, options, max_size, built)) {
    return built;
  }
  return reference::relay(query, upstream, options, max_size);
}

Built error_answer(const Query& query, std::uint8_t rcode_value, std::size_t max_size) {
  Built built;
  if (wire_answers::error_answer(query, rcode_value, max_size, built)) return built;
  return reference::error_answer(query, rcode_value, max_size);
}

}  // namespace pullthrough::dns
