// The owner's mailbox, shared by table owners and the actor: one single-producer queue per
// producing thread (a `producer`), drained by the owner. A put takes no lock and makes no
// atomic read-modify-write: it writes the message into its own queue and publishes it with
// one store.
//
// Invariants
//  - Per-producer FIFO: a producer's messages (casts and calls alike) leave its queue in the
//    order they entered it; the owner takes each queue's messages in order. There is no
//    order between producers.
//  - A producer's queue is a list of blocks of kBlock messages. Only the producer writes
//    `tail_*` and its block links; only the owner reads messages out and frees exhausted
//    blocks. `pushed` (producer) and `popped` (owner) count messages; a message is the
//    owner's once it sees `pushed` pass it (release/acquire).
//  - Parking (a Dekker pair): the owner sets `parked_` (seq_cst) and then looks at every
//    queue (seq_cst loads of `pushed`) before it sleeps; a producer stores `pushed`
//    (seq_cst) and then loads `parked_` (seq_cst). Either the owner sees the message, or the
//    producer sees the owner parked and wakes it (under `park_mutex_`, which the owner holds
//    from announcing itself until it waits, so no wake-up is lost). A producer pays for the
//    wake-up only when the owner sleeps.
//  - Combining: a caller whose call finds the owner parked may borrow the owner (try_borrow,
//    under `park_mutex_`, only while the owner sleeps in its park loop) and run its cycle on
//    the calling thread instead of waking it: no futex round trip either way. While
//    `borrowed_`, the owner thread does not leave its park loop, and `parked_` stays set, so
//    producers keep waking it (it waits for the borrow to end, then looks at its queues).
//    end_borrow hands over the deadline the borrowed cycle asked for.
//  - Bounded (capacity > 0): casts count against `queued_` (one RMW per cast, bounded
//    mailboxes only; each queued message says whether it holds room); a cast beyond
//    capacity waits for the owner to drain (push-back), or try_push_cast refuses. Calls are never
//    counted: each thread has at most one call in flight, so they are bounded by the number of
//    threads, and casts cannot starve them.
//  - Shutdown: close() refuses every later push; the owner drains what was pushed before and
//    then stops. Producers waiting for room leave with closed_error, and
//    wait_for_producers_to_leave() returns once the last of them has left the mailbox (a
//    producer that had to wait counts as inside until its last touch of it, push included). A push
//    racing with close() is a cache used while it is destroyed (a contract breach); its
//    message, if never drained, is destroyed with the mailbox.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "warden/detail/config.hpp"
#include "warden/detail/hashing.hpp"  // must_succeed
#include "warden/detail/sync.hpp"
#include "warden/error.hpp"

namespace warden::detail {

template <class Msg>
class mailbox {
  static_assert(std::is_nothrow_move_constructible_v<Msg>, "messages move without throwing");

 public:
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr std::uint32_t kBlock = 64;

  class producer {
   public:
    producer() = default;
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;

   private:
    friend class mailbox;
    struct block {
      alignas(Msg) unsigned char storage[kBlock][sizeof(Msg)];
      bool counted[kBlock];   // a cast that holds room in a bounded mailbox
      block* next = nullptr;  // written by the producer before `pushed` covers it
      Msg* at(std::uint32_t i) noexcept { return std::launder(reinterpret_cast<Msg*>(storage[i])); }
    };

    // Producer's line.
    block* tail_block_ = nullptr;
    std::uint32_t tail_index_ = kBlock;
    std::uint64_t pushed_local_ = 0;
    std::atomic<std::uint64_t> pushed_{0};
    // Owner's line.
    alignas(kFalseSharingRange) block* head_block_ = nullptr;
    std::uint32_t head_index_ = 0;
    std::uint64_t popped_ = 0;
    std::atomic<std::uint64_t> consumed_{0};  // popped_, for depth() from any thread
    producer* next_ = nullptr;                // immutable once published
    // The last block the owner emptied, handed back so that a steady producer allocates no
    // block (and frees none across threads) per 64 messages.
    std::atomic<block*> spare_{nullptr};
  };

  explicit mailbox(std::size_t capacity) : capacity_(capacity) {}
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;
  ~mailbox() {
    std::vector<Msg> left;
    drain_all(left);  // messages of pushes that raced with close(); nobody owns them now
    // relaxed: the owner has stopped and no producer remains.
    for (producer* p = head_.load(std::memory_order_relaxed); p != nullptr;) {
      producer* next = p->next_;
      delete p->head_block_;
      delete p->spare_.load(std::memory_order_relaxed);  // relaxed: no thread is left
      delete p;
      p = next;
    }
  }

