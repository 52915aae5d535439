// Read sections: how a table's readers tell its owners which copy they may still be reading,
// without ever storing to a line another reader stores to, and how owners wait for them.
//
// Each (thread, cache) pair has a `cache_slot` (thread_state.hpp): sixteen announcement
// words on two lines of their own. Words 0..7 hold the thread's scoped sections (get,
// contains, snapshot, visit), strictly nested, indexed by the slot's depth. Words 8..15 hold
// pins, which may close in any order and on any thread: a pin takes the first free word and
// remembers it, and closing stores 0 to exactly that word. A word holds 0 (no section) or
// the slot's sequence number at the section's opening, so a closed and reopened section
// never looks like the one an owner waits for.
//
// The protocol (a Dekker pair between a reader R and an owner O of the cache):
//   R1  R stores its announcement into its word.
//   R2  R loads the publication word and reads the copy it names.
//   R3  R stores 0 into its word (release): its reads happen-before O sees the 0.
//   O1  O flips the publication word (seq_cst RMW): new readers read the other copy.
//   O2  O makes every announcement stored before O1 in the seq_cst order visible (below).
//   O3  O loads every word (seq_cst), keeps the nonzero ones, and waits until each changes
//       (acquire). Then O writes the copy readers left at O1.
// Case 1: R1 precedes O3's load of R's word in the seq_cst order. O sees the announcement
//   and waits for R3, so R never reads a copy while O writes it.
// Case 2: O3's load of R's word precedes R1. O1 precedes O3, so O1 precedes R1 and, R1
//   being ordered before R2, R2's seq_cst load sees O1 (or a later flip): R reads the copy
//   O is not about to write.
// Either order holds only if R1 is ordered before R2 (a StoreLoad fence). Two ways:
//   a) fenced announcement: R1 is a seq_cst store (an xchg on x86), or a seq_cst RMW that
//      re-stores the word (fence_announcement), before R2.
//   b) light announcement: R1 is a relaxed store with only a compiler barrier before R2, and
//      O2 is membarrier(PRIVATE_EXPEDITED): every thread of the process running at that
//      moment executes a full fence, so R1 is visible to O3 unless R1 had not yet executed,
//      in which case R2 runs after O1 and case 2 holds.
// A reader uses (b) when its slot was created with asymmetric fences available and its cache
// allows them; the owner then issues O2 before every scan, unless it has asked its readers
// to fence (publication.hpp, "fence modes"): a reader that sees such a request in R2 re-stores
// its word as a seq_cst RMW and loads the publication word again, falling into (a).
// If membarrier() ever fails at run time, owners switch to fenced readers for good; the
// switch itself is covered by a process-wide barrier of the strongest kind still available.
// A reader's slot is in the list the owner scans before the reader's first R1: the list's
// head is stored and loaded seq_cst, so a reader that missed O1 has its slot found by O3.
//
// The steps themselves (one shared access each) are read_protocol.hpp's templates, which
// this file and publication.hpp instantiate with std::atomic and tests/model checks
// exhaustively under TSO and PSO store buffers, with mutants.
#pragma once

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "warden/detail/config.hpp"
#include "warden/detail/map_growth.hpp"
#include "warden/detail/read_protocol.hpp"
#include "warden/detail/sync.hpp"
#include "warden/detail/thread_state.hpp"
#include "warden/error.hpp"

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace warden::detail {

inline constexpr unsigned kScopedWords = 8;  // nested scoped sections per thread and cache
inline constexpr unsigned kPinWords = 8;     // pins open at once per thread and cache
inline constexpr unsigned kSlotWords = kScopedWords + kPinWords;
inline constexpr unsigned kMaxReadDepth = kScopedWords;

// ---- asymmetric fences -------------------------------------------------------------------

// Test hook: make the next membarrier() report failure, to exercise the fallback.
inline std::atomic<bool> simulate_membarrier_failure{false};

// Whether membarrier(PRIVATE_EXPEDITED) is registered for this process (Linux >= 4.14).
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

// Set once membarrier() has failed (owners then keep their readers fenced); for tests and
// diagnostics.
inline std::atomic<bool> asymmetric_fences_lost{false};

// A process-wide barrier for the one moment membarrier(PRIVATE_EXPEDITED) failed: the global
// membarrier if the kernel allows it, else changing a page's protection, which makes the
// kernel interrupt (TLB shootdown) every CPU running a thread of this process.
inline void fallback_process_barrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier)
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return;
#endif
  static void* const page =
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return;
  static std::mutex m;
  std::lock_guard lock(m);
  *static_cast<volatile char*>(page) = 1;  // the page must be present for a shootdown
  mprotect(page, 4096, PROT_READ);
  mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

