#include "dns_test_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <stdbool.h>

#include "dns/wire.hpp"

#include <ldns/ldns.h>

namespace pullthrough::dns::testing {
namespace {

std::vector<std::uint8_t> wire_of(ldns_pkt* pkt) {
  std::uint8_t* data = nullptr;
  std::size_t size = 0;
  std::vector<std::uint8_t> out;
  if (ldns_pkt2wire(&data, pkt, &size) == LDNS_STATUS_OK) out.assign(data, data + size);
  std::free(data);
  return out;
}

std::string one_line(const ldns_rr* rr) {
  char* text = ldns_rr2str(rr);
  std::string out = text == nullptr ? "" : text;
  std::free(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  for (auto& c : out) {
    if (c == '\t') c = ' ';
  }
  return out;
}

std::vector<std::string> lines(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    out.push_back(one_line(ldns_rr_list_rr(list, i)));
  }
  return out;
}

void push(ldns_pkt* pkt, ldns_pkt_section section, const std::string& line) {
  ldns_rr* rr = nullptr;
  if (ldns_rr_new_frm_str(&rr, line.c_str(), 0, nullptr, nullptr) == LDNS_STATUS_OK) {
    ldns_pkt_push_rr(pkt, section, rr);
  }
}

}  // namespace

std::vector<std::uint8_t> make_query(const QuerySpec& spec) {
  ldns_pkt* pkt =
      ldns_pkt_query_new(ldns_dname_new_frm_str(spec.name.c_str()),
                         static_cast<ldns_rr_type>(spec.type), LDNS_RR_CLASS_IN, LDNS_RD);
  ldns_pkt_set_id(pkt, spec.id);
  ldns_pkt_set_ad(pkt, spec.ad);
  ldns_pkt_set_cd(pkt, spec.cd);
  if (spec.edns) {
    ldns_pkt_set_edns_udp_size(pkt, spec.udp_size);
    ldns_pkt_set_edns_do(pkt, spec.dnssec_ok);
  }
  auto out = wire_of(pkt);
  ldns_pkt_free(pkt);
  return out;
}

TestQuery query_for(const QuerySpec& spec) {
  TestQuery t;
  t.bytes = make_query(spec);
  auto checked = check_message(t.bytes);
  if (checked.error != WireError::none) {
    throw std::logic_error("test query does not pass check_message: " +
                           std::string(to_string(checked.error)));
  }
  t.query = Query{t.bytes, checked.summary};
  return t;
}

std::vector<std::uint8_t> make_response(const ResponseSpec& spec) {
  ldns_pkt* pkt =
      ldns_pkt_query_new(ldns_dname_new_frm_str(spec.qname.c_str()),
                         static_cast<ldns_rr_type>(spec.qtype), LDNS_RR_CLASS_IN, LDNS_RD);
  ldns_pkt_set_id(pkt, spec.id);
  ldns_pkt_set_qr(pkt, true);
  ldns_pkt_set_ra(pkt, true);
  ldns_pkt_set_tc(pkt, spec.tc);
  ldns_pkt_set_rcode(pkt, spec.rcode);
  for (const auto& line : spec.answer) push(pkt, LDNS_SECTION_ANSWER, line);
  for (const auto& line : spec.authority) push(pkt, LDNS_SECTION_AUTHORITY, line);
  for (const auto& line : spec.additional) push(pkt, LDNS_SECTION_ADDITIONAL, line);
  ldns_pkt_set_ad(pkt, spec.ad);
  if (spec.edns) ldns_pkt_set_edns_udp_size(pkt, 4096);
  auto out = wire_of(pkt);
  ldns_pkt_free(pkt);
  return out;
}

Decoded decode(const std::vector<std::uint8_t>& wire) {
  Decoded d;
  ldns_pkt* pkt = nullptr;
  if (ldns_wire2pkt(&pkt, wire.data(), wire.size()) != LDNS_STATUS_OK) return d;
  d.ok = true;
  d.id = ldns_pkt_id(pkt);
  d.rcode = static_cast<std::uint8_t>(ldns_pkt_get_rcode(pkt));
  d.qr = ldns_pkt_qr(pkt);
  d.aa = ldns_pkt_aa(pkt);
  d.tc = ldns_pkt_tc(pkt);
  d.rd = ldns_pkt_rd(pkt);
  d.ra = ldns_pkt_ra(pkt);
  d.ad = ldns_pkt_ad(pkt);
  d.cd = ldns_pkt_cd(pkt);
  d.has_opt = ldns_pkt_edns(pkt);
  d.dnssec_ok = ldns_pkt_edns_do(pkt);
  d.udp_size = ldns_pkt_edns_udp_size(pkt);
  const ldns_rr_list* question = ldns_pkt_question(pkt);
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(question); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(question, i);
    char* name = ldns_rdf2str(ldns_rr_owner(rr));
    d.question.push_back(std::string(name) + " " + std::to_string(ldns_rr_get_type(rr)));
    std::free(name);
  }
  d.answer = lines(ldns_pkt_answer(pkt));
  d.authority = lines(ldns_pkt_authority(pkt));
  d.additional = lines(ldns_pkt_additional(pkt));
  ldns_pkt_free(pkt);
  return d;
}

std::string qname_text(std::span<const std::uint8_t> name) {
  std::string text;
  const std::uint8_t* data = name.data();
  const std::size_t size = name.size();
  for (std::size_t pos = 0; pos < size && data[pos] != 0; pos += 1 + data[pos]) {
    if (!text.empty()) text += '.';
    for (std::size_t i = 1; i <= data[pos] && pos + i < size; ++i) {
      unsigned char byte = data[pos + i];
      if (byte < 0x21 || byte > 0x7e || byte == '.' || byte == '\\') {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\%03u", byte);
        text += escaped;
      } else {
        text += static_cast<char>(byte >= 'A' && byte <= 'Z' ? byte - 'A' + 'a' : byte);
      }
    }
  }
  return text;
}

std::string describe(const Decoded& d) {
  std::string out = "ok=" + std::to_string(d.ok) + " id=" + std::to_string(d.id) +
                    " rcode=" + std::to_string(d.rcode) + " qr=" + std::to_string(d.qr) +
                    " aa=" + std::to_string(d.aa) + " tc=" + std::to_string(d.tc) +
                    " rd=" + std::to_string(d.rd) + " ra=" + std::to_string(d.ra) +
                    " ad=" + std::to_string(d.ad) + " cd=" + std::to_string(d.cd) +
                    " opt=" + std::to_string(d.has_opt) + " do=" + std::to_string(d.dnssec_ok) +
                    " size=" + std::to_string(d.udp_size) + "\n";
  for (const auto* section : {&d.question, &d.answer, &d.authority, &d.additional}) {
    for (const auto& line : *section) out += "  " + line + "\n";
    out += "  --\n";
  }
  return out;
}

ForwardResult answer_with(const ResponseSpec& spec) {
  ForwardResult r;
  r.status = ForwardResult::Status::answer;
  r.answer = make_response(spec);
  return r;
}

ForwardResult timed_out() {
  ForwardResult r;
  r.status = ForwardResult::Status::timeout;
  r.error = "timeout";
  return r;
}

}  // namespace pullthrough::dns::testing
