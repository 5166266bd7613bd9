#include "dns/wire_answers.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "dns/wire.hpp"
#include "dns/wire_format.hpp"

namespace pullthrough::dns::wire_answers {
namespace {

using namespace wire_format;  // NOLINT(google-build-using-namespace): the format's own vocabulary

constexpr std::size_t kOptSize = 11;
constexpr std::size_t kMaxNameOctets =
    255;  // RFC 1035 section 3.1  // root owner, TYPE, CLASS, TTL, RDLENGTH 0
// A pointer to the question's name, which eligible() places right after the header.
constexpr std::uint16_t kPointerToQuestion = 0xC000 | kHeaderSize;
constexpr int kMaxCnameHops = 16;  // as the ldns path

// Appends to a vector whose capacity was reserved by the caller, so that a whole answer costs at
// most one allocation.
class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    out_.push_back(static_cast<std::uint8_t>(v >> 8));
    out_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  // A record owned by the question's name, class IN, up to RDLENGTH.
  void record_head(std::uint16_t type, std::uint32_t ttl, std::uint16_t rdlength) {
    u16(kPointerToQuestion);
    u16(type);
    u16(1);
    u32(ttl);
    u16(rdlength);
  }

 private:
  std::vector<std::uint8_t>& out_;
};

// Header with the given flags and counts; QDCOUNT is always 1 here.
void write_header(Writer& w, std::uint16_t id, std::uint16_t flags, std::uint16_t ancount,
                  std::uint16_t nscount, std::uint16_t arcount) {
  w.u16(id);
  w.u16(flags);
  w.u16(1);
  w.u16(ancount);
  w.u16(nscount);
  w.u16(arcount);
}

// Our OPT: we advertise kMaxUdpPayload, echo DO, and carry no options.
void write_opt(Writer& w, bool dnssec_ok) {
  w.u8(0);
  w.u16(rrtype::kOpt);
  w.u16(static_cast<std::uint16_t>(kMaxUdpPayload));
  w.u16(0);  // extended RCODE, VERSION
  w.u16(dnssec_ok ? kEdnsDo : 0);
  w.u16(0);
}

std::span<const std::uint8_t> client_question(const Query& query) {
  return query.wire.subspan(kHeaderSize, query.summary.question_end - kHeaderSize);
}

// The flags of an answer we make up: QR, the query's opcode, RD and CD, RA; never AD.
std::uint16_t own_flags(const Query& query, std::uint8_t rcode_value, bool authoritative) {
  auto q = query.summary.flags;
  return static_cast<std::uint16_t>(kQr | (q & kOpcodeMask) | (authoritative ? kAa : 0) |
                                    (q & kRd) | kRa | (q & kCd) | (rcode_value & kRcodeMask));
}

// RFC 2181 section 9: an answer that does not fit is replaced by header, question and OPT with TC
// set, and the client retries over TCP.
void truncate(const Query& query, std::uint16_t flags, Built& out) {
  const auto& q = query.summary;
  out.wire.clear();
  Writer w(out.wire);
  write_header(w, q.id, flags | kTc, 0, 0, q.has_opt ? 1 : 0);
  w.bytes(client_question(query));
  if (q.has_opt) write_opt(w, q.dnssec_ok);
  out.truncated = true;
}

// Whether a name read through any pointer-like byte pair at or after `from` touches a byte the
// replay changes: the header, a TTL, or anything at or after `removed_from` (the upstream's OPT,
// which the replay drops).
bool reads_changing_bytes(std::span<const std::uint8_t> message, std::size_t from,
                          const std::vector<ReplayTemplate::Ttl>& ttls, std::size_t removed_from) {
  const std::uint8_t* data = message.data();
  const std::size_t size = message.size();
  std::vector<bool> ttl_byte(size, false);
  // The header is the client's, not upstream's: a name that reads its bytes (a pointer below
  // offset 12 in rdata, which no encoder writes) would mean something else in the answer.
  for (std::size_t i = 0; i < kHeaderSize && i < size; ++i) ttl_byte[i] = true;
  for (const auto& ttl : ttls) {
    for (std::size_t i = 0; i < 4; ++i) ttl_byte[ttl.offset + i] = true;
  }
  for (std::size_t i = removed_from; i < size; ++i) ttl_byte[i] = true;
  constexpr int kMaxSteps = 128;  // a name has at most 127 labels
  for (std::size_t i = from; i + 1 < size; ++i) {
    if ((data[i] & 0xC0) != 0xC0) continue;
    std::size_t pos = read_u16(data + i) & 0x3FFFU;
    for (int step = 0; step < kMaxSteps && pos < size; ++step) {
      if (ttl_byte[pos]) return true;
      const std::uint8_t length = data[pos];
      if (length == 0) break;
      if ((length & 0xC0) == 0xC0) {
        if (pos + 1 >= size) break;
        if (ttl_byte[pos + 1]) return true;
        std::size_t next = read_u16(data + pos) & 0x3FFFU;
        if (next >= pos) break;  // not a name check_message would accept
        pos = next;
        continue;
      }
      if ((length & 0xC0) != 0) break;
      for (std::size_t b = pos + 1; b <= pos + length && b < size; ++b) {
        if (ttl_byte[b]) return true;
      }
      pos += 1 + std::size_t{length};
    }
  }
  return false;
}

}  // namespace

