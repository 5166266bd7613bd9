// Helpers shared by the proxy tests (and the app tests over proxy parts).
#pragma once

#include "core/asio.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/service.hpp"
#include "proxy/digester.hpp"

namespace pullthrough::proxy::testing {

// A scratch directory for the running test, <gtest's temp dir>/<prefix>-<pid>-<test name>: empty
// when returned. The fixture removes it in TearDown.
inline std::filesystem::path test_directory(std::string_view prefix) {
  auto path = std::filesystem::path(::testing::TempDir()) /
              (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(path);
  return path;
}

// `size` bytes of a fixed pattern that does not repeat at any short period: a blob body.
inline std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + i / 7) & 0xFF);
  return out;
}

// "sha256:<hex>" of `text`.
inline std::string sha256_of(std::string_view text) {
  Digester digester("sha256");
  digester.update(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()),
                                                text.size()));
  return digester.finish();
}

// Stops `service` and runs `io` until the service says it drained (within `limit`), then until
// nothing is left to do on `io`: whether it drained. The drain may end on another thread (the
// front door's connections live on event loops of their own), so `io` running out of work is not
// the sign of it.
inline bool stop_and_drain(boost::asio::io_context& io, core::Service& service,
                           std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto drained = std::make_shared<std::atomic<bool>>(false);
  service.stop([drained] { drained->store(true); });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!drained->load() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    if (io.run_for(std::chrono::milliseconds(5)) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  io.restart();
  io.run();
  return drained->load();
}

}  // namespace pullthrough::proxy::testing