  // A queue for one producing thread; lives as long as the mailbox.
  producer& add_producer() {
    auto p = std::make_unique<producer>();
    std::lock_guard lock(producers_mutex_);
    // relaxed: under the mutex; the release store below publishes the queue.
    p->next_ = head_.load(std::memory_order_relaxed);
    producer* raw = p.release();
    // release: an owner that loads this head sees the queue initialized.
    head_.store(raw, std::memory_order_release);
    return *raw;
  }

  // Appends a cast, waiting for room when bounded and full. `check_may_wait` runs before any
  // wait and throws if waiting here could deadlock. Throws closed_error once closed.
  template <class CheckMayWait>
  void push_cast(producer& p, Msg&& m, CheckMayWait&& check_may_wait) {
    if (capacity_ == 0 || claim_room()) {
      push(p, std::move(m), capacity_ != 0);
      return;
    }
    // A producer that has to wait stays counted in room_waiters_ until its last touch of the
    // mailbox (after its push, or as it throws): the destructor waits for that count to drop
    // to zero (wait_for_producers_to_leave), so it can never free the mailbox between a
    // waiter's wake-up and its push.
    room_waiters_.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see wait_for_room
    struct leave_on_exit {
      std::atomic<std::uint32_t>& waiters;
      ~leave_on_exit() {
        // release: see wait_for_producers_to_leave.
        waiters.fetch_sub(1, std::memory_order_release);
      }
    } leave{room_waiters_};
    wait_for_room(check_may_wait);
    push(p, std::move(m), true);
  }

  // Appends a cast unless bounded and full; never waits.
  bool try_push_cast(producer& p, Msg&& m) {
    if (capacity_ != 0 && !claim_room()) {
      check_open();
      return false;
    }
    push(p, std::move(m), capacity_ != 0);
    return true;
  }

  // Appends a call, or a cast that must not wait for room.
  void push_call(producer& p, Msg&& m) { push(p, std::move(m), false); }

  // Appends a call without waking a parked owner; returns whether the owner was parked, in
  // which case the caller must borrow it (try_borrow) or wake it (wake()).
  [[nodiscard]] bool push_call_unwoken(producer& p, Msg&& m) {
    return push(p, std::move(m), false, false);
  }

  // Wakes the owner (or its pool task) unconditionally.
  void wake() { wake_owner(); }

  // Combining (file comment). Whether the calling thread now holds the parked owner's cycle;
  // then it must drain_borrowed(), run the cycle and end_borrow() before anything else may.
  // Refused once closed, while the owner runs, and while another thread holds it.
  bool try_borrow() {
    std::lock_guard lock(park_mutex_);
    // relaxed: under park_mutex_, which the owner holds from setting parked_ until it waits
    // and again from waking until it clears it; so a 1 here means it sleeps in that wait.
    if (borrowed_ || parked_.load(std::memory_order_relaxed) == 0) return false;
    // relaxed: under the mutex; close() after this wakes the owner, which waits for the
    // borrow to end before it drains.
    if (closed_.load(std::memory_order_relaxed)) return false;
    borrowed_ = true;
    return true;
  }

  // While borrowed: the owner's drain.
  bool drain_borrowed(std::vector<Msg>& out) { return drain_all(out); }

  // Ends a borrow; `next_deadline` is when the borrowed cycle's owner must run again.
  void end_borrow(time_point next_deadline) {
    std::lock_guard lock(park_mutex_);
    borrowed_ = false;
    // Messages the borrowed drain left (a batch cut short by a failed allocation) were
    // pushed while parked_ was set; their producers may have seen it before this borrow and
    // not woken anyone since. A look costs a load per producer.
    if (has_undrained()) wake_ = true;
    const bool sooner = next_deadline < parked_deadline_;
    borrowed_deadline_ = next_deadline;
    // Notified under the mutex: the owner, once it runs, may let the mailbox be destroyed.
    if (wake_ || sooner || owner_waits_for_borrow_) owner_cv_.notify_one();
  }

  // Wakes a parked owner without a message (readers whose access records need draining).
  void nudge() noexcept {
    // Loaded first, so that readers whose buffers are full do not all store to this line;
    // whoever set it has already made sure the owner will see it (below). relaxed: a hint.
    if (nudged_.load(std::memory_order_relaxed)) return;
    // seq_cst store, then seq_cst load of parked_: a Dekker pair with the parking owner,
    // which stores parked_ and then exchanges nudged_ (both seq_cst): either it sees the
    // nudge, or this sees it parked and wakes it.
    nudged_.store(true, std::memory_order_seq_cst);
    if (parked_.load(std::memory_order_seq_cst) != 0) {
      try {
        wake_owner();
      } catch (...) {  // std::mutex::lock failing: the owner wakes at its next deadline
      }
    }
  }

