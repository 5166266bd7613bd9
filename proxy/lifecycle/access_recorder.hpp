// When cached content was last used, for retention, without a database write on a network
// thread. A hit is noted in memory, at most once per object per kGranularity (a layer pulled by a
// whole fleet costs one write a minute, not one per pull), and the notes go to the metadata index
// from the disk pool, all that are waiting in one transaction: the notes that arrive while one
// transaction is written go together in the next.
#pragma once

#include "core/asio.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <spdlog/logger.h>

#include "core/clock.hpp"
#include "proxy/metadata_index.hpp"

namespace pullthrough::proxy {

class AccessRecorder {
 public:
  static constexpr std::chrono::seconds kGranularity{60};
  // How many objects the granularity is remembered for; past that the memory starts over, which
  // costs a few extra writes, never a missed one.
  static constexpr std::size_t kMaxRemembered = 65536;

  // `disk` runs the writes; it must be stopped (its queued work dropped or done) before the
  // recorder goes, and `index` and `clock` must outlive the recorder.
  AccessRecorder(MetadataIndex& index, asio::any_io_executor disk, const core::WallClock& clock);
  // Writes what is still waiting, on the caller's thread.
  ~AccessRecorder();
  AccessRecorder(const AccessRecorder&) = delete;
  AccessRecorder& operator=(const AccessRecorder&) = delete;

  // A hit, now: on blob `digest`; on `tag` of the repository (GET or HEAD of the manifest by
  // tag); on manifest `digest` referenced by the repository (by digest, or pushed). Thread-safe;
  // never waits for I/O.
  void blob(const std::string& digest);
  void tag(const std::string& registry, const std::string& repository, const std::string& tag);
  void manifest(const std::string& registry, const std::string& repository,
                const std::string& digest);

  // Writes what is waiting now, on the caller's thread (shutdown, tests).
  void flush();

  // Notes waiting to be written.
  std::size_t pending() const;

 private:
  struct State;
  void note(ContentUse::Kind kind, const std::string& registry, const std::string& repository,
            const std::string& name);
  // Takes what is waiting and writes it; then again, if more came meanwhile.
  static void write(State& state);

  std::shared_ptr<State> state_;
  asio::any_io_executor disk_;
  const core::WallClock& clock_;
};

}  // namespace pullthrough::proxy
