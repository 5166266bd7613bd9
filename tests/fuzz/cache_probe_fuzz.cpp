// Fuzzes what the health check makes of a cache host's answer to GET /v2/: arbitrary bytes go
// through a header parser set up as the probe's, and whatever parses is judged. The verdict's
// detail goes to logs and /healthz, so it must stay short printable ASCII, and only a 200 passes.
// (It found that a string body let Beast reserve a Content-Length of 4e18 bytes: the probe now
// reads the header only.) The answer's client events (health/client_events.hpp) are read too: at
// most kMaxEventsPerAnswer, each of which formats back to the field it came from.
#include "core/asio.hpp"

#include <cstdint>
#include <cstdlib>

#include <boost/beast/http.hpp>

#include "health/cache_probe.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = pullthrough::http;
  // Not eager: like async_read_header, put() stops at the end of the header.
  http::response_parser<http::empty_body> parser;
  parser.header_limit(pullthrough::health::kMaxAnswerHeaderBytes);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  if (ec || !parser.is_header_done()) return 0;
  auto verdict = pullthrough::health::judge_answer(parser.get().base());
  if (verdict.ok && parser.get().result() != http::status::ok) std::abort();
  if (verdict.detail.empty() || verdict.detail.size() > 128) std::abort();
  for (char c : verdict.detail) {
    if (c < 0x20 || c > 0x7e) std::abort();
  }
  namespace health = pullthrough::health;
  if (auto events = health::read_client_events(parser.get().base())) {
    if (events->events.size() > health::kMaxEventsPerAnswer) std::abort();
    if (health::parse_cursor(health::format_cursor(events->cursor)) != events->cursor) std::abort();
    for (const auto& event : events->events) {
      if (health::parse_event(health::format_event(event)) != event) std::abort();
    }
  }
  return 0;
}
