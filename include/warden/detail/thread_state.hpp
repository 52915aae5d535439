// Per-thread state shared by every warden cache: one immortal `thread_record` per live thread,
// and the lookup from (thread, cache) to that cache's `cache_slot` for the thread.
//
// Invariants
//  - A record is never freed: an owner may notify a record's `reply` word after its caller
//    returned and even after the caller's thread exited. Records of exited threads go back to
//    a free list, so their number is the peak number of live threads, not of threads started.
//  - A thread gives its record back from a pthread key destructor. glibc runs those after
//    every C++ thread_local destructor of the thread, so an application thread_local whose
//    destructor still uses warden finds its record alive; a use from a later key destructor
//    registers again and the key's destructor runs again (POSIX repeats key destructors while
//    values are set), so no record is ever leaked or left dangling.
//  - Slots belong to caches, not to threads: a cache keeps one slot per record that used it,
//    and a record reused by a new thread reuses its slots. The record caches slot pointers
//    keyed by the cache's serial; serials are 64-bit and never reused, so an entry left behind
//    by a destroyed cache never matches again and is never dereferenced.
//  - Nothing here depends on symbol visibility for correctness: two shared objects built with
//    -fvisibility=hidden each get their own registry and TLS, and a thread then owns a slot in
//    a cache per library. Owners scan every slot of their cache, so each is seen.
#pragma once

#include <pthread.h>
#include <sys/random.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <new>

#include "warden/detail/config.hpp"
#include "warden/detail/sync.hpp"

namespace warden::detail {

struct cache_slot;  // read_section.hpp

inline constexpr unsigned kSlotCacheSize = 16;  // direct-mapped, by cache serial

struct alignas(kFalseSharingRange) thread_record {
  // The futex word the thread parks on while one of its calls is in flight; the owner that
  // completes the call bumps it after writing the result.
  std::atomic<std::uint32_t> reply{0};

  // Guarded by the registry's mutex.
  thread_record* next_free = nullptr;
  // Bumped on each reuse, so state keyed by (record, generation) never reaches the next
  // thread that gets this record.
  std::uint64_t generation = 0;

  // Private to the thread using the record.
  struct cached_slot {
    std::uint64_t serial = 0;
    cache_slot* slot = nullptr;
  };
  cached_slot slots[kSlotCacheSize];
  std::uint64_t dirty_serial = 0;  // multi-owner tables: the cache of `dirty_owners`
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
    thread_record* r = free_;
    if (r != nullptr) {
      free_ = r->next_free;
    } else {
      r = new thread_record;
      ++records_;
    }
    ++r->generation;
    r->dirty_serial = 0;
    r->dirty_owners = 0;
    return r;
  }

  void release(thread_record* r) {
    std::lock_guard lock(mutex_);
    r->next_free = free_;
    free_ = r;
  }

  // Records ever created: the peak number of threads that used warden at once.
  std::size_t record_count() const {
    std::lock_guard lock(mutex_);
    return records_;
  }

  // A serial per cache, never reused, so a slot cached under a dead cache's serial never
  // matches a live cache. Random start: another shared object's registry hands out serials
  // from elsewhere in the 64-bit space.
  std::uint64_t next_serial() {
    std::lock_guard lock(mutex_);
    return ++serial_;
  }

 private:
  // Seeded from getrandom() rather than std::random_device, which keeps <random> out of
  // every translation unit that includes warden (0.5 s on its own; the umbrella header's
  // total barely moved, as the rest already pulls in most of what <random> includes).
  registry() {
    std::uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
      seed = reinterpret_cast<std::uintptr_t>(this) * 0x9E3779B97F4A7C15ull;  // ASLR differs
    }
    serial_ = seed ^ static_cast<std::uint64_t>(
                         std::chrono::steady_clock::now().time_since_epoch().count());
    serial_ &= ~std::uint64_t{0} >> 1;  // never near wrap-around, never 0 after ++
  }

  mutable std::mutex mutex_;
  thread_record* free_ = nullptr;  // guarded by mutex_
  std::size_t records_ = 0;        // guarded by mutex_
  std::uint64_t serial_;           // guarded by mutex_
};

// The hot per-thread state: constant-initialized and trivially destructible, so every access
// is a plain TLS-relative load with no guard and no wrapper call.
struct thread_state {
  thread_record* rec;
  std::uint64_t mru_serial;  // the cache whose slot this thread used last
  cache_slot* mru_slot;
  // Owner cycles (of any cache) running on this thread now, and the pool of the innermost
  // one (null: a dedicated owner), whichever thread runs it (owner_loop.hpp, combining).
  std::uint32_t owner_cycles;
  const void* cycle_pool;
};
inline constinit thread_local thread_state tls{nullptr, 0, nullptr, 0, nullptr};

inline void release_thread_record(void* p) noexcept {
  tls = thread_state{nullptr, 0, nullptr, tls.owner_cycles, tls.cycle_pool};
  registry::instance().release(static_cast<thread_record*>(p));
}

inline pthread_key_t record_key() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, &release_thread_record) != 0) {
      std::fputs("warden: pthread_key_create failed\n", stderr);
      std::terminate();
    }
    return k;
  }();
  return key;
}

WARDEN_NOINLINE inline thread_record* register_thread() {
  const pthread_key_t key = record_key();
  thread_record* r = registry::instance().acquire();
  if (pthread_setspecific(key, r) != 0) {
    registry::instance().release(r);
    throw std::bad_alloc();
  }
  tls.rec = r;
  return r;
}

WARDEN_ALWAYS_INLINE thread_record& current_record() {
  thread_record* r = tls.rec;
  if (WARDEN_UNLIKELY(r == nullptr)) r = register_thread();
  return *r;
}

}  // namespace warden::detail