// O2 of the protocol. Returns false if membarrier() failed; the caller must then switch its
// readers to fenced announcements for good (this call already covered the current scan).
inline bool heavy_fence() noexcept {
  bool ok = true;
#if defined(__linux__) && defined(__NR_membarrier)
  // relaxed: a test switch, read without ordering.
  if (simulate_membarrier_failure.load(std::memory_order_relaxed) ||
      syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    ok = false;
  }
#else
  ok = false;
#endif
  if (!ok) {
    // relaxed: owners read it only to decide their own fence mode; the barrier below
    // supplies the ordering this scan needs.
    asymmetric_fences_lost.store(true, std::memory_order_relaxed);
    fallback_process_barrier();
  }
  return ok;
}

// read_protocol.hpp's atomics policy for std::atomic.
struct std_atomics {
  static void compiler_barrier() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }
  static bool heavy_fence() noexcept { return detail::heavy_fence(); }
};

// ---- slots -------------------------------------------------------------------------------

struct access_ring;  // access_log.hpp

struct alignas(kFalseSharingRange) cache_slot {
  // Announcements: stored only by the thread using the record, except that a pin closed on
  // another thread stores 0 to its own word (misuse C++ allows; it stays safe).
  std::atomic<std::uint64_t> words[kSlotWords] = {};

  // Private to the thread using the record.
  alignas(kFalseSharingRange) std::uint32_t depth = 0;  // open scoped sections
  // The record generation that opened each pin word (see held_by_caller).
  std::uint64_t pin_generation[kSlotWords - kScopedWords] = {};
  bool light = false;  // announcements are light (protocol (b)); fixed at creation
  std::uint64_t seq = 0;
  // Counters written only by the thread using the record (a relaxed load and store, never an
  // RMW), read by stats() from any thread.
  std::atomic<std::uint64_t> hits{0}, misses{0}, loads{0}, load_failures{0}, drops{0};

  // The first error of a cast this thread sent that failed on an owner, for its next
  // flush(); owners write it under `error_mutex` (rarely), the flag keeps flush lock-free.
  std::mutex error_mutex;
  std::exception_ptr cast_error;            // guarded by error_mutex
  std::uint64_t cast_error_generation = 0;  // the record generation that sent the cast
  std::atomic<bool> has_cast_error{false};

  access_ring* rings = nullptr;  // one per owner, when the cache records accesses
  void** producers = nullptr;    // this thread's mailbox queue at each owner, made on demand
  cache_slot* next = nullptr;    // immutable once the slot is published
  const thread_record* record = nullptr;

  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    // relaxed load and store: only this thread writes `c`; readers of stats need no order.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Owner side: keeps the first error of the sender's generation.
  void record_cast_error(std::uint64_t generation, std::exception_ptr e) noexcept {
    std::lock_guard lock(error_mutex);
    if (cast_error && cast_error_generation == generation) return;
    cast_error = std::move(e);
    cast_error_generation = generation;
    // release: a flush that sees the flag (acquire) finds the error under the mutex anyway;
    // the order matters only for the lock-free early-out.
    has_cast_error.store(true, std::memory_order_release);
  }
  // Caller side, after its flush: the error of this thread's casts, if any.
  std::exception_ptr take_cast_error(std::uint64_t generation) noexcept {
    // acquire: pairs with record_cast_error.
    if (!has_cast_error.load(std::memory_order_acquire)) return nullptr;
    std::lock_guard lock(error_mutex);
    has_cast_error.store(false, std::memory_order_relaxed);  // relaxed: under the mutex
    std::exception_ptr e = std::move(cast_error);
    cast_error = nullptr;
    return cast_error_generation == generation ? e : nullptr;
  }

