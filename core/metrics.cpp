#include "core/metrics.hpp"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace pullthrough::core {
namespace {

bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// HELP text escapes backslash and newline; label values also escape the double quote.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

void MetricsWriter::family(std::string_view name, std::string_view help, MetricType type) {
  if (!valid_name(name)) throw std::invalid_argument(fmt::format("bad metric name '{}'", name));
  bool total = name.size() > 6 && name.substr(name.size() - 6) == "_total";
  if ((type == MetricType::counter) != total) {
    throw std::invalid_argument(
        fmt::format("metric '{}': counters, and only counters, end in _total", name));
  }
  family_.assign(name);
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_escaped(out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  switch (type) {
    case MetricType::counter:
      out_ += " counter\n";
      break;
    case MetricType::gauge:
      out_ += " gauge\n";
      break;
    case MetricType::histogram:
      out_ += " histogram\n";
      break;
  }
}

void MetricsWriter::begin_sample(std::string_view suffix, MetricLabels labels,
                                 std::pair<std::string_view, std::string_view> extra) {
  if (family_.empty()) throw std::invalid_argument("metric sample before its family");
  out_ += family_;
  out_ += suffix;
  bool first = true;
  auto label = [&](std::string_view name, std::string_view value) {
    if (!valid_name(name)) throw std::invalid_argument(fmt::format("bad label name '{}'", name));
    out_ += first ? '{' : ',';
    first = false;
    out_ += name;
    out_ += "=\"";
    append_escaped(out_, value, true);
    out_ += '"';
  };
  for (const auto& [name, value] : labels) label(name, value);
  if (!extra.first.empty()) label(extra.first, extra.second);
  out_ += first ? " " : "} ";
}

void MetricsWriter::histogram(const LatencyHistogram::Snapshot& snapshot, MetricLabels labels) {
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    begin_sample("_bucket", labels, {"le", fmt::format("{}", LatencyHistogram::kBounds[i])});
    out_ += fmt::format("{}\n", snapshot.cumulative[i]);
  }
  begin_sample("_bucket", labels, {"le", "+Inf"});
  out_ += fmt::format("{}\n", snapshot.count());
  begin_sample("_sum", labels, {});
  out_ += fmt::format("{}\n", snapshot.sum_seconds);
  begin_sample("_count", labels, {});
  out_ += fmt::format("{}\n", snapshot.count());
}

void MetricsWriter::begin_sample(MetricLabels labels) {
  if (family_.empty()) throw std::invalid_argument("metric sample before its family");
  out_ += family_;
  if (labels.size() == 0) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!valid_name(name)) throw std::invalid_argument(fmt::format("bad label name '{}'", name));
    if (!first) out_ += ',';
    first = false;
    out_ += name;
    out_ += "=\"";
    append_escaped(out_, value, true);
    out_ += '"';
  }
  out_ += "} ";
}

void MetricsWriter::sample(std::uint64_t value, MetricLabels labels) {
  begin_sample(labels);
  out_ += fmt::format("{}\n", value);
}

void MetricsWriter::sample(double value, MetricLabels labels) {
  begin_sample(labels);
  if (std::isnan(value)) {
    out_ += "NaN\n";
  } else if (std::isinf(value)) {
    out_ += value > 0 ? "+Inf\n" : "-Inf\n";
  } else {
    // Shortest form that reads back to the same double.
    out_ += fmt::format("{}\n", value);
  }
}

void MetricsRegistry::add(Collector collector) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::render() const {
  MetricsWriter writer;
  std::lock_guard lock(mutex_);
  for (const auto& collect : collectors_) collect(writer);
  return writer.take();
}

}  // namespace pullthrough::core
