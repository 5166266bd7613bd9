// Starting a detached coroutine whose escaped exception is logged rather than lost: one failed
// connection must cost that connection only.
#pragma once

#include "core/asio.hpp"
#include <utility>

#include <exception>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
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

}  // namespace pullthrough::core
