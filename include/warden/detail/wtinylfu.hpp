// W-TinyLFU eviction policy with an adaptive admission window: the owner's private,
// single-threaded bookkeeping that decides which entries a bounded cache evicts.
//
// The caller owns an arena of nodes and names entries by `std::uint32_t` node index; the policy
// keeps its own links in vectors indexed by node and never touches the cache's map. Regions, as
// in Caffeine: a window LRU that every new entry enters at its MRU end, and a main space split
// into probation (LRU) and protected (LRU, 80% of main). The window's overflow becomes a
// candidate that duels probation's LRU victim on sketch frequency.
//
// Invariants:
//  - After `evict_excess`, `size() <= maximum()`.
//  - `window_maximum() >= 1`, so an entry just added stays in the window until later writes
//    push it out; and the main space keeps at least 1% of `maximum()` (1 entry once
//    `maximum() >= 2`) so its value stays measurable.
//  - After construction only `add` allocates (the per-node vectors grow); everything else is
//    noexcept, and a window resize moves at most kMaxTransfer nodes per call. Decisions depend
//    only on the sequence of calls (the admission jitter uses a seeded PRNG).
//  - Memory: 17 bytes per node, the sketch's 8-16 bytes per entry, and the shadow LRU's 24-32
//    bytes per shadowed key: every key up to 1024 entries, max(1024, maximum / 32) sampled
//    keys beyond (32 KiB up to 32768 entries, then about 1 byte per entry).
//
// Departures from Caffeine, each measured with bench/hit_ratio over the LIRS and ARC traces:
//  - A candidate must beat the victim by 2 counts, not 1: its count already includes the access
//    that just brought it in, and without the margin sweeping workloads (zigzag, backf) churn
//    the main space and lose up to 10 points to LRU.
//  - The window is sized by hit density (Caffeine's large-cache law: move capacity towards the
//    region that earns more hits per entry) every 4 x maximum requests, plus an LRU anchor: a
//    sampled shadow LRU replays the same requests, and when it beats the policy significantly
//    over a sample the window (which is an LRU) jumps halfway towards the whole cache; a jump
//    that lowers the next sample's hit rate is undone. The classic hill climber (compare hit
//    rates across samples) could not tell a better window from a phase of the workload.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "warden/detail/frequency_sketch.hpp"

namespace warden::detail {

// An LRU directory of hashes with a fixed capacity: what a plain LRU cache of that capacity
// would hold, with no values. No allocation after construction. Keys must be well mixed.
class shadow_lru {
 public:
  explicit shadow_lru(std::size_t capacity)
      : capacity_(std::max<std::size_t>(capacity, 1)),
        keys_(capacity_),
        links_(capacity_),
        slots_(std::bit_ceil(2 * capacity_), kNil),
        mask_(slots_.size() - 1) {}

  // Records an access; true if an LRU of this capacity held `key` (a hit).
  bool access(std::uint64_t key) noexcept {
    const std::size_t slot = find(key);
    if (slots_[slot] != kNil) {
      const std::uint32_t e = slots_[slot];
      if (e != tail_) {
        unlink(e);
        push_mru(e);
      }
      return true;
    }
    std::uint32_t e;
    if (size_ < capacity_) {
      e = static_cast<std::uint32_t>(size_++);
    } else {
      e = head_;
      unlink(e);
      erase_slot(find(keys_[e]));
    }
    keys_[e] = key;
    push_mru(e);
    slots_[find(key)] = e;  // erasing may have moved the free slot
    return false;
  }

 private:
  static constexpr std::uint32_t kNil = std::numeric_limits<std::uint32_t>::max();
  struct link {
    std::uint32_t prev = kNil;
    std::uint32_t next = kNil;
  };

  // Linear probing: the slot holding `key`, or the empty slot where it would go.
  std::size_t find(std::uint64_t key) const noexcept {
    std::size_t i = key & mask_;
    while (slots_[i] != kNil && keys_[slots_[i]] != key) i = (i + 1) & mask_;
    return i;
  }
  // Backward-shift deletion keeps every probe chain unbroken without tombstones.
  void erase_slot(std::size_t i) noexcept {
    slots_[i] = kNil;
    for (std::size_t j = (i + 1) & mask_; slots_[j] != kNil; j = (j + 1) & mask_) {
      const std::size_t home = keys_[slots_[j]] & mask_;
      // Move j's entry into the hole unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
      if (stays) continue;
      slots_[i] = slots_[j];
      slots_[j] = kNil;
      i = j;
    }
  }
  void unlink(std::uint32_t e) noexcept {
    const link l = links_[e];
    (l.prev != kNil ? links_[l.prev].next : head_) = l.next;
    (l.next != kNil ? links_[l.next].prev : tail_) = l.prev;
  }
  void push_mru(std::uint32_t e) noexcept {
    links_[e] = link{tail_, kNil};
    (tail_ != kNil ? links_[tail_].next : head_) = e;
    tail_ = e;
  }

