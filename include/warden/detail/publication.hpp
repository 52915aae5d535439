// The publication word of a table, and the fence mode of each of its owners. This class is
// the only code that writes the word.
//
//   bit  63 ........................ 32 31 ......................... 0
//        | fence bit of owner 31 .. 0   | copy bit of owner 31 .. 0    |
//
// Copy bit i names the copy of owner i's shards that readers use. Readers load the word once
// per get (or once per snapshot or pin), so they see every owner's state at the instant of
// that load: a batch, or a transaction whose owners' bits flip in one RMW, is seen whole or
// not at all. Fence bit i asks the readers of owner i's shards to fence their announcements
// (read_section.hpp, protocol (a)), so that owner may scan without membarrier().
//
// Fence modes. membarrier() interrupts every CPU running a thread of the process: cheap on
// bare metal, ~10 us on a VM whenever another thread runs (an IPI is a VM exit). An owner that
// scans often (calls, streams of small batches) would spend its time there and slow its
// readers down, so after `quick_waits` scans in a row, each within `frequent_wait` of the
// last, it sets its fence bit; `quiet_wait` after its last scan it clears the bit again (the
// owner wakes up for that even when nothing else happens). Setting is followed by the
// membarrier() of the scan that set it: a reader that loaded the word before the bit was set
// announced before that membarrier, so the scan sees it (protocol (b)); one that loads it
// after fences itself (protocol (a)). Clearing needs nothing: every later scan in light mode
// issues membarrier() again. If membarrier() fails at run time, the bit is set for good.
// The word's accesses and the mode decisions are read_protocol.hpp's steps (model-checked).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "warden/detail/config.hpp"
#include "warden/detail/read_protocol.hpp"
#include "warden/options.hpp"

namespace warden::detail {

using protocol::kCopyBits;
using protocol::kFenceBits;
using protocol::kFenceShift;
static_assert(kMaxOwners <= kFenceShift, "two bits per owner in the publication word");

// Fence-mode switching (file comment). A table copies `fence_policy_defaults` when it is
// constructed; tests change the defaults (before constructing, from one thread) to force
// switches.
struct fence_policy {
  std::chrono::steady_clock::duration frequent_wait = std::chrono::microseconds(100);
  int quick_waits = 8;
  std::chrono::steady_clock::duration quiet_wait = std::chrono::milliseconds(2);
};
inline fence_policy fence_policy_defaults;

class publication {
 public:
  // The owner's bookkeeping for its fence mode; private to that owner.
  struct fence_state {
    bool readers_fence = false;
    bool permanent = false;  // membarrier() failed: fenced for good
    int quick_waits = 0;
    std::chrono::steady_clock::time_point last_wait{};
  };

  // R2: readers' load (seq_cst, read_protocol.hpp).
  WARDEN_ALWAYS_INLINE std::uint64_t load() const noexcept {
    return protocol::load_publication(word_);
  }

  // An owner's own view of its bits. relaxed: bit i is written only by owner i, or by a
  // coordinator whose barrier release ordered that write before this read.
  std::uint64_t owner_view() const noexcept { return word_.load(std::memory_order_relaxed); }

  // O1: publishes the idle copies of every owner in `owners_mask` at once.
  void flip(std::uint64_t owners_mask) noexcept { protocol::flip(word_, owners_mask); }

  // Chooses owner `i`'s mode for the scan that follows and returns whether that scan must
  // issue membarrier(). `light_allowed`: the table lets readers announce lightly and the
  // kernel supports membarrier().
  bool before_scan(fence_state& f, unsigned i, bool light_allowed,
                   const fence_policy& policy) noexcept {
    if (protocol::readers_always_fence(light_allowed, f.permanent)) return false;  // readers fence
    const auto now = std::chrono::steady_clock::now();
    const auto since = now - f.last_wait;
    f.last_wait = now;
    if (!f.readers_fence) {
      f.quick_waits = since < policy.frequent_wait ? f.quick_waits + 1 : 0;
      const auto mode = protocol::choose_scan_fence(false, f.quick_waits >= policy.quick_waits);
      if (mode == protocol::scan_fence::set_then_barrier) set_fence(f, i);
      return protocol::needs_membarrier(mode);  // light readers, or the switch's own
    }
    const auto mode = protocol::choose_scan_fence(true, since > policy.quiet_wait);
    if (mode == protocol::scan_fence::clear_then_barrier) clear_fence(f, i);
    // No membarrier() while every reader of this owner's shards fences its own announcement.
    return protocol::needs_membarrier(mode);
  }

  // After a scan whose membarrier() failed: fenced readers for good.
  void make_fence_permanent(fence_state& f, unsigned i) noexcept {
    if (protocol::permanent_switch_sets_bit(f.readers_fence)) set_fence(f, i);
    f.permanent = true;
  }

  // The owner's idle hook: clears a fence bit `quiet_wait` after the last scan, so a table
  // that is only read goes back to light reads on time. Returns when to call again
  // (time_point::max() when nothing is pending).
  std::chrono::steady_clock::time_point on_idle(fence_state& f, unsigned i,
                                                const fence_policy& policy) noexcept {
    if (protocol::idle_keeps_fence(f.readers_fence, f.permanent)) {
      return std::chrono::steady_clock::time_point::max();
    }
    const auto due = f.last_wait + policy.quiet_wait;
    if (std::chrono::steady_clock::now() < due) return due;
    clear_fence(f, i);
    return std::chrono::steady_clock::time_point::max();
  }

  std::uint64_t switches() const noexcept {
    // relaxed: a statistic.
    return switches_.load(std::memory_order_relaxed);
  }

 private:
  void set_fence(fence_state& f, unsigned i) noexcept {
    protocol::set_fence(word_, i);  // seq_cst, before the scan's membarrier() (file comment)
    f.readers_fence = true;
    f.quick_waits = 0;
    // relaxed: a statistic.
    switches_.fetch_add(1, std::memory_order_relaxed);
  }
  void clear_fence(fence_state& f, unsigned i) noexcept {
    protocol::clear_fence(word_, i);  // seq_cst (read_protocol.hpp)
    f.readers_fence = false;
    // relaxed: a statistic.
    switches_.fetch_add(1, std::memory_order_relaxed);
  }

  std::atomic<std::uint64_t> word_{0};
  std::atomic<std::uint64_t> switches_{0};
};

}  // namespace warden::detail
