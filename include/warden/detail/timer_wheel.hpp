// The owner's timer wheel for entry expiry: a single-threaded hierarchical wheel (Varghese &
// Lauck; Caffeine's TimerWheel) that is exact where Caffeine's is bucket-granular: advance(now)
// expires precisely the nodes whose deadline <= now, never one whose deadline > now, so after
// the owner advances no expired entry remains.
//
// Layout: levels 0..4 of 64 buckets; a level-i bucket spans 2^(20+6i) ns (1 ms, 67 ms, 4.3 s,
// 4.6 min, 4.9 h), so level 4 covers 2^50 ns (13 days); later deadlines wait in the overflow
// bucket. A node with deadline d > now lives at the lowest level i where d and now agree on
// every bit from 26+6i up (the same tick of level i+1), in bucket (d >> (20+6i)) & 63.
// Invariants, outside advance():
//  - every deadline at a level is later than every deadline at a lower one and in `sorted`;
//    the overflow's come last; within a level, bucket order is deadline order;
//  - a level-i bucket's tick is now's (i = 0 only) or later, and every deadline is > now;
//    nodes scheduled at or before now wait in `pending`, which advance() always drains;
//  - `sorted` holds nodes of now's level-0 tick in ascending deadline order, so advances
//    within one tick pop due nodes off its front instead of rescanning a bucket.
// So a bucket whose tick lies wholly before the new now holds only due nodes and moves to
// pending without being walked, and the one bucket per level that now lands in is cascaded down (at
// level 0: sorted), checking each deadline. Any jump costs O(levels * 64 * ways + nodes moved).
//
// Lists are circular and doubly linked through slots_: the first kHeads slots are sentinels,
// node n lives in slot n + kHeads. Unlinking needs no bucket id (a list left empty is one whose
// prev == next, i.e. its sentinel), so a wholly due bucket splices onto pending without
// relabelling. Each bucket is kWays lists (a node's way: its slot mod kWays) because walking
// one list is a chain of dependent cache misses; walking kWays in turn overlaps them. min_
// bounds each bucket's deadlines from below (reset when it empties), which keeps
// next_deadline() O(levels + ways). Nothing allocates except slots_ growing.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <vector>

namespace warden::detail {

class timer_wheel {
 public:
  explicit timer_wheel(std::int64_t now) : now_(now), slots_(kHeads) {
    for (std::uint32_t h = 0; h < kHeads; ++h) slots_[h] = {0, h, h};
    std::fill(std::begin(min_), std::end(min_), kNever);
  }

  // Inserts `node`, or moves it if already scheduled. `node` must be below 2^32 - 2600. Throws
  // only when growing the per-node storage, and then changes nothing.
  void schedule(std::uint32_t node, std::int64_t deadline) {
    assert(node < kNil - kHeads);
    const std::uint32_t x = node + kHeads;
    if (x >= slots_.size()) slots_.resize(std::size_t{x} + 1, Slot{0, kNil, kNil});
    if (slots_[x].next != kNil) {
      unlink(x);
    } else {
      ++size_;
    }
    slots_[x].deadline = deadline;
    link(bucket_for(deadline), x);
  }

  void cancel(std::uint32_t node) noexcept {
    if (!scheduled(node)) return;
    const std::uint32_t x = node + kHeads;
    unlink(x);
    slots_[x].next = kNil;
    --size_;
  }

  bool scheduled(std::uint32_t node) const noexcept {
    const std::size_t x = std::size_t{node} + kHeads;
    return x < slots_.size() && slots_[x].next != kNil;
  }

