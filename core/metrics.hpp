// Metrics in the Prometheus text exposition format (version 0.0.4), for the admin listener's
// /metrics. Components keep their own counters (core/counters.hpp); a collector walks them and
// writes families through a MetricsWriter at scrape time, so nothing is registered at start and
// nothing is kept twice.
//
// Names follow Prometheus' conventions, which `promtool check metrics` enforces: snake case, the
// `pullthrough_` prefix, the unit in the name in base units (`_seconds`, `_bytes`), counters end
// in `_total`, and every family has a help text.
#pragma once

#include <utility>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/histogram.hpp"

namespace pullthrough::core {

enum class MetricType { counter, gauge, histogram };

using MetricLabels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class MetricsWriter {
 public:
  // Starts a family: its HELP and TYPE lines. The samples written next belong to it. A counter's
  // name must end in "_total". A name or label that is not [a-zA-Z_][a-zA-Z0-9_]* is a bug in
  // the caller: it throws std::invalid_argument.
  void family(std::string_view name, std::string_view help, MetricType type);

  // One sample of the current family. Label values are escaped; label names are checked.
  void sample(std::uint64_t value, MetricLabels labels = {});
  void sample(double value, MetricLabels labels = {});

  // One histogram of the current family (of type histogram): its _bucket samples with their
  // `le` bounds, then _sum and _count, each with `labels` besides.
  void histogram(const LatencyHistogram::Snapshot& snapshot, MetricLabels labels = {});

  // A family with a single sample: the common case.
  void counter(std::string_view name, std::string_view help, std::uint64_t value) {
    family(name, help, MetricType::counter);
    sample(value);
  }
  void gauge(std::string_view name, std::string_view help, double value) {
    family(name, help, MetricType::gauge);
    sample(value);
  }

  // Writes every counter of a PULLTHROUGH_COUNTER_VISITOR list as "<prefix>_<name>_total".
  template <typename Counters>
  void counters(std::string_view prefix, const Counters& list) {
    list.visit([&](std::string_view name, std::string_view help, std::uint64_t value) {
      std::string full;
      full.reserve(prefix.size() + name.size() + 8);
      full.append(prefix).append("_").append(name).append("_total");
      counter(full, help, value);
    });
  }

  // Lists of one type side by side, each sample labelled with its list's name:
  // "<prefix>_<counter>_total{<label>="<name>"}". Nothing when `lists` is empty.
  template <typename Counters>
  void labelled_counters(std::string_view prefix, std::string_view label,
                         const std::vector<std::pair<std::string, const Counters*>>& lists) {
    if (lists.empty()) return;
    std::vector<std::pair<std::string_view, std::string_view>> names;
    lists.front().second->visit([&](std::string_view name, std::string_view help, std::uint64_t) {
      names.emplace_back(name, help);
    });
    std::vector<std::vector<std::uint64_t>> values(lists.size());
    for (std::size_t l = 0; l < lists.size(); ++l) {
      lists[l].second->visit([&](std::string_view, std::string_view, std::uint64_t value) {
        values[l].push_back(value);
      });
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::string full;
      full.append(prefix).append("_").append(names[i].first).append("_total");
      family(full, names[i].second, MetricType::counter);
      for (std::size_t l = 0; l < lists.size(); ++l) {
        sample(values[l][i], {{label, lists[l].first}});
      }
    }
  }

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void begin_sample(MetricLabels labels);
  void begin_sample(std::string_view suffix, MetricLabels labels,
                    std::pair<std::string_view, std::string_view> extra);
  std::string out_;
  std::string family_;
};

// The collectors of one process; render() runs them in the order they were added. Safe from any
// thread; a collector runs on the thread that renders and must not block.
class MetricsRegistry {
 public:
  using Collector = std::function<void(MetricsWriter&)>;
  void add(Collector collector);
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Collector> collectors_;
};

// The media type of the text format, for Content-Type.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace pullthrough::core
