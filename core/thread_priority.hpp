// Priorities of the threads that do bulk work next to the network threads.
#pragma once

#include <string>

namespace pullthrough::core {

// Makes the calling thread yield the CPU to the network threads: SCHED_BATCH (it never preempts
// a thread that wakes up) at nice 10, which an unprivileged process may do. The thread still gets
// the CPU whenever the network threads leave it idle, and about a tenth of it when they do not,
// so a lock it holds is never held for long. Returns an empty string, or what failed.
std::string make_this_thread_background();

}  // namespace pullthrough::core
