#include "core/thread_priority.hpp"

#include <cerrno>
#include <cstring>

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pullthrough::core {

namespace {

constexpr int kNice = 10;

// The id of the calling thread when it made itself SCHED_IDLE here, or 0: other threads need no
// system call to know they are not background threads.
thread_local pid_t background_tid = 0;
// True while the calling thread is in a RaisedPriority (at SCHED_BATCH: lent nothing, lowered by
// no mutex).
thread_local bool raised = false;

// The calling thread's id when it runs idle, else 0.
pid_t idle_tid() { return raised ? 0 : background_tid; }

// Linux applies a policy to one thread (a task with its own id; 0 is the calling thread). A
// fair policy keeps the thread's nice value.
bool set_policy(pid_t tid, int policy) {
  sched_param param{};
  return sched_setscheduler(tid, policy, &param) == 0;
}

}  // namespace

std::string make_this_thread_background() {
  const auto tid = static_cast<pid_t>(::syscall(SYS_gettid));
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kNice) != 0) {
    return std::string("nice ") + std::to_string(kNice) + ": " + std::strerror(errno);
  }
  if (set_policy(0, SCHED_IDLE)) {
    background_tid = tid;
    return {};
  }
  std::string failed = std::string("SCHED_IDLE: ") + std::strerror(errno);
  if (!set_policy(0, SCHED_BATCH)) failed += std::string(", SCHED_BATCH: ") + std::strerror(errno);
  return failed;
}

bool background_can_be_raised() {
  if (idle_tid() == 0 || !set_policy(0, SCHED_BATCH)) return false;
  set_policy(0, SCHED_IDLE);
  return true;
}

RaisedPriority::RaisedPriority() {
  if (idle_tid() == 0) return;
  raised_ = set_policy(0, SCHED_BATCH);
  raised = raised_;
}

RaisedPriority::~RaisedPriority() {
  if (!raised_) return;
  raised = false;
  set_policy(0, SCHED_IDLE);
}

void PriorityInheritanceMutex::lock() {
  if (const pid_t tid = idle_tid(); tid != 0) {
    // Named before it waits for the lock: a waiter that finds it held knows whom to raise.
    {
      std::lock_guard priority(priority_mutex_);
      background_ = tid;
    }
    mutex_.lock();
    return;
  }
  if (mutex_.try_lock()) return;
  {
    std::lock_guard priority(priority_mutex_);
    if (background_ != 0 && raised_ == 0 && set_policy(background_, SCHED_BATCH)) {
      raised_ = background_;
    }
  }
  mutex_.lock();
}

void PriorityInheritanceMutex::unlock() {
  if (idle_tid() != 0) {
    std::lock_guard priority(priority_mutex_);
    background_ = 0;
    if (raised_ != 0) set_policy(raised_, SCHED_IDLE);
    raised_ = 0;
  }
  mutex_.unlock();
}

}  // namespace pullthrough::core
