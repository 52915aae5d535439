// The one place warden's waiting strategy lives: spinning, yielding and parking on
// std::atomic::wait. Everything that blocks goes through here, so a test build can change the
// policy in one spot. Only std primitives are used: Debian's prebuilt absl::Mutex is not
// ThreadSanitizer-instrumented.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "warden/detail/config.hpp"

namespace warden::detail {

// Two lines: the adjacent-line prefetcher pairs 64-byte lines on x86.
inline constexpr std::size_t kFalseSharingRange = 128;

// The PAUSE builtin rather than <immintrin.h>'s _mm_pause: that header alone costs every
// including file ~0.7 s of compile time.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spin iterations before a waiter yields, then parks. Spinning is short: on an oversubscribed
// machine a spinning waiter steals the CPU from the very thread it waits for. Yielding is
// longer: it costs nothing when a core is idle (the call returns at once) and hands the CPU
// to the thread we wait for when it is not, and it keeps a waiter off the futex (two
// syscalls and a wake-up, ~10 us) for the common case of a reply within tens of microseconds.
inline constexpr int kSpinIterations = 64;
inline constexpr int kYieldIterations = 64;

// Waits until `word` no longer holds `old`; returns the new value. Spins briefly, yields, then
// parks with std::atomic::wait (a futex). Acquire: the waker's release store or RMW that
// changed the word publishes what it wrote before.
inline std::uint32_t wait_for_change(const std::atomic<std::uint32_t>& word, std::uint32_t old) {
  for (int i = 0; i < kSpinIterations; ++i) {
    const std::uint32_t now = word.load(std::memory_order_acquire);
    if (now != old) return now;
    cpu_relax();
  }
  for (int i = 0; i < kYieldIterations; ++i) {
    const std::uint32_t now = word.load(std::memory_order_acquire);
    if (now != old) return now;
    std::this_thread::yield();
  }
  for (;;) {
    word.wait(old, std::memory_order_acquire);
    const std::uint32_t now = word.load(std::memory_order_acquire);
    if (now != old) return now;
  }
}

// Polls `done()` with growing pauses; for waits on threads that never notify (readers leaving
// a section). A reader section is short unless a user holds a snapshot open, so the backoff
// tops out at a sleep that costs the waiting owner little CPU.
template <class Done>
void backoff_until(Done done) {
  for (int i = 0; i < kSpinIterations; ++i) {
    if (done()) return;
    cpu_relax();
  }
  // Mostly yield: the reader we wait for may be preempted, and yielding is how it gets the
  // CPU back soonest on an oversubscribed machine. Short sleeps only keep a long-held
  // snapshot from costing a whole core.
  for (int round = 0;; ++round) {
    for (int i = 0; i < kYieldIterations; ++i) {
      if (done()) return;
      std::this_thread::yield();
    }
    if (done()) return;
    std::this_thread::sleep_for(std::chrono::microseconds(round < 8 ? 10 : 100));
  }
}

}  // namespace warden::detail