bool eligible(const Query& query) {
  const auto& q = query.summary;
  if (q.qdcount != 1 || q.question_offset != kHeaderSize || q.question_end > query.wire.size()) {
    return false;
  }
  // check_message() validated the name: walk its labels to the root byte, or stop at a pointer.
  std::size_t pos = kHeaderSize;
  while (pos < q.question_end && query.wire[pos] != 0) {
    if ((query.wire[pos] & 0xC0) != 0) return false;
    pos += 1 + std::size_t{query.wire[pos]};
  }
  return pos + 5 == q.question_end;
}

bool synthesize(const Query& query, const std::vector<core::IpAddress>& addresses,
                std::uint32_t ttl, std::size_t rotation, std::size_t max_size, Built& out) {
  if (!eligible(query)) return false;
  const auto& q = query.summary;
  // The same choice as the ldns path: the family asked for, for ANY the first family present.
  std::array<const core::IpAddress*, 64> chosen{};
  std::size_t v4 = 0;
  std::size_t v6 = 0;
  for (const auto& a : addresses) (a.is_v4() ? v4 : v6) += 1;
  bool want_v4 = q.qtype == rrtype::kA || (q.qtype == rrtype::kAny && v4 > 0);
  bool want_v6 = q.qtype == rrtype::kAaaa || (q.qtype == rrtype::kAny && v4 == 0);
  std::size_t n = 0;
  for (const auto& a : addresses) {
    if (!(a.is_v4() ? want_v4 : want_v6)) continue;
    if (n == chosen.size()) return false;  // far more cache hosts than any LAN has
    chosen[n++] = &a;
  }
  out = Built{};
  out.wire.reserve(kHeaderSize + client_question(query).size() + n * 28 + 48 + kOptSize);
  Writer w(out.wire);
  std::uint16_t flags = own_flags(query, rcode::kNoError, true);
  std::uint16_t arcount = q.has_opt ? 1 : 0;
  if (n > 0) {
    write_header(w, q.id, flags, static_cast<std::uint16_t>(n), 0, arcount);
    w.bytes(client_question(query));
    for (std::size_t i = 0; i < n; ++i) {
      const auto& a = *chosen[(i + rotation) % n];
      if (a.is_v4()) {
        w.record_head(rrtype::kA, ttl, 4);
        w.bytes(a.to_v4().to_bytes());
      } else {
        w.record_head(rrtype::kAaaa, ttl, 16);
        w.bytes(a.to_v6().to_bytes());
      }
    }
  } else if (q.qtype == rrtype::kAny) {
    // RFC 8482 section 4.2: HINFO "RFC8482" "".
    static constexpr std::uint8_t kHinfo[] = {7, 'R', 'F', 'C', '8', '4', '8', '2', 0};
    write_header(w, q.id, flags, 1, 0, arcount);
    w.bytes(client_question(query));
    w.record_head(13, ttl, sizeof kHinfo);
    w.bytes(kHinfo);
  } else {
    // NODATA: the name is its own zone apex, MNAME the name, RNAME hostmaster.<name>, TTL
    // and MINIMUM `ttl` so that the client caches the emptiness exactly as long (RFC 2308).
    static constexpr std::uint8_t kHostmaster[] = {10,  'h', 'o', 's', 't', 'm',
                                                   'a', 's', 't', 'e', 'r'};
    // hostmaster.<name> must stay within 255 octets; a name that long is its own RNAME.
    std::size_t name_octets = client_question(query).size() - 4;
    bool with_hostmaster = name_octets + sizeof kHostmaster <= kMaxNameOctets;
    write_header(w, q.id, flags, 0, 1, arcount);
    w.bytes(client_question(query));
    w.record_head(
        rrtype::kSoa, ttl,
        static_cast<std::uint16_t>(2 + (with_hostmaster ? sizeof kHostmaster : 0) + 2 + 20));
    w.u16(kPointerToQuestion);
    if (with_hostmaster) w.bytes(kHostmaster);
    w.u16(kPointerToQuestion);
    w.u32(1);                                // SERIAL
    for (int i = 0; i < 4; ++i) w.u32(ttl);  // REFRESH, RETRY, EXPIRE, MINIMUM
  }
  if (q.has_opt) write_opt(w, q.dnssec_ok);
  if (out.wire.size() > max_size) truncate(query, flags, out);
  return true;
}