  // Whether the owner sleeps (a hint, read without ordering).
  bool owner_parked_hint() const noexcept {
    // relaxed: a hint.
    return parked_.load(std::memory_order_relaxed) != 0;
  }

  // No pushes after this; the owner drains what was pushed before, then stops.
  void close() {
    // seq_cst: ordered before the owner's final look at the queues (wait_and_drain, poll).
    closed_.store(true, std::memory_order_seq_cst);
    wake_owner();
    // release: waiters for room reload `closed_` after waking (acquire).
    room_epoch_.fetch_add(1, std::memory_order_release);
    room_epoch_.notify_all();
  }

  // After close(): returns once no producer waits for room any more.
  void wait_for_producers_to_leave() const noexcept {
    // acquire: a waiter's last use of the mailbox happens before its decrement.
    while (room_waiters_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

  // Owner side: waits for messages, a nudge or `deadline` (spinning briefly first), then
  // moves every message available into `out` (which may stay empty on a deadline or
  // nudge). Returns false once closed and drained. A borrowed cycle's deadline replaces
  // `deadline`.
  bool wait_and_drain(std::vector<Msg>& out, time_point& deadline) {
    // Adaptive spinning: while messages keep arriving during the spin (calls back to back),
    // spin longer, so neither side pays a futex round trip; once the owner has had to park,
    // spin less, so an idle owner does not take a core from the threads that need it.
    for (int i = 0; i < spin_budget_; ++i) {
      if (drain_all(out)) {
        spin_budget_ = std::min(spin_budget_ * 2, kMaxSpins);
        return true;
      }
      // relaxed: a hint; rechecked under the mutex below.
      if (nudged_.load(std::memory_order_relaxed) || closed_.load(std::memory_order_relaxed)) {
        break;
      }
      cpu_relax();
    }
    spin_budget_ = std::max(spin_budget_ / 2, kMinSpins);
    for (int i = 0; i < kYieldIterations; ++i) {
      if (drain_all(out)) return true;
      if (nudged_.load(std::memory_order_relaxed)) break;  // relaxed: as above
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::yield();
    }
    std::unique_lock lock(park_mutex_);
    for (;;) {
      if (borrowed_deadline_) deadline = *std::exchange(borrowed_deadline_, std::nullopt);
      // seq_cst: the owner's half of the parking Dekker pair (file comment).
      parked_.store(1, std::memory_order_seq_cst);
      const bool got = drain_all(out);
      // seq_cst: as above; closed_ is re-read after announcing, so a close() that found the
      // owner running is still seen.
      const bool closed = closed_.load(std::memory_order_seq_cst);
      // seq_cst: the owner's half of the nudge's Dekker pair (see nudge()).
      const bool nudged = nudged_.exchange(false, std::memory_order_seq_cst);
      if (got || nudged || std::chrono::steady_clock::now() >= deadline) {
        parked_.store(0, std::memory_order_relaxed);  // relaxed: a hint for producers
        return true;
      }
      if (closed) {
        parked_.store(0, std::memory_order_relaxed);  // relaxed: as above
        return false;
      }
      wake_ = false;
      parked_deadline_ = deadline;
      if (deadline == time_point::max()) {
        owner_cv_.wait(lock);
      } else {
        owner_cv_.wait_until(lock, deadline);
      }
      // Woken, by time or spuriously, while a caller runs this owner's cycle: its state is
      // the caller's until the borrow ends.
      owner_waits_for_borrow_ = true;
      while (borrowed_) owner_cv_.wait(lock);
      owner_waits_for_borrow_ = false;
    }
  }

  // An owner run by a pool (owner_pool.hpp) instead of a thread of its own: wake-ups call
  // `fn(ctx)` instead of signalling a sleeping thread. Set before the first push.
  void set_waker(void (*fn)(void*), void* ctx) noexcept {
    waker_ = fn;
    waker_ctx_ = ctx;
  }

  // A pooled owner's look at its mailbox, without waiting: moves every available message
  // into `out`. With none, it announces itself parked (the Dekker pair of wait_and_drain)
  // and looks once more; `idle` leaves it parked, so the next push, nudge or close() calls
  // the waker. `closed`: closed and drained.
  enum class poll_result { work, idle, closed };
  poll_result poll(std::vector<Msg>& out) {
    if (drain_all(out)) {
      parked_.store(0, std::memory_order_relaxed);  // relaxed: a hint for producers
      return poll_result::work;
    }
    // seq_cst: the owner's half of the parking Dekker pair (file comment).
    parked_.store(1, std::memory_order_seq_cst);
    const bool got = drain_all(out);
    // seq_cst: as in wait_and_drain.
    const bool closed = closed_.load(std::memory_order_seq_cst);
    // seq_cst: the owner's half of the nudge's Dekker pair (see nudge()).
    const bool nudged = nudged_.exchange(false, std::memory_order_seq_cst);
    if (got || nudged) {
      parked_.store(0, std::memory_order_relaxed);  // relaxed: as above
      return poll_result::work;
    }
    return closed ? poll_result::closed : poll_result::idle;
  }

  // Messages queued now, all producers (a snapshot, for stats).
  std::size_t depth() const noexcept {
    std::size_t n = 0;
    // acquire: see add_producer.
    for (producer* p = head_.load(std::memory_order_acquire); p != nullptr; p = p->next_) {
      // relaxed: statistics.
      n +=
          p->pushed_.load(std::memory_order_relaxed) - p->consumed_.load(std::memory_order_relaxed);
    }
    return n;
  }

 private:
  static constexpr int kMinSpins = 64;
  static constexpr int kMaxSpins = 8192;
  int spin_budget_ = kMinSpins;  // owner-private

  void check_open() const {
    // acquire: a producer refused here must not see the mailbox half torn down.
    if (closed_.load(std::memory_order_acquire)) throw closed_error();
  }

  // Returns whether the owner was parked (and, if `wake`, woken).
  bool push(producer& p, Msg&& m, bool counted, bool wake = true) {
    try {
      check_open();
      if (p.tail_index_ == kBlock) {
        // acquire: pairs with the owner's release in drain_all, so the owner's last reads
        // of the block happen before this producer writes it again.
        auto* b = p.spare_.exchange(nullptr, std::memory_order_acquire);
        if (b == nullptr) {
          b = new typename producer::block;
        } else {
          b->next = nullptr;
        }
        if (p.tail_block_ == nullptr) {
          // The first block: the owner starts reading here once `pushed_` covers it.
          p.head_block_ = b;
        } else {
          p.tail_block_->next = b;
        }
        p.tail_block_ = b;
        p.tail_index_ = 0;
      }
    } catch (...) {
      if (counted) release_room(1);
      throw;
    }
    new (p.tail_block_->storage[p.tail_index_]) Msg(std::move(m));
    p.tail_block_->counted[p.tail_index_] = counted;
    ++p.tail_index_;
    // seq_cst: publishes the message (release) and is the producer's half of the parking
    // Dekker pair with the load of parked_ below.
    p.pushed_.store(++p.pushed_local_, std::memory_order_seq_cst);
    if (parked_.load(std::memory_order_seq_cst) == 0) return false;  // seq_cst: as above
    if (wake) wake_owner();
    return true;
  }

  void wake_owner() {
    if (waker_ != nullptr) {
      waker_(waker_ctx_);
      return;
    }
    std::lock_guard lock(park_mutex_);
    wake_ = true;
    owner_cv_.notify_one();
  }

  // Owner (or borrower): whether a producer has messages not yet drained.
  bool has_undrained() const noexcept {
    // acquire: see add_producer.
    for (producer* p = head_.load(std::memory_order_acquire); p != nullptr; p = p->next_) {
      // relaxed: a look; a message it misses was pushed after the owner was marked parked
      // and its producer wakes the owner.
      if (p->pushed_.load(std::memory_order_relaxed) != p->popped_) return true;
    }
    return false;
  }

  // Owner: moves every available message of every producer into `out`; whether any.
  bool drain_all(std::vector<Msg>& out) {
    std::size_t taken = 0, room = 0;
    // acquire: see add_producer.
    for (producer* p = head_.load(std::memory_order_acquire); p != nullptr; p = p->next_) {
      // seq_cst: the owner's half of the parking Dekker pair; acquire makes the messages
      // (and block links) the producer wrote before visible.
      const std::uint64_t avail = p->pushed_.load(std::memory_order_seq_cst);
      if (avail == p->popped_) continue;
      for (; p->popped_ != avail; ++p->popped_) {
        if (out.size() == out.capacity() && !make_room(out, taken)) break;
        if (p->head_index_ == kBlock) {
          auto* done = p->head_block_;
          p->head_block_ = done->next;
          p->head_index_ = 0;
          // release: see push (the producer's acquire); the block displaced, if any, was
          // handed back by this owner earlier and never taken, so nobody else touches it.
          delete p->spare_.exchange(done, std::memory_order_acq_rel);
        }
        room += p->head_block_->counted[p->head_index_] ? 1 : 0;
        Msg* m = p->head_block_->at(p->head_index_++);
        out.push_back(std::move(*m));  // room made above: cannot throw
        m->~Msg();
        ++taken;
      }
      // relaxed: statistics (depth).
      p->consumed_.store(p->popped_, std::memory_order_relaxed);
    }
    if (room != 0) release_room(room);
    return taken != 0;
  }

  // Grows the batch vector before a message leaves its queue, so that running out of memory
  // loses nothing: with messages taken already, the batch ends here (the rest wait for the
  // next drain); with none, the owner retries (must_succeed), as for its other allocations.
  static bool make_room(std::vector<Msg>& out, std::size_t taken) noexcept {
    const std::size_t want = std::max<std::size_t>(64, out.capacity() * 2);
    try {
      out.reserve(want);
      return true;
    } catch (...) {
      if (taken != 0) return false;
    }
    must_succeed([&] { out.reserve(want); }, "growing the owner's batch");
    return true;
  }

  // Claims room for one cast; false (nothing claimed) when the mailbox is full. A failed
  // claim is taken back without waking anyone: the room it counted was never there, and the
  // claims that did succeed will be drained, which wakes the waiters.
  bool claim_room() noexcept {
    // seq_cst: one half of the Dekker pair with drain's release of room (wait_for_room).
    if (queued_.fetch_add(1, std::memory_order_seq_cst) < capacity_) return true;
    queued_.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: as above
    return false;
  }

  // Claims room for one cast, waiting for the owner to drain while the mailbox is full. The
  // caller is already counted in room_waiters_ (push_cast), before any look at queued_ here:
  // a Dekker pair (seq_cst both sides) with release_room, which gives room back and then
  // looks for waiters, so either the owner sees this waiter and bumps the epoch, or this
  // sees the room.
  template <class CheckMayWait>
  void wait_for_room(CheckMayWait& check_may_wait) {
    for (;;) {
      check_open();
      if (claim_room()) return;
      check_may_wait();
      // acquire: pairs with the epoch bumps of release_room and close().
      const std::uint32_t seen = room_epoch_.load(std::memory_order_acquire);
      if (queued_.load(std::memory_order_seq_cst) >= capacity_ &&  // seq_cst: see above
          !closed_.load(std::memory_order_acquire)) {              // acquire: see check_open
        room_epoch_.wait(seen, std::memory_order_acquire);
#if defined(WARDEN_TEST_DELAY_AFTER_ROOM_WAIT_MS)
        // Tests only: widens the window between a waiter's wake-up and its next touch of the
        // mailbox, where a destructor that stopped waiting for it too early would free it.
        std::this_thread::sleep_for(
            std::chrono::milliseconds(WARDEN_TEST_DELAY_AFTER_ROOM_WAIT_MS));
#endif
      }
    }
  }

  // Gives back room for `n` casts (the owner after a drain, or a push that failed).
  void release_room(std::size_t n) {
    // seq_cst: the owner's half of the Dekker pair in wait_for_room.
    queued_.fetch_sub(n, std::memory_order_seq_cst);
    if (room_waiters_.load(std::memory_order_seq_cst) != 0) {
      // release: pairs with wait_for_room's acquire load of the epoch.
      room_epoch_.fetch_add(1, std::memory_order_release);
      room_epoch_.notify_all();
    }
  }

  const std::size_t capacity_;
  std::atomic<producer*> head_{nullptr};
  std::mutex producers_mutex_;  // serializes add_producer

  alignas(kFalseSharingRange) std::atomic<std::uint32_t> parked_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> nudged_{false};
  std::mutex park_mutex_;
  std::condition_variable owner_cv_;
  bool wake_ = false;  // guarded by park_mutex_
  // Combining, all guarded by park_mutex_.
  bool borrowed_ = false;
  bool owner_waits_for_borrow_ = false;
  std::optional<time_point>
      borrowed_deadline_;  // a borrowed cycle's next deadline, not yet adopted
  time_point parked_deadline_ = time_point::max();
  void (*waker_)(void*) = nullptr;  // set before the first push (set_waker)
  void* waker_ctx_ = nullptr;

  alignas(kFalseSharingRange) std::atomic<std::size_t> queued_{0};  // bounded mailboxes only
  std::atomic<std::uint32_t> room_epoch_{0};
  std::atomic<std::uint32_t> room_waiters_{0};
};

}  // namespace warden::detail