  // Calls expire(node) for every scheduled node whose deadline <= now, each unscheduled first.
  // `expire` may schedule or cancel other nodes; one it schedules at or before now expires in
  // this same call. A `now` earlier than the last one counts as the last one. If `expire`
  // throws, the nodes not yet expired stay due and the next advance() expires them.
  template <class F>
  void advance(std::int64_t now, F&& expire) {
    const std::int64_t before = now_;
    now_ = std::max(now, now_);
    collect(before);
    // Pops one node at a time, rather than walking a list, because expire may cancel or
    // reschedule nodes still on it; and takes the ways in turn (see the top).
    for (bool more = true; more;) {
      more = false;
      for (std::uint32_t h = kPending * kWays; h < (kPending + 1) * kWays; ++h) {
        const std::uint32_t x = slots_[h].next;
        if (x == h) continue;
        more = true;
        unlink(x);
        slots_[x].next = kNil;
        --size_;
        expire(static_cast<std::uint32_t>(x - kHeads));
      }
    }
  }

  // A time at or before the earliest deadline: exact unless nodes left its bucket (cancelled
  // or moved) since that bucket was last empty, and never before the bucket's start; INT64_MAX
  // when nothing is scheduled. After advance(t) it is > t unless something was since scheduled
  // at or before t, so an owner that parks until then never spins. O(levels + ways).
  std::int64_t next_deadline() const noexcept {
    if (!empty(kPending)) return min_[kPending];
    std::int64_t earliest = min_[kOverflow];
    for (std::uint32_t level = 0; level < kLevels; ++level) {
      if (occupied_[level] != 0) {
        earliest =
            min_[level * kBuckets + static_cast<std::uint32_t>(std::countr_zero(occupied_[level]))];
        break;
      }
    }
    const std::uint32_t first = slots_[kSorted].next;
    return first == kSorted ? earliest : std::min(earliest, slots_[first].deadline);
  }

  std::size_t size() const noexcept { return size_; }

 private:
  struct Slot {
    std::int64_t deadline;
    std::uint32_t prev;
    std::uint32_t next;  // kNil: not scheduled (or, inside collect(), end of a detached chain)
  };

  static constexpr std::uint32_t kLevels = 5;
  static constexpr int kBits = 6;
  static constexpr std::uint32_t kBuckets = 1u << kBits;
  static constexpr int kShift0 = 20;  // a level-0 bucket spans 2^20 ns, about 1 ms
  static constexpr int kOverflowShift = kShift0 + kBits * kLevels;
  static constexpr std::uint32_t kOverflow = kLevels * kBuckets;  // bucket ids
  static constexpr std::uint32_t kPending = kOverflow + 1;
  static constexpr std::uint32_t kWays = 8;
  static constexpr std::uint32_t kSorted = (kPending + 1) * kWays;  // sentinel slots
  static constexpr std::uint32_t kHeads = kSorted + 1;
  static constexpr std::uint32_t kNil = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  static constexpr std::uint64_t kAll = ~std::uint64_t{0};

  static void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
  }

  std::uint32_t bucket_for(std::int64_t deadline) const noexcept {
    if (deadline <= now_) return kPending;
    // The highest bit where deadline and now differ picks the level.
    const auto width =
        static_cast<int>(std::bit_width(static_cast<std::uint64_t>(deadline ^ now_)));
    const auto level = static_cast<std::uint32_t>(std::max(0, width - kShift0 - 1) / kBits);
    if (level >= kLevels) return kOverflow;
    const int shift = kShift0 + kBits * static_cast<int>(level);
    return level * kBuckets + static_cast<std::uint32_t>((deadline >> shift) & (kBuckets - 1));
  }

  bool empty(std::uint32_t bucket) const noexcept {
    for (std::uint32_t h = bucket * kWays; h < (bucket + 1) * kWays; ++h) {
      if (slots_[h].next != h) return false;
    }
    return true;
  }

  void link(std::uint32_t bucket, std::uint32_t x) noexcept {
    const std::uint32_t h = bucket * kWays + x % kWays;
    const std::uint32_t first = slots_[h].next;
    slots_[x].prev = h;
    slots_[x].next = first;
    slots_[first].prev = x;
    slots_[h].next = x;
    min_[bucket] = std::min(min_[bucket], slots_[x].deadline);
    if (bucket < kOverflow) occupied_[bucket / kBuckets] |= std::uint64_t{1} << (bucket % kBuckets);
  }

