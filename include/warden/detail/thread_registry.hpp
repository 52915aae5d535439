// Per-thread records shared by every warden cache in the process: each thread that reads a
// table or makes a call gets one padded record, once, and keeps it until it exits, when the
// record goes back to a free list for the next thread. Records are never freed (owners may
// still be scanning them, and a late notify may touch a reply word), so their number is the
// peak number of live threads, not the number of threads ever started.
//
// A record holds
//  - `reading[d]`: the thread's d-th nested read section, one 64-bit word each:
//        bits  0..31  id of the table being read (0: no section at this depth)
//        bits 32..63  the thread's section sequence number (makes every announcement unique,
//                     so an owner waiting for "this section" is never fooled by the next one)
//    Only the owning thread stores to these words, and no other thread's data shares their
//    cache lines: a reader never stores to a line another reader stores to.
//  - `reply`: the futex word a thread parks on while one of its calls is in flight. The owner
//    that completes the call bumps it after writing the result. Because the word lives in an
//    immortal record, not in the caller's stack frame, the owner's notify can never touch
//    freed memory even if the caller returns at once.
//  - thread-private bookkeeping (owner marker, multi-owner dirty tracking), touched only by
//    the thread using the record.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "warden/detail/config.hpp"
#include "warden/detail/sync.hpp"
#include "warden/error.hpp"

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace warden::detail {

inline constexpr unsigned kMaxReadDepth = 8;
inline constexpr std::uint64_t kIdMask = 0xffffffffu;

struct alignas(kFalseSharingRange) thread_record {
  std::atomic<std::uint64_t> reading[kMaxReadDepth] = {};
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> reply{0};

  // Guarded by the registry mutex; `next` is immutable once the record is published.
  thread_record* next = nullptr;
  bool in_use = false;
  // Bumped on each reuse, so state keyed by (record, generation) never leaks to the next
  // thread that gets this record.
  std::uint64_t generation = 0;

  // Private to the thread using the record.
  std::uint32_t owner_of = 0;      // id of the cache this thread is an owner thread of
  std::uint32_t dirty_table = 0;   // multi-owner tables: the table of `dirty_owners`
  std::uint64_t dirty_owners = 0;  // owners this thread sent casts to since its last call
};

class registry {
 public:
  // Immortal: detached threads may exit after static destructors have run.
  static registry& instance() {
    static registry* const r = new registry;
    return *r;
  }

  thread_record* acquire() {
    std::lock_guard lock(mutex_);
    thread_record* r;
    if (!free_.empty()) {
      r = free_.back();
      free_.pop_back();
    } else {
      r = new thread_record;
      r->next = head_.load(std::memory_order_relaxed);
      // release: a scanner that loads this head (acquire) sees the record initialized.
      head_.store(r, std::memory_order_release);
    }
    r->in_use = true;
    ++r->generation;
    r->owner_of = 0;
    r->dirty_table = 0;
    r->dirty_owners = 0;
    return r;
  }

  void release(thread_record* r) {
    std::lock_guard lock(mutex_);
    r->in_use = false;
    free_.push_back(r);
  }

  // Visits every record ever created (free ones hold no section, so they are skipped cheaply).
  template <class F>
  void for_each(F&& f) const {
    // seq_cst: pairs with the release in acquire(), so each record's fields are initialized,
    // and, on the seq_cst-store reader path, keeps a record created after the owner's flip
    // in the single total order the Dekker argument uses.
    for (thread_record* r = head_.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
      f(*r);
    }
  }

  // Records ever created: the peak number of threads that used warden at once (tests check
  // that short-lived threads reuse records instead of growing this).
  std::size_t record_count() const {
    std::size_t n = 0;
    for_each([&](const thread_record&) { ++n; });
    return n;
  }

  // Ids name caches in reader announcements and owner markers; 0 is never handed out.
  std::uint32_t acquire_id() {
    std::lock_guard lock(mutex_);
    if (!free_ids_.empty()) {
      const std::uint32_t id = free_ids_.back();
      free_ids_.pop_back();
      return id;
    }
    if (next_id_ == 0xffffffffu) throw error("warden: too many live caches");
    return next_id_++;
  }

  void release_id(std::uint32_t id) {
    std::lock_guard lock(mutex_);
    free_ids_.push_back(id);
  }

 private:
  registry() = default;

  mutable std::mutex mutex_;
  std::atomic<thread_record*> head_{nullptr};
  std::vector<thread_record*> free_;
  std::vector<std::uint32_t> free_ids_;
  std::uint32_t next_id_ = 1;
};

// Asymmetric fences. The reader's announcement must be ordered before its load of the
// publication word (a StoreLoad fence), and on x86 a seq_cst store is an xchg that also waits
// for every earlier load: a loop of independent gets could no longer overlap their cache
// misses. With Linux membarrier(PRIVATE_EXPEDITED) the owner instead makes every running
// thread of the process execute a full fence before it reads the announcements, and a
// reader needs only a compiler barrier. Available from Linux 4.14; otherwise, or if the
// registration is refused, readers fall back to the seq_cst store.
inline bool asymmetric_fences() noexcept {
  static const bool enabled = [] {
#if defined(__linux__) && defined(__NR_membarrier)
    const long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
  }();
  return enabled;
}

// The owner's half: a full fence on every thread of the process that is running now.
inline void heavy_fence() noexcept {
#if defined(__linux__) && defined(__NR_membarrier)
  syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
#endif
}

// The hot per-thread state: constant-initialized and trivially destructible, so every access
// is a plain TLS-relative load with no guard or wrapper call.
struct thread_state {
  thread_record* rec;
  std::uint32_t seq;    // section sequence number (see the header comment)
  std::uint16_t depth;  // read sections currently open on this thread
  bool light;           // asymmetric_fences() was on when this thread registered
};
inline constinit thread_local thread_state tls{nullptr, 0, 0, false};

// Gives the record back when its thread exits. Kept apart from `tls` so that the hot state
// stays trivially destructible; touched only when a thread registers.
struct record_releaser {
  record_releaser() = default;
  record_releaser(const record_releaser&) = delete;
  record_releaser& operator=(const record_releaser&) = delete;
  ~record_releaser() {
    if (thread_record* r = tls.rec) {
      tls.rec = nullptr;
      registry::instance().release(r);
    }
  }
  void arm() noexcept {}
};
inline thread_local record_releaser tls_releaser;

WARDEN_NOINLINE inline thread_record* register_thread() {
  tls_releaser.arm();  // constructs the releaser, so its destructor runs at thread exit
  // Once true, asymmetric_fences() stays true, so every owner that could scan this thread's
  // announcements issues the heavy fence its light ones rely on.
  tls.light = asymmetric_fences();
  tls.rec = registry::instance().acquire();
  return tls.rec;
}

inline thread_record& current_record() {
  thread_record* r = tls.rec;
  if (WARDEN_UNLIKELY(r == nullptr)) r = register_thread();
  return *r;
}

// Opens a read section on cache `id`; returns the depth slot to pass to exit_read. `light`:
// the cache's owners issue heavy_fence() before scanning (see asymmetric_fences()).
WARDEN_ALWAYS_INLINE unsigned enter_read(std::uint32_t id, bool light) {
  thread_state& t = tls;
  thread_record* r = t.rec;
  if (WARDEN_UNLIKELY(r == nullptr)) r = register_thread();
  const unsigned d = t.depth;
  if (WARDEN_UNLIKELY(d >= kMaxReadDepth)) throw nesting_error();
  t.depth = static_cast<std::uint16_t>(d + 1);
  const std::uint64_t word = (static_cast<std::uint64_t>(++t.seq) << 32) | id;
  // Half of a Dekker pair with the owner, which flips the publication word (seq_cst RMW) and
  // later loads this word. Either the owner sees this announcement and waits for the
  // section, or the flip precedes it and the caller's following load sees the new copy.
  if (WARDEN_LIKELY(t.light & light)) {
    // relaxed + compiler barrier: the owner's heavy_fence() supplies the StoreLoad fence.
    r->reading[d].store(word, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    // seq_cst: pairs with the owner's seq_cst flip and seq_cst loads.
    r->reading[d].store(word, std::memory_order_seq_cst);
  }
  return d;
}

// Stores the announcement of the section at depth `d` again, now as a seq_cst RMW: the
// StoreLoad fence a light announcement skipped, for a reader that learns only after
// announcing that its owner scans without membarrier(). (A seq_cst RMW rather than
// atomic_thread_fence, which ThreadSanitizer does not model.)
inline void fence_announcement(unsigned d) noexcept {
  std::atomic<std::uint64_t>& word = tls.rec->reading[d];
  // relaxed: the thread reads its own store. seq_cst: pairs with the owner's seq_cst flip and
  // scan, as enter_read's seq_cst store does.
  word.exchange(word.load(std::memory_order_relaxed), std::memory_order_seq_cst);
}

WARDEN_ALWAYS_INLINE void exit_read(unsigned d) noexcept {
  thread_state& t = tls;
  // release: every read made in the section happens-before the owner's acquire load that sees
  // the word change, and so before the owner writes the copy this section was reading.
  t.rec->reading[d].store(0, std::memory_order_release);
  t.depth = static_cast<std::uint16_t>(d);
}

// True if this thread has a read section open on cache `id` (it may be holding the owner's
// next write back, so it must not wait on that owner).
inline bool in_read_section(std::uint32_t id) noexcept {
  const thread_state& t = tls;
  for (unsigned d = 0; d < t.depth; ++d) {
    // relaxed: the thread reads its own stores.
    if ((t.rec->reading[d].load(std::memory_order_relaxed) & kIdMask) == id) return true;
  }
  return false;
}

// Called by an owner of cache `id` before it writes the idle copy: returns once every read
// section on `id` that was open at the call has closed. Sections opened later read the
// published copy (see enter_read), so they are not waited for. `light`: readers of `id` may
// have announced themselves with light stores, whose StoreLoad fence this must supply.
inline void wait_for_readers(std::uint32_t id, bool light) {
  const thread_record* self = tls.rec;
  if (light && asymmetric_fences()) heavy_fence();  // the StoreLoad fence light readers skipped
  registry::instance().for_each([&](thread_record& r) {
    if (&r == self) return;
    for (auto& word : r.reading) {
      // seq_cst: the owner's half of the Dekker pair described in enter_read.
      const std::uint64_t seen = word.load(std::memory_order_seq_cst);
      if ((seen & kIdMask) != id) continue;
      // acquire: pairs with exit_read's release store.
      backoff_until([&] { return word.load(std::memory_order_acquire) != seen; });
    }
  });
}

// Closes the read section opened at `depth` when it goes out of scope.
class section_closer {
 public:
  explicit section_closer(unsigned depth) noexcept : depth_(depth) {}
  section_closer(const section_closer&) = delete;
  section_closer& operator=(const section_closer&) = delete;
  ~section_closer() { exit_read(depth_); }

 private:
  unsigned depth_;
};

}  // namespace warden::detail
