// Priorities of the threads that do bulk work next to the network threads.
#pragma once

#include <mutex>
#include <string>

#include <sys/types.h>

namespace pullthrough::core {

// Makes the calling thread run only on a CPU that no other thread wants (SCHED_IDLE): a network
// thread, or a client on the same machine, that wakes up takes the CPU from it at once. Under
// SCHED_BATCH, even at nice 10, the waking thread waited for the running thread's slice to end,
// up to a scheduler tick (4 ms at HZ=250): that was the tail of the hits during a collection.
// Its nice value is set to 10 first: what it runs at while it holds a PriorityInheritanceMutex
// that another thread waits for. Falls back to SCHED_BATCH at nice 10 where SCHED_IDLE is
// refused. Returns an empty string, or what failed.
std::string make_this_thread_background();

// Whether this thread, made idle above, may leave SCHED_IDLE while it holds a contended lock:
// Linux allows it with CAP_SYS_NICE or an RLIMIT_NICE of at least 10. Without it a background
// thread holds its locks at idle priority, and a thread that waits for one of them waits until
// a CPU has nothing else to run. To be called on the background thread.
bool background_can_be_raised();

// While alive, a thread made idle above runs at SCHED_BATCH, nice 10, where it may leave
// SCHED_IDLE (see background_can_be_raised). For two kinds of work:
// - a short critical section on a lock that network threads take on every request: an idle
//   holder is preempted by any thread that wakes up, and the network threads then wait for it;
//   raised, it finishes the section first (SCHED_BATCH does not yield to a waking thread before
//   its slice ends), and lowering it again hands the CPU over at once;
// - work that must not wait for a CPU with nothing else to do, such as a collection that brings
//   the store back under its size bound while the proxy keeps both CPUs busy.
// Does nothing on any other thread. Not to be begun while holding a PriorityInheritanceMutex.
class RaisedPriority {
 public:
  RaisedPriority();
  ~RaisedPriority();
  RaisedPriority(const RaisedPriority&) = delete;
  RaisedPriority& operator=(const RaisedPriority&) = delete;

 private:
  bool raised_ = false;
};

// A mutex that lends its waiters' priority to a background holder: a thread that finds it held
// by a thread made idle above raises the holder to SCHED_BATCH (nice 10) until it unlocks, so the
// holder is not starved of CPU while others wait for it. (Linux's priority-inheritance futexes
// serve real-time threads only.) On any thread but a background one, lock() and unlock() cost
// what a std::mutex's do while the lock is free, and no system call is made unless an idle
// background thread (not in RaisedPriority) holds it when another thread waits. Meant for one
// background thread per mutex: with several, a waiter may raise one that does not hold the lock yet
// (harmless), and the holder may stay idle.
class PriorityInheritanceMutex {
 public:
  void lock();
  void unlock();

 private:
  std::mutex mutex_;
  std::mutex priority_mutex_;  // orders what follows, and the raising and lowering
  pid_t background_ = 0;       // a background thread that holds mutex_, or is about to take it
  pid_t raised_ = 0;           // the one a waiter raised, until it unlocks
};

}  // namespace pullthrough::core