  std::size_t capacity_;
  std::vector<std::uint64_t> keys_;
  std::vector<link> links_;
  std::vector<std::uint32_t> slots_;  // entry index per slot, kNil when empty
  std::size_t mask_;
  std::size_t size_ = 0;
  std::uint32_t head_ = kNil;  // LRU end
  std::uint32_t tail_ = kNil;  // MRU end
};

class wtinylfu {
 public:
  // A policy for at most `maximum` entries (0 is treated as 1).
  explicit wtinylfu(std::size_t maximum)
      : maximum_(std::max<std::size_t>(maximum, 1)),
        sketch_(maximum_),
        shadow_(shadow_capacity(maximum_)),
        sample_limit_(sample_threshold(maximum_)),
        period_(std::max<std::size_t>(kPeriodMultiple * maximum_, kMinPeriod)) {
    set_window_maximum((maximum_ + 99) / 100);  // 1%, at least one entry
  }

  // A present entry was read or overwritten.
  void record_hit(std::uint32_t node) noexcept {
    if (node >= regions_.size() || regions_[node] == kAbsent) return;
    const std::uint64_t hash = hashes_[node];
    sketch_.increment(hash);
    ++sample_.requests;
    ++sample_.hits;
    if (regions_[node] == kWindow) ++sample_.window_hits;
    observe_shadow(hash, true);
    switch (regions_[node]) {
      case kWindow:
        move_to_mru(kWindow, node);
        break;
      case kProbation:
        unlink(node);
        push_mru(kProtected, node);
        demote_protected(2);  // the promoted node's room, plus one of any backlog
        break;
      default:
        move_to_mru(kProtected, node);
        break;
    }
  }

  // A lookup found no entry for `hash`.
  void record_miss(std::uint64_t hash) noexcept {
    sketch_.increment(hash);
    ++sample_.requests;
    observe_shadow(hash, false);
    last_miss_ = hash;
    pending_miss_ = true;
  }

  // A new entry. `node` must not be tracked already (a tracked one is moved, not duplicated).
  void add(std::uint32_t node, std::uint64_t hash) {
    if (node >= regions_.size()) {
      const std::size_t n = std::max<std::size_t>({std::size_t{node} + 1, 2 * regions_.size(), 16});
      links_.resize(n);
      hashes_.resize(n);
      regions_.resize(n, kAbsent);
    }
    if (regions_[node] != kAbsent) unlink(node);
    // A get that missed and then put counts once: its miss already reached the sketch.
    if (pending_miss_ && last_miss_ == hash) {
      pending_miss_ = false;
    } else {
      sketch_.increment(hash);
    }
    hashes_[node] = hash;
    push_mru(kWindow, node);
  }

  // The entry left for another reason (erase, expiry); `node` may be added again later.
  void remove(std::uint32_t node) noexcept {
    if (node < regions_.size() && regions_[node] != kAbsent) unlink(node);
  }