  void unlink(std::uint32_t x) noexcept {
    const std::uint32_t prev = slots_[x].prev;
    const std::uint32_t next = slots_[x].next;
    slots_[prev].next = next;
    slots_[next].prev = prev;
    // Only a sentinel can be left linked to itself.
    if (prev == next && prev != kSorted && empty(prev / kWays)) emptied(prev / kWays);
  }

  void emptied(std::uint32_t bucket) noexcept {
    min_[bucket] = kNever;
    if (bucket < kOverflow)
      occupied_[bucket / kBuckets] &= ~(std::uint64_t{1} << (bucket % kBuckets));
  }

  // Empties `bucket`; chain[w] gets way w's nodes, linked by next and ending in kNil.
  void detach(std::uint32_t bucket, std::uint32_t (&chain)[kWays]) noexcept {
    for (std::uint32_t w = 0; w < kWays; ++w) {
      const std::uint32_t h = bucket * kWays + w;
      chain[w] = kNil;
      if (slots_[h].next == h) continue;
      chain[w] = slots_[h].next;
      slots_[slots_[h].prev].next = kNil;
      slots_[h].next = slots_[h].prev = h;
    }
    emptied(bucket);
  }

  // Appends first..last (linked) to pending way w; `low` bounds their deadlines from below.
  void append_pending(std::uint32_t w, std::uint32_t first, std::uint32_t last,
                      std::int64_t low) noexcept {
    const std::uint32_t h = kPending * kWays + w;
    const std::uint32_t tail = slots_[h].prev;
    slots_[tail].next = first;
    slots_[first].prev = tail;
    slots_[last].next = h;
    slots_[h].prev = last;
    min_[kPending] = std::min(min_[kPending], low);
  }

  // Moves all of `bucket`, known to be due, to pending in O(kWays).
  void splice_pending(std::uint32_t bucket) noexcept {
    for (std::uint32_t w = 0; w < kWays; ++w) {
      const std::uint32_t h = bucket * kWays + w;
      const std::uint32_t first = slots_[h].next;
      if (first == h) continue;
      append_pending(w, first, slots_[h].prev, min_[bucket]);
      slots_[h].next = slots_[h].prev = h;
    }
    emptied(bucket);
  }

  // Moves every node with deadline <= now_ to pending and re-places the nodes of the buckets
  // now_ has entered, given the previous now. Runs no user code, so it may walk chains.
  void collect(std::int64_t before) noexcept {
    const std::int64_t now = now_;
    const auto changed = static_cast<std::uint64_t>(before ^ now);
    std::uint32_t x = slots_[kSorted].next;
    if ((changed >> kShift0) != 0) {
      while (x != kSorted) x = pop_sorted(x);  // its tick is over
    } else {
      while (x != kSorted && slots_[x].deadline <= now) x = pop_sorted(x);
    }
    // Bottom-up: what a level cascades lands, already placed for now_, in levels done.
    for (std::uint32_t level = 0; level < kLevels; ++level) {
      const int shift = kShift0 + kBits * static_cast<int>(level);
      if (level > 0 && (changed >> shift) == 0) return;  // same tick here and above
      const std::uint32_t base = level * kBuckets;
      // Having left the level + 1 tick this whole level belongs to, all of it is due; else
      // the buckets from the old tick up to, not including, the new one are.
      std::uint64_t due = occupied_[level];
      const auto to = static_cast<std::uint32_t>((now >> shift) & (kBuckets - 1));
      const bool same_parent = (changed >> (shift + kBits)) == 0;
      if (same_parent) due &= ~(kAll << to) & (kAll << ((before >> shift) & (kBuckets - 1)));
      for (; due != 0; due &= due - 1) {
        splice_pending(base + static_cast<std::uint32_t>(std::countr_zero(due)));
      }
      if (!same_parent || ((occupied_[level] >> to) & 1) == 0) continue;
      if (level > 0) {
        cascade(base + to);
      } else if (min_[to] <= now) {
        sort_current(to);
      }
    }
    if ((changed >> kOverflowShift) != 0) cascade(kOverflow);
  }

