// Starting a detached coroutine whose escaped exception is logged rather than lost: one failed
// connection must cost that connection only.
#pragma once

#include "core/asio.hpp"
#include <utility>

#include <exception>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <spdlog/logger.h>

namespace pullthrough::core {

// `what` prefixes the log line ("connection dropped"); `log` is kept until the coroutine ends.
template <typename Executor, typename Awaitable>
void spawn_logged(const Executor& executor, Awaitable&& awaitable,
                  std::shared_ptr<spdlog::logger> log, std::string what) {
  boost::asio::co_spawn(
      executor, std::forward<Awaitable>(awaitable),
      [log = std::move(log), what = std::move(what)](const std::exception_ptr& error) {
        if (!error) return;
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          log->error("{}: {}", what, e.what());
        }
      });
}

// Runs `operation` to its end on the calling thread, on an io_context of its own, and returns
// its result (or throws its exception). For a thread that may block (the disk and background
// pools, start-up), never for a network thread. What the operation awaits elsewhere (an S3
// request on the store's own threads) resumes here when it completes.
template <typename T>
T run_blocking(boost::asio::awaitable<T> operation) {
  boost::asio::io_context local;
  auto result = boost::asio::co_spawn(local, std::move(operation), boost::asio::use_future);
  local.run();
  return result.get();
}

}  // namespace pullthrough::core
