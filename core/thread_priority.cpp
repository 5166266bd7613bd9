#include "core/thread_priority.hpp"

#include <cerrno>
#include <cstring>

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pullthrough::core {

std::string make_this_thread_background() {
  constexpr int kNice = 10;
  sched_param param{};
  // Linux applies both to the calling thread alone (a thread is a task with its own id).
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    return std::string("SCHED_BATCH: ") + std::strerror(errno);
  }
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, tid, kNice) != 0) {
    return std::string("nice ") + std::to_string(kNice) + ": " + std::strerror(errno);
  }
  return {};
}

}  // namespace pullthrough::core