  bool in_section() const noexcept {
    for (const auto& w : words) {
      // relaxed: the thread reads its own stores (or a cross-thread pin close).
      if (w.load(std::memory_order_relaxed) != 0) return true;
    }
    return false;
  }
  // Whether the calling thread (the one using the record now) has a section of this cache
  // open that an owner would wait for: a scoped one, or a pin it opened itself. A pin opened
  // by an earlier thread of the same record (which exited, leaving the pin alive on the heap)
  // does not count: the calling thread does not hold it, so waiting on the owner is no
  // deadlock for it. (A pin this thread opened and handed to another thread still counts:
  // nothing records who holds a pin now; the refusal is conservative, never a hang.)
  bool held_by_caller() const noexcept {
    for (unsigned i = 0; i < kSlotWords; ++i) {
      // relaxed: as in in_section.
      if (words[i].load(std::memory_order_relaxed) == 0) continue;
      if (i < kScopedWords || pin_generation[i - kScopedWords] == record->generation) return true;
    }
    return false;
  }
};

// R1 for a scoped section; returns its word's index. Throws nesting_error when too deep.
WARDEN_ALWAYS_INLINE unsigned enter_scoped(cache_slot& s) {
  const unsigned d = s.depth;
  if (WARDEN_UNLIKELY(d >= kScopedWords)) throw nesting_error();
  s.depth = d + 1;
  const std::uint64_t word = ++s.seq;
  if (WARDEN_LIKELY(s.light)) {
    protocol::announce_light<std_atomics>(s.words[d], word);  // protocol (b)
  } else {
    protocol::announce_fenced(s.words[d], word);  // protocol (a)
  }
  return d;
}

// R3 for a scoped section.
WARDEN_ALWAYS_INLINE void exit_scoped(cache_slot& s, unsigned d) noexcept {
  protocol::exit_section(s.words[d]);
  s.depth = d;
}

// R1 for a pin: takes the first free pin word.
inline unsigned enter_pin(cache_slot& s) {
  for (unsigned i = kScopedWords; i < kSlotWords; ++i) {
    // relaxed: only this thread stores nonzero values here; a 0 stored by another thread
    // that closed a pin needs no ordering (nothing was handed over).
    if (s.words[i].load(std::memory_order_relaxed) != 0) continue;
    s.pin_generation[i - kScopedWords] = s.record->generation;
    const std::uint64_t word = ++s.seq;
    if (s.light) {
      protocol::announce_light<std_atomics>(s.words[i], word);  // as in enter_scoped
    } else {
      protocol::announce_fenced(s.words[i], word);
    }
    return i;
  }
  throw nesting_error();
}

// R3 for a pin: safe on any thread, in any order.
inline void exit_pin(cache_slot& s, unsigned i) noexcept { protocol::exit_section(s.words[i]); }

// Protocol (a) after the fact: re-stores word `i` as a seq_cst RMW, for a light reader that
// learns in R2 that its owner scans without membarrier(). (An RMW rather than
// atomic_thread_fence, which ThreadSanitizer does not model.)
inline void fence_announcement(cache_slot& s, unsigned i) noexcept {
  protocol::fence_announcement(s.words[i]);
}

// The slots of one cache, one per thread record that used it; slots live until the cache
// is destroyed. Owners walk the list without a lock: it only grows, at the head.
class slot_list {
 public:
  // Registering membarrier() takes milliseconds (the kernel waits for a grace period), so a
  // cache that allows light readers pays it here, once per process, not in its first read.
  slot_list(std::uint64_t serial, bool light)
      : serial_(serial), light_(light && asymmetric_fences()) {}
  slot_list(const slot_list&) = delete;
  slot_list& operator=(const slot_list&) = delete;
  // A slot with a pin still open (a thread destroyed the cache while holding a pin of it, or
  // leaked one) is kept, not freed: the pin's destructor stores into it later. Such slots go
  // to an immortal list, so the misuse costs a few bytes and nothing worse.
  ~slot_list() {
    // relaxed: the cache is being destroyed; no other thread uses it any more.
    for (cache_slot* s = head_.load(std::memory_order_relaxed); s != nullptr;) {
      cache_slot* next = s->next;
      if (on_destroy_) on_destroy_(*s);
      delete[] s->producers;  // the queues themselves belong to the mailboxes
      s->producers = nullptr;
      s->rings = nullptr;
      if (s->in_section()) {
        static std::mutex m;
        static auto* kept = new std::vector<cache_slot*>;
        std::lock_guard lock(m);
        kept->push_back(s);
      } else {
        delete s;
      }
      s = next;
    }
  }

  std::uint64_t serial() const noexcept { return serial_; }

