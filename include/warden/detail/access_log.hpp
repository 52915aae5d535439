// What readers tell owners about the keys they touched: a single-producer, single-consumer
// ring per (thread, cache, owner). Only the reading thread writes a ring's records and its
// tail, only the owner writes its head, and they live on different lines: a get records an
// access with two plain stores and no fence or RMW (a release store is a plain store on x86).
//
// Records are lossy for the eviction policy: a full ring drops the record (counted in the
// slot's `drops`; a thread reading faster than its owner drains loses what does not fit, as
// Caffeine's read buffers do). Caches with expire_after_access cannot lose a record (it would
// shorten an entry's life), so their readers hand a full ring's record to the owner through
// the mailbox instead (table.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>

#include "warden/detail/config.hpp"
#include "warden/detail/sync.hpp"

namespace warden::detail {

struct access_record {
  std::uint64_t hash;
  std::int64_t time;  // when the entry was read (expire_after_access); kMissRecord: a miss
};
inline constexpr std::int64_t kMissRecord = std::numeric_limits<std::int64_t>::min();
inline constexpr std::uint32_t kAccessRingSize = 256;  // a power of two

struct alignas(kFalseSharingRange) access_ring {
  // Producer's line.
  std::atomic<std::uint32_t> tail{0};
  std::uint32_t cached_head = 0;  // the producer's last view of `head`
  // Consumer's line.
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> head{0};
  access_record buf[kAccessRingSize];

  // Producer: appends `r`, or returns false when the ring is full.
  WARDEN_ALWAYS_INLINE bool try_push(std::uint64_t hash, std::int64_t time) noexcept {
    // relaxed: only this thread writes `tail`.
    const std::uint32_t t = tail.load(std::memory_order_relaxed);
    if (WARDEN_UNLIKELY(t - cached_head >= kAccessRingSize)) {
      // acquire: pairs with drain()'s release, so the owner's reads of the slots it frees
      // happen before they are overwritten.
      cached_head = head.load(std::memory_order_acquire);
      if (t - cached_head >= kAccessRingSize) return false;
    }
    buf[t % kAccessRingSize] = access_record{hash, time};
    // release: the record's contents happen-before the owner's acquire load of `tail`.
    tail.store(t + 1, std::memory_order_release);
    return true;
  }

  // Consumer: calls f(record) for every record pushed so far; returns how many.
  template <class F>
  std::uint32_t drain(F&& f) {
    // acquire: pairs with try_push's release.
    const std::uint32_t t = tail.load(std::memory_order_acquire);
    // relaxed: only the owner writes `head`.
    std::uint32_t h = head.load(std::memory_order_relaxed);
    const std::uint32_t n = t - h;
    for (; h != t; ++h) f(buf[h % kAccessRingSize]);
    // release: pairs with try_push's acquire load of `head`.
    head.store(t, std::memory_order_release);
    return n;
  }
};

}  // namespace warden::detail