  std::uint32_t pop_sorted(std::uint32_t x) noexcept {
    const std::uint32_t next = slots_[x].next;
    unlink(x);
    link(kPending, x);
    return next;
  }

  // Re-places every node of `bucket` for now_: down a level, to pending, or (overflow) back.
  void cascade(std::uint32_t bucket) noexcept {
    std::uint32_t chain[kWays];
    detach(bucket, chain);
    for (bool more = true; more;) {
      more = false;
      for (std::uint32_t& x : chain) {
        if (x == kNil) continue;
        const std::uint32_t next = slots_[x].next;
        if (next != kNil) prefetch(&slots_[next]);  // for this way's next turn
        link(bucket_for(slots_[x].deadline), x);
        x = next;
        more = true;
      }
    }
  }

  // Sorts now_'s level-0 bucket: due nodes go to pending, the rest merge into `sorted`.
  void sort_current(std::uint32_t bucket) noexcept {
    std::uint32_t chain[kWays];
    detach(bucket, chain);
    std::uint32_t x = sort_chains(chain);
    for (; x != kNil && slots_[x].deadline <= now_;) {
      const std::uint32_t next = slots_[x].next;
      link(kPending, x);
      x = next;
    }
    for (std::uint32_t at = slots_[kSorted].next; x != kNil;) {
      const std::uint32_t next = slots_[x].next;
      while (at != kSorted && slots_[at].deadline <= slots_[x].deadline) at = slots_[at].next;
      const std::uint32_t prev = slots_[at].prev;
      slots_[x].prev = prev;
      slots_[x].next = at;
      slots_[prev].next = x;
      slots_[at].prev = x;
      x = next;
    }
  }

  // Merge sort by deadline of kNil-terminated chains into one, in place (std::list::sort's
  // scheme), taking nodes from the chains in turn.
  std::uint32_t sort_chains(std::uint32_t (&chain)[kWays]) noexcept {
    std::uint32_t bins[33];  // bins[i]: a sorted run of 2^i nodes, or kNil
    std::fill(std::begin(bins), std::end(bins), kNil);
    for (bool more = true; more;) {
      more = false;
      for (std::uint32_t& x : chain) {
        if (x == kNil) continue;
        more = true;
        std::uint32_t run = x;
        x = slots_[x].next;
        if (x != kNil) prefetch(&slots_[x]);
        slots_[run].next = kNil;
        int i = 0;
        for (; bins[i] != kNil; ++i) {
          run = merge(bins[i], run);
          bins[i] = kNil;
        }
        bins[i] = run;
      }
    }
    std::uint32_t out = kNil;
    for (std::uint32_t run : bins) {
      if (run != kNil) out = merge(run, out);
    }
    return out;
  }

  std::uint32_t merge(std::uint32_t a, std::uint32_t b) noexcept {
    std::uint32_t head = kNil;
    std::uint32_t* tail = &head;
    while (a != kNil && b != kNil) {
      std::uint32_t& pick = slots_[b].deadline < slots_[a].deadline ? b : a;
      *tail = pick;
      tail = &slots_[pick].next;
      pick = *tail;
    }
    *tail = a != kNil ? a : b;
    return head;
  }

  std::int64_t now_;
  std::size_t size_ = 0;
  std::uint64_t occupied_[kLevels] = {};  // bit b of [i]: level i's bucket b is non-empty
  std::int64_t min_[kPending + 1];        // per bucket: at or before its earliest deadline
  std::vector<Slot> slots_;               // kHeads sentinels, then one slot per node
};

}  // namespace warden::detail