bool error_answer(const Query& query, std::uint8_t rcode_value, std::size_t max_size, Built& out) {
  if (!eligible(query)) return false;
  const auto& q = query.summary;
  out = Built{};
  out.wire.reserve(kHeaderSize + client_question(query).size() + kOptSize);
  Writer w(out.wire);
  std::uint16_t flags = own_flags(query, rcode_value, false);
  write_header(w, q.id, flags, 0, 0, q.has_opt ? 1 : 0);
  w.bytes(client_question(query));
  if (q.has_opt) write_opt(w, q.dnssec_ok);
  if (out.wire.size() > max_size) truncate(query, flags, out);
  return true;
}

std::optional<ReplayTemplate> prepare(std::span<const std::uint8_t> upstream) {
  auto checked = check_message(upstream);
  if (checked.error != WireError::none) return std::nullopt;
  const auto& s = checked.summary;
  Query as_query{upstream, s};
  if (!eligible(as_query)) return std::nullopt;

  ReplayTemplate t;
  t.qname = s.qname;
  t.qtype = s.qtype;
  t.qclass = s.qclass;
  t.question_end = s.question_end;
  const std::uint8_t* data = upstream.data();
  const std::size_t records = std::size_t{s.ancount} + s.nscount + s.arcount;
  struct Cname {
    std::string owner;
    std::size_t target_at;
  };
  std::vector<Cname> cnames;
  std::size_t pos = s.question_end;
  std::size_t opt_at = upstream.size();
  for (std::size_t i = 0; i < records; ++i) {
    std::size_t start = pos;
    std::size_t next = 0;
    auto owner = read_name(upstream, pos, &next);
    if (!owner) return std::nullopt;
    std::uint16_t type = read_u16(data + next);
    std::size_t rdata = next + 10;
    pos = rdata + read_u16(data + next + 8);
    // TSIG (RFC 8945) signs one hop's message: never the client's to see. ldns drops it.
    if (type == rrtype::kTsig) return std::nullopt;
    if (type == rrtype::kOpt) {
      // Removing it must not move any record after it: only a last OPT can go.
      if (pos != upstream.size()) return std::nullopt;
      opt_at = start;
      continue;
    }
    t.ttls.push_back({static_cast<std::uint16_t>(next + 4), read_u32(data + next + 4)});
    if (type == rrtype::kCname && i < s.ancount) {
      // The ldns path follows only a CNAME whose rdata is one name, exactly; anything else (an
      // empty rdata would have the name after it read as the target) is its to judge.
      std::size_t target_end = 0;
      if (!read_name(upstream, rdata, &target_end) || target_end != pos) return std::nullopt;
      cnames.push_back({std::move(*owner), rdata});
    }
  }
  // Replay rewrites the TTLs in place and drops a last OPT. A name compressed into a TTL field or
  // into the OPT, or into a label that runs over one (legal framing, though no real encoder
  // writes it), would change or dangle, so a message where anything that looks like a pointer
  // reads such bytes is declined. Byte pairs in rdata that only look like pointers cost nothing
  // but the fallback to ldns.
  if (reads_changing_bytes(upstream, s.question_end, t.ttls, opt_at)) return std::nullopt;
  t.wire.assign(upstream.begin(), upstream.begin() + static_cast<std::ptrdiff_t>(opt_at));
  if (opt_at != upstream.size())
    put_u16(t.wire.data() + 10, static_cast<std::uint16_t>(s.arcount - 1));

  // The chain as the ldns path follows it: from the question's name, the first CNAME owned by the
  // current name, up to kMaxCnameHops.
  std::string current = s.qname;
  for (int hop = 0; hop < kMaxCnameHops; ++hop) {
    auto it = std::find_if(cnames.begin(), cnames.end(),
                           [&](const Cname& c) { return c.owner == current; });
    if (it == cnames.end()) break;
    auto target = read_name(upstream, it->target_at);
    if (!target) return std::nullopt;
    t.cname_chain.push_back(*target);
    current = std::move(*target);
  }
  return t;
}