  // Adapts the window when a sample is complete, then evicts until size() <= maximum(),
  // calling evict(node) for every node it gives up (already unlinked here).
  template <class F>
  void evict_excess(F&& evict) noexcept(std::is_nothrow_invocable_v<F&, std::uint32_t>) {
    if (!filled_) {
      // Until the cache first fills, region hit rates describe a cold cache: ignore them.
      if (size() < maximum_) {
        sample_ = {};
        anchor_ = {};
      } else {
        filled_ = true;
      }
    }
    if (sample_.requests >= period_) adapt();
    if (size() <= maximum_) return;
    // The window's overflow enters probation's MRU end; those nodes are this round's
    // candidates, a contiguous run starting at `candidate`. A backlog left by a shrink of the
    // window drains kMaxTransfer nodes per call.
    std::uint32_t candidate = kNil;
    for (std::size_t moved = 0; lists_[kWindow].size > window_max_ && moved < kMaxTransfer;
         ++moved) {
      const std::uint32_t n = lists_[kWindow].head;
      unlink(n);
      push_mru(kProbation, n);
      if (candidate == kNil) candidate = n;
    }
    while (size() > maximum_) {
      std::uint32_t victim = lists_[kProbation].head;
      // Probation holds nothing older than the candidates: the victim comes from protected.
      if (victim == candidate) victim = lists_[kProtected].head;
      if (candidate == kNil || victim == kNil) {
        // No duel possible: evict the main space's victim, else the oldest candidate.
        const std::uint32_t n = victim != kNil ? victim : candidate;
        if (n == kNil) break;  // unreachable: an over-full cache has a non-empty main space
        if (n == candidate) candidate = links_[n].next;
        unlink(n);
        evict(n);
        continue;
      }
      const std::uint32_t next = links_[candidate].next;
      const std::uint32_t loser = admit(hashes_[candidate], hashes_[victim]) ? victim : candidate;
      candidate = next;
      unlink(loser);
      evict(loser);
    }
  }

  std::size_t size() const noexcept {
    return lists_[kWindow].size + lists_[kProbation].size + lists_[kProtected].size;
  }
  std::size_t maximum() const noexcept { return maximum_; }

  // Diagnostics for tests and the simulator.
  std::size_t window_size() const noexcept { return lists_[kWindow].size; }
  std::size_t window_maximum() const noexcept { return window_max_; }
  std::size_t protected_size() const noexcept { return lists_[kProtected].size; }

 private:
  static constexpr std::uint32_t kNil = std::numeric_limits<std::uint32_t>::max();
  enum region : std::uint8_t { kWindow = 0, kProbation = 1, kProtected = 2, kAbsent = 3 };

  // A candidate needs this many more counts than its victim (see the file comment).
  static constexpr int kAdmitMargin = 1;
  // Hash-flood defence: a warm candidate that lost still gets in with probability 1/128.
  static constexpr int kJitterFrequency = 6;
  static constexpr std::uint64_t kJitterMask = 127;
  // The climber samples every max(4 x maximum, 512) requests: long enough that a sample sees
  // the window turn over, short enough to follow a phase change within a few samples.
  static constexpr std::size_t kPeriodMultiple = 4;
  static constexpr std::size_t kMinPeriod = 512;
  // Density law: step = gain x ln(window density / main density) x maximum, capped.
  static constexpr double kDensityGain = 0.03;
  static constexpr double kMaxStep = 0.30;
  // LRU anchor: the shadow must lead by 1% of the sampled requests and two standard deviations
  // of the paired difference before the window jumps half of the main space.
  static constexpr double kAnchorLead = 0.01;
  static constexpr double kAnchorSigmas = 2.0;
  // A jump that costs more than this hit rate in the next sample is undone; the anchor then
  // rests for 1, 2, 4 ... kMaxBackoff samples.
  static constexpr double kUndoTolerance = 0.01;
  static constexpr int kMaxBackoff = 64;
  // Most nodes moved between regions per call, so that resizing a large cache's window never
  // stalls the owner; the rest follows in later calls (Caffeine bounds it likewise).
  static constexpr std::size_t kMaxTransfer = 1024;
  // Caches up to this many entries shadow every key; larger ones shadow a hash-chosen sample
  // of keys in max(kShadowExact, maximum / 32) entries (SHARDS-style spatial sampling), about
  // 1 byte per entry. A sampled shadow can misjudge a cache sitting on a cliff; the undo
  // above bounds what that costs.
  static constexpr std::size_t kShadowExact = 1024;

  struct link {
    std::uint32_t prev = kNil;
    std::uint32_t next = kNil;
  };
  struct list {
    std::uint32_t head = kNil;  // LRU end
    std::uint32_t tail = kNil;  // MRU end
    std::size_t size = 0;
  };
  struct sample {
    std::size_t requests = 0;
    std::size_t hits = 0;
    std::size_t window_hits = 0;
  };
  // The policy and the shadow LRU on the same sampled requests.
  struct anchor {
    std::size_t requests = 0;
    std::size_t hits = 0;
    std::size_t lru_hits = 0;
    std::size_t disagreements = 0;  // requests where exactly one of the two hit
  };

