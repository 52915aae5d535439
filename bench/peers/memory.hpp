// Memory accounting for the benchmark suite: replaces the global operator new/delete with
// counting versions and measures a cache's footprint as bytes per entry.
//
// INCLUDE THIS HEADER IN EXACTLY ONE TRANSLATION UNIT PER EXECUTABLE. It defines the replaceable
// global allocation functions, which may not be inline; a second including TU fails to link
// with "multiple definition of operator new". Every operator new in the program, including
// those inside libraries such as CAF's actor threads, then goes through the counter. Memory
// obtained with malloc or mmap directly (thread stacks, tbbmalloc) is not seen.
//
// Bytes are counted as the allocator's usable size of each block (malloc_usable_size), so the
// numbers include the allocator's rounding but not its per-block headers; using the usable size
// also lets unsized delete subtract exactly what new added without storing a size header, which
// would distort the footprint being measured.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#if defined(__APPLE__)
#include <malloc/malloc.h>
#elif defined(__linux__) || defined(__GLIBC__)
#include <malloc.h>
#else
#error "warden bench memory.hpp needs malloc_usable_size (glibc/musl) or malloc_size (Apple)"
#endif

namespace warden_bench {
namespace memory_detail {

// relaxed: the counter publishes no other data. Every RMW on it is atomic, so no update is lost
// whatever the order; and a reader that already happens-after the allocations it wants to see
// (the workers were joined, or flush() got its reply) sees them by coherence alone.
inline std::atomic<std::int64_t> live{0};

// Whether `live` is kept: from the start of the program until stop_counting_allocations().
// One way only, so every block freed while counting was allocated while counting and `live`
// stays exact. relaxed: once off, `live` is never read again, so a thread that still sees it on
// for a moment changes nothing that matters.
inline std::atomic<bool> counting{true};

inline std::size_t usable_size(void* p) noexcept {
#if defined(__APPLE__)
  return malloc_size(p);
#else
  return malloc_usable_size(p);
#endif
}

inline void* allocate(std::size_t n, std::size_t align) {
  if (n == 0) n = 1;  // operator new(0) must still return a unique pointer
  for (;;) {
    void* p = nullptr;
    if (align <= alignof(std::max_align_t)) {
      p = std::malloc(n);
    } else if (posix_memalign(&p, align, n) != 0) {
      p = nullptr;
    }
    if (p != nullptr) {
      if (counting.load(std::memory_order_relaxed)) {
        live.fetch_add(static_cast<std::int64_t>(usable_size(p)), std::memory_order_relaxed);
      }
      return p;
    }
    // The standard's contract for operator new: call the new_handler until it gives up.
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

inline void* allocate_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return allocate(n, align);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

inline void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  if (counting.load(std::memory_order_relaxed)) {
    live.fetch_sub(static_cast<std::int64_t>(usable_size(p)), std::memory_order_relaxed);
  }
  std::free(p);
}

}  // namespace memory_detail

// Bytes currently allocated through operator new by the whole program (all threads). Signed
// because benchmark code subtracts two readings.
inline std::int64_t live_bytes() noexcept {
  return memory_detail::live.load(std::memory_order_relaxed);  // relaxed: see `live`
}

// Whether live_bytes() is still kept (see stop_counting_allocations()).
inline bool counting_allocations() noexcept {
  return memory_detail::counting.load(std::memory_order_relaxed);  // relaxed: see `counting`
}

// Stops counting for good: every operator new and delete from then on is plain malloc and free,
// without the shared counter (an atomic read-modify-write on one cache line, which threads
// allocating at once would contend for). For a program that measures footprints first and then
// times things; live_bytes() and bytes_per_entry() mean nothing afterwards.
inline void stop_counting_allocations() noexcept {
  memory_detail::counting.store(false, std::memory_order_relaxed);  // relaxed: see `counting`
}

// Footprint of a cache holding n uint64-like entries: live bytes after constructing it (on the
// heap, so its own object counts too) and putting n distinct pseudo-random keys, minus live
// bytes before. Keys are generated before the first reading so that their vector is not
// counted. flush() makes asynchronous peers (actors) apply their writes before the reading.
// Fixed per-cache costs (an actor system, TBB's segment table) are spread over n, so use a
// large n. An actor's map is allocated on its scheduler thread, still through operator new, so
// it counts; flush()'s reply orders those allocations before the second reading.
// `flush_every` > 0 also flushes after every that many puts, so that an asynchronous cache's
// queues never hold more than that many writes: the footprint then shows the data structure
// alone rather than buffers sized by one burst of n writes.
template <class Cache>
double bytes_per_entry(std::size_t n, std::size_t flush_every = 0) {
  using K = typename Cache::key_type;
  using V = typename Cache::mapped_type;
  if (n == 0) return 0.0;

  std::vector<K> keys;
  keys.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    // splitmix64's finalizer over an odd-multiplier sequence: a bijection, so keys are distinct.
    std::uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    keys.push_back(static_cast<K>(x ^ (x >> 31)));
  }

  const std::int64_t before = live_bytes();
  std::int64_t after = 0;
  {
    auto cache = std::make_unique<Cache>();
    std::size_t unflushed = 0;
    for (const K& key : keys) {
      cache->put(key, static_cast<V>(key));
      if (++unflushed == flush_every) {
        cache->flush();
        unflushed = 0;
      }
    }
    cache->flush();
    after = live_bytes();
  }
  return static_cast<double>(after - before) / static_cast<double>(n);
}

}  // namespace warden_bench

// The replaceable global allocation functions ([new.delete]); none may be declared inline.
void* operator new(std::size_t n) { return warden_bench::memory_detail::allocate(n, 0); }
void* operator new[](std::size_t n) { return warden_bench::memory_detail::allocate(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return warden_bench::memory_detail::allocate_nothrow(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return warden_bench::memory_detail::allocate_nothrow(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return warden_bench::memory_detail::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return warden_bench::memory_detail::allocate(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return warden_bench::memory_detail::allocate_nothrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return warden_bench::memory_detail::allocate_nothrow(n, static_cast<std::size_t>(a));
}

// Sizes and alignments passed to delete are ignored: the usable size is looked up, and free()
// releases malloc and posix_memalign blocks alike.
void operator delete(void* p) noexcept { warden_bench::memory_detail::deallocate(p); }
void operator delete[](void* p) noexcept { warden_bench::memory_detail::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { warden_bench::memory_detail::deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  warden_bench::memory_detail::deallocate(p);
}