bool relay(const Query& query, const ReplayTemplate& upstream, const RelayOptions& options,
           std::size_t max_size, Built& out) {
  const auto& q = query.summary;
  if (!eligible(query) || q.question_end != upstream.question_end || q.qtype != upstream.qtype ||
      q.qclass != upstream.qclass || q.qname != upstream.qname) {
    return false;
  }
  if (options.intercepted && options.rewrite_to != nullptr && !options.rewrite_to->empty()) {
    for (const auto& name : upstream.cname_chain) {
      if (options.intercepted(name)) return false;
    }
  }
  out = Built{};
  out.wire.reserve(upstream.wire.size() + kOptSize);
  out.wire = upstream.wire;
  std::uint8_t* data = out.wire.data();
  put_u16(data, q.id);
  // The upstream's flags and rcode, with the client's RD and CD; Z is not ours to relay, and
  // whatever the upstream said, what we send is a response.
  auto flags = static_cast<std::uint16_t>((read_u16(data + 2) & ~(kRd | kCd | kZ)) | kQr |
                                          (q.flags & (kRd | kCd)));
  put_u16(data + 2, flags);
  // Same length, same name but for case: every compression pointer into it stays valid.
  std::memcpy(data + kHeaderSize, query.wire.data() + kHeaderSize, q.question_end - kHeaderSize);
  for (const auto& ttl : upstream.ttls) {
    std::uint32_t value = ttl.value > options.age_seconds ? ttl.value - options.age_seconds : 0;
    if (options.ttl_cap) value = std::min(value, *options.ttl_cap);
    put_u32(data + ttl.offset, value);
  }
  if (q.has_opt) {
    put_u16(data + 10, static_cast<std::uint16_t>(read_u16(data + 10) + 1));
    Writer w(out.wire);
    write_opt(w, q.dnssec_ok);
  }
  if (out.wire.size() > max_size) truncate(query, flags, out);
  return true;
}

}  // namespace pullthrough::dns::wire_answers