  struct jump {
    bool pending = false;  // the sample after a jump judges it
    double rate_before = 0;
    std::size_t window_before = 0;
    int blocked = 0;
    int backoff = 1;
  };

  static std::size_t shadow_capacity(std::size_t maximum) noexcept {
    return maximum <= kShadowExact ? maximum : std::max(kShadowExact, maximum / 32);
  }
  // A key is shadowed when the top 32 bits of its spread hash fall below this limit.
  static std::uint64_t sample_threshold(std::size_t maximum) noexcept {
    const std::size_t shadowed = shadow_capacity(maximum);
    if (shadowed >= maximum) return std::uint64_t{1} << 32;
    return static_cast<std::uint64_t>(
        std::ldexp(static_cast<double>(shadowed) / static_cast<double>(maximum), 32));
  }

  void observe_shadow(std::uint64_t hash, bool hit) noexcept {
    const std::uint64_t key = frequency_sketch::spread(hash);
    if ((key >> 32) >= sample_limit_) return;
    const bool lru_hit = shadow_.access(key);
    ++anchor_.requests;
    anchor_.hits += hit ? 1 : 0;
    anchor_.lru_hits += lru_hit ? 1 : 0;
    anchor_.disagreements += hit != lru_hit ? 1 : 0;
  }

  bool admit(std::uint64_t candidate, std::uint64_t victim) noexcept {
    const int c = sketch_.frequency(candidate);
    if (c > sketch_.frequency(victim) + kAdmitMargin) return true;
    return c >= kJitterFrequency && (next_random() & kJitterMask) == 0;
  }