  // The calling thread's slot. `refuse()` runs first on the slow path and may throw (the
  // cache's owner threads never get a slot of their own cache).
  template <class Refuse>
  WARDEN_ALWAYS_INLINE cache_slot& mine(Refuse&& refuse) {
    const thread_state& t = tls;
    if (WARDEN_LIKELY(t.mru_serial == serial_)) return *t.mru_slot;
    return find_or_create(refuse);
  }

  // The calling thread's slot if it has one (no registration).
  cache_slot* existing() const noexcept {
    const thread_state& t = tls;
    if (t.mru_serial == serial_) return t.mru_slot;
    if (t.rec == nullptr) return nullptr;
    const auto& c = t.rec->slots[serial_ % kSlotCacheSize];
    return c.serial == serial_ ? c.slot : nullptr;
  }

  template <class F>
  void for_each(F&& f) const {
    // seq_cst load_slot_list, against publish_slot's seq_cst store: why acquire and release
    // would not do is written at the two steps (read_protocol.hpp).
    for (cache_slot* s = protocol::load_slot_list(head_); s != nullptr;
         s = protocol::next_slot(*s)) {
      f(*s);
    }
  }

  // Called for each slot when the list is destroyed (frees per-slot extras).
  void set_on_destroy(void (*f)(cache_slot&)) { on_destroy_ = f; }
  // Called once for each new slot before it is published (allocates per-slot extras).
  void set_on_create(void (*f)(cache_slot&, const void*), const void* ctx) {
    on_create_ = f;
    on_create_ctx_ = ctx;
  }

 private:
  template <class Refuse>
  WARDEN_NOINLINE cache_slot& find_or_create(Refuse& refuse) {
    refuse();
    thread_record& rec = current_record();
    auto& cached = rec.slots[serial_ % kSlotCacheSize];
    cache_slot* s = cached.serial == serial_ ? cached.slot : nullptr;
    if (s == nullptr) {
      std::lock_guard lock(mutex_);
      grow_ahead(by_record_, 1);  // a growth that fails must fail outside the map (map_growth.hpp)
      auto [it, inserted] = by_record_.try_emplace(&rec, nullptr);
      if (inserted) {
        try {
          auto fresh = std::make_unique<cache_slot>();
          fresh->light = light_;
          fresh->record = &rec;
          if (on_create_) on_create_(*fresh, on_create_ctx_);
          // Under the mutex; publish_slot below publishes the slot.
          fresh->next = protocol::link_slot(head_);
          it->second = fresh.release();
          // Publishes the initialized slot and takes its place in S before this reader's
          // first announcement (see for_each).
          protocol::publish_slot(head_, it->second);
        } catch (...) {
          by_record_.erase(it);
          throw;
        }
      }
      s = it->second;
      cached = {serial_, s};
    }
    tls.mru_serial = serial_;
    tls.mru_slot = s;
    return *s;
  }

  const std::uint64_t serial_;
  const bool light_;
  std::atomic<cache_slot*> head_{nullptr};
  std::mutex mutex_;
  absl::flat_hash_map<const thread_record*, cache_slot*> by_record_;  // guarded by mutex_
  void (*on_destroy_)(cache_slot&) = nullptr;
  void (*on_create_)(cache_slot&, const void*) = nullptr;
  const void* on_create_ctx_ = nullptr;
};

// O2 and O3: returns once every announcement in `slots` (but `skip`'s) that was visible at
// the call has changed. `light`: the cache's readers may announce lightly, so O2 is needed;
// returns false if membarrier() failed (see heavy_fence). `scratch` is the owner's buffer.
struct pending_word {
  const std::atomic<std::uint64_t>* word;
  std::uint64_t seen;
};

inline bool wait_for_readers(const slot_list& slots, const cache_slot* skip, bool light,
                             std::vector<pending_word>& scratch) {
  const bool fence_ok = protocol::scan_barrier<std_atomics>(light);  // O2
  scratch.clear();
  slots.for_each([&](const cache_slot& s) {
    if (&s == skip) return;
    for (const auto& w : s.words) {
      const std::uint64_t seen = protocol::scan_load(w);  // O3
      if (seen != 0) scratch.push_back({&w, seen});
    }
  });
  for (const pending_word& p : scratch) {
    backoff_until([&] { return protocol::reader_left(*p.word, p.seen); });
  }
  return fence_ok;
}

}  // namespace warden::detail
