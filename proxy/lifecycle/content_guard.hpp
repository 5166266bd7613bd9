// Who is using which stored object right now, so that a collection never removes the bytes a
// client is being sent or a fetch is writing, and a client never starts on bytes being removed.
//
//  - A reader (a client sent a stored blob) takes a read use for as long as it sends. While the
//    object is being removed it gets none, and treats the object as not cached: it fetches it
//    again or answers with a retryable error before sending a byte.
//  - A writer (a blob fetch, a manifest being stored) takes a write use from its start to after
//    its index rows are written. It always gets one; just before it publishes its bytes it
//    waits, on the disk pool, for a removal of the same digest that is still going on, so the
//    removal cannot delete what it published.
//  - A collection works from a snapshot of the index. It removes an object only when nobody
//    uses it and no writer has finished with it since the collection began (its rows may have
//    changed after the snapshot), and marks it as being removed for the duration.
//
// Thread-safe. The lock is held only for bookkeeping, never for I/O.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace pullthrough::proxy {

class ContentGuard {
 public:
  class Use {
   public:
    Use() = default;
    Use(Use&& other) noexcept;
    Use& operator=(Use&& other) noexcept;
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    explicit operator bool() const { return guard_ != nullptr; }
    // For a write use: a removal of the digest was going on when it was taken.
    bool during_removal() const { return during_removal_; }

   private:
    friend class ContentGuard;
    Use(ContentGuard* guard, std::string digest, bool writer, bool during_removal)
        : guard_(guard),
          digest_(std::move(digest)),
          writer_(writer),
          during_removal_(during_removal) {}
    void release();

    ContentGuard* guard_ = nullptr;
    std::string digest_;
    bool writer_ = false;
    bool during_removal_ = false;
  };

  ContentGuard() = default;
  ContentGuard(const ContentGuard&) = delete;
  ContentGuard& operator=(const ContentGuard&) = delete;

  // An empty Use when the object is being removed.
  Use read(std::string_view digest);
  Use write(std::string_view digest);
  // Returns once no removal of `digest` is going on. Blocks: call it on the disk pool only.
  void wait_for_removal(std::string_view digest);

  // A collection: begin_collection() before its snapshot is taken, end_collection() after its
  // last removal. One at a time.
  void begin_collection();
  void end_collection();
  // True when the object may go now: then it is marked as being removed until end_removal().
  // False while it is used, or when a writer had it after begin_collection().
  bool begin_removal(std::string_view digest);
  void end_removal(std::string_view digest);

  // Objects in use or being removed (for tests and metrics).
  std::size_t busy() const;

 private:
  struct Entry {
    std::uint32_t readers = 0;
    std::uint32_t writers = 0;
    bool removing = false;
  };
  void release(const std::string& digest, bool writer);
  void erase_if_idle(std::unordered_map<std::string, Entry>::iterator it);

  mutable std::mutex mutex_;
  std::condition_variable removal_ended_;
  std::unordered_map<std::string, Entry> entries_;
  bool collecting_ = false;
  // Digests writers had since the collection began (only while one runs, so it stays small).
  std::unordered_set<std::string> written_since_;
};

}  // namespace pullthrough::proxy