  // splitmix64: tiny, owner-private and seeded, so runs are reproducible.
  std::uint64_t next_random() noexcept {
    std::uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // ---- the adaptive window ----

  void adapt() noexcept {
    const sample s = sample_;
    const anchor a = anchor_;
    sample_ = {};
    anchor_ = {};
    const double m = static_cast<double>(maximum_);
    const double rate = static_cast<double>(s.hits) / static_cast<double>(s.requests);
    if (jump_.pending) {
      jump_.pending = false;
      if (rate + kUndoTolerance < jump_.rate_before) {
        // The jump hurt (a sampled shadow can misjudge a cache sitting on a cliff): undo it
        // and leave the anchor alone for exponentially longer after each failure.
        resize_window(static_cast<double>(jump_.window_before) - static_cast<double>(window_max_) -
                      carry_);
        jump_.blocked = jump_.backoff;
        jump_.backoff = std::min(2 * jump_.backoff, kMaxBackoff);
        return;
      }
      jump_.backoff = 1;
    }
    const double lead = static_cast<double>(a.lru_hits) - static_cast<double>(a.hits);
    if (jump_.blocked > 0) {
      --jump_.blocked;
    } else if (lead > kAnchorLead * static_cast<double>(a.requests) &&
               lead > kAnchorSigmas * std::sqrt(static_cast<double>(a.disagreements))) {
      // Plain LRU did better on the very same requests: the window (an LRU) is too small.
      jump_.pending = true;
      jump_.rate_before = rate;
      jump_.window_before = window_max_;
      resize_window(0.5 * static_cast<double>(maximum_ - window_max_));
      return;
    }
    const double main_max = static_cast<double>(maximum_ - window_max_);
    const double window_hits = static_cast<double>(s.window_hits);
    const double main_hits = static_cast<double>(s.hits - s.window_hits);
    // A region with almost no hits has no measurable density; Caffeine's starvation bar.
    const double bar = std::max(4.0, static_cast<double>(s.requests) / 1024.0);
    if (window_hits < bar && main_hits < bar) return;  // a dead sample says nothing
    constexpr double kEpsilon = 1e-9;
    const double error = std::log(((window_hits + kEpsilon) / static_cast<double>(window_max_)) /
                                  ((main_hits + kEpsilon) / std::max(main_max, 1.0)));
    // A starved main cannot show what it would earn with more room: never shrink it then.
    if (main_hits < bar && error > 0) return;
    const double step = std::min(kMaxStep * m, std::abs(error) * kDensityGain * m);
    resize_window(std::copysign(step, error));
  }

  // Moves the window/main boundary by `amount` entries (fractions carry over).
  void resize_window(double amount) noexcept {
    carry_ += amount;
    const double whole = std::trunc(carry_);
    carry_ -= whole;
    const std::size_t main_floor = maximum_ >= 2 ? std::max<std::size_t>(1, maximum_ / 100) : 0;
    const std::size_t highest = std::max(window_max_, maximum_ - main_floor);
    const double target =
        std::clamp(static_cast<double>(window_max_) + whole, 1.0, static_cast<double>(highest));
    const auto next = static_cast<std::size_t>(target);
    if (next == window_max_) return;
    const bool grow = next > window_max_;
    const std::size_t delta = grow ? next - window_max_ : window_max_ - next;
    set_window_maximum(next);
    if (grow) {
      // The main space's coldest entries (probation's LRU end, then protected's) become the
      // window's oldest, in order, so growing loses nothing. Beyond kMaxTransfer the window
      // grows as new entries arrive and the over-full main space evicts without duels.
      const std::size_t quota = std::min(delta, kMaxTransfer);
      const std::size_t from_probation = std::min(quota, lists_[kProbation].size);
      const std::size_t from_protected = std::min(quota - from_probation, lists_[kProtected].size);
      move_oldest_to_window(kProtected, from_protected);
      move_oldest_to_window(kProbation, from_probation);
    } else {
      // The window's oldest entries join probation without a duel: nothing is evicted here.
      for (std::size_t i = 0; i < kMaxTransfer && lists_[kWindow].size > window_max_; ++i) {
        const std::uint32_t n = lists_[kWindow].head;
        unlink(n);
        push_mru(kProbation, n);
      }
    }
    demote_protected(kMaxTransfer);
  }

  void set_window_maximum(std::size_t window) noexcept {
    window_max_ = std::clamp<std::size_t>(window, 1, maximum_);
    protected_max_ = (maximum_ - window_max_) * 4 / 5;
  }

  // ---- intrusive lists over the node vectors ----

  void unlink(std::uint32_t n) noexcept {
    list& l = lists_[regions_[n]];
    const link k = links_[n];
    (k.prev != kNil ? links_[k.prev].next : l.head) = k.next;
    (k.next != kNil ? links_[k.next].prev : l.tail) = k.prev;
    --l.size;
    regions_[n] = kAbsent;
  }
  void push_mru(region r, std::uint32_t n) noexcept {
    list& l = lists_[r];
    links_[n] = link{l.tail, kNil};
    (l.tail != kNil ? links_[l.tail].next : l.head) = n;
    l.tail = n;
    ++l.size;
    regions_[n] = r;
  }
  void push_lru(region r, std::uint32_t n) noexcept {
    list& l = lists_[r];
    links_[n] = link{kNil, l.head};
    (l.head != kNil ? links_[l.head].prev : l.tail) = n;
    l.head = n;
    ++l.size;
    regions_[n] = r;
  }
  void move_to_mru(region r, std::uint32_t n) noexcept {
    if (lists_[r].tail == n) return;
    unlink(n);
    push_mru(r, n);
  }
  // Moves the `count` oldest entries of `r` to the window's LRU end, keeping their order.
  void move_oldest_to_window(region r, std::size_t count) noexcept {
    if (count == 0) return;
    std::uint32_t n = lists_[r].head;
    for (std::size_t i = 1; i < count; ++i) n = links_[n].next;
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint32_t prev = links_[n].prev;
      unlink(n);
      push_lru(kWindow, n);
      n = prev;
    }
  }
  // Moves protected's oldest entries to probation while protected is over its share.
  void demote_protected(std::size_t limit) noexcept {
    for (std::size_t i = 0; i < limit && lists_[kProtected].size > protected_max_; ++i) {
      const std::uint32_t n = lists_[kProtected].head;
      unlink(n);
      push_mru(kProbation, n);
    }
  }

  std::size_t maximum_;
  std::size_t window_max_ = 1;
  std::size_t protected_max_ = 0;
  frequency_sketch sketch_;
  shadow_lru shadow_;
  std::uint64_t sample_limit_;
  std::size_t period_;
  list lists_[3];
  std::vector<link> links_;            // per node
  std::vector<std::uint64_t> hashes_;  // per node: the caller's hash
  std::vector<std::uint8_t> regions_;  // per node: a region, kAbsent when not tracked
  sample sample_;
  anchor anchor_;
  jump jump_;
  double carry_ = 0;
  bool filled_ = false;
  bool pending_miss_ = false;
  std::uint64_t last_miss_ = 0;
  std::uint64_t rng_ = 0x2545f4914f6cdd1dULL;
};

}  // namespace warden::detail
