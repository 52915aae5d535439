// The owner's MPSC mailbox, shared by table owners and the actor.
//
// Protocol: producers append under a std::mutex and return; the owner takes the whole queue
// in one swap and applies it as a batch, so the lock is held for an append or a swap, never
// for the work. Per-producer FIFO follows from the lock: one thread's appends are ordered.
// An idle owner parks on a condition variable, with a deadline when it has timed work
// (expiry, draining access records, clearing a fence bit); a producer pays the wake-up only
// when it finds the owner parked, i.e. at most once per owner sleep.
//
// Bounded (capacity > 0): casts beyond `capacity` wait for the owner to drain (push-back) or
// are refused by try_push_cast. Calls are never counted against the capacity and never wait
// for room: each thread has at most one call in flight, so they are bounded by the number of
// threads, and a flood of casts cannot starve them.
//
// Every notify happens under the mutex, so no thread touches the mailbox after the mutex
// shows it done with it.
//
// Shutdown: close() refuses new messages and wakes everyone; producers that were waiting for
// room leave with closed_error, and wait_for_producers_to_leave() returns only once the last
// of them has released the mutex, so the mailbox can then be destroyed safely.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "warden/detail/sync.hpp"
#include "warden/error.hpp"

namespace warden::detail {

template <class Msg>
class mailbox {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit mailbox(std::size_t capacity) : capacity_(capacity) {}
  mailbox(const mailbox&) = delete;
  mailbox& operator=(const mailbox&) = delete;

  // Appends a cast, waiting for room when bounded and full. `check_may_wait` runs before any
  // wait and throws if waiting here could deadlock (the caller is the owner, or holds a read
  // section the owner is waiting for). Throws closed_error once the mailbox is closed.
  template <class CheckMayWait>
  void push_cast(Msg&& m, CheckMayWait&& check_may_wait) {
    std::unique_lock lock(mutex_);
    if (closed_) throw closed_error();
    while (capacity_ != 0 && casts_ >= capacity_) {
      check_may_wait();
      ++space_waiters_;
      space_.wait(lock);
      --space_waiters_;
      if (closed_) {
        if (space_waiters_ == 0) space_.notify_all();  // wait_for_producers_to_leave
        throw closed_error();
      }
    }
    ++casts_;
    enqueue(lock, std::move(m));
  }

  // Appends a cast unless bounded and full; never waits.
  bool try_push_cast(Msg&& m) {
    std::unique_lock lock(mutex_);
    if (closed_) throw closed_error();
    if (capacity_ != 0 && casts_ >= capacity_) return false;
    ++casts_;
    enqueue(lock, std::move(m));
    return true;
  }

  // Appends a call, or a cast that must not wait for room (one sent from a thread the owner
  // may be waiting on).
  void push_call(Msg&& m) {
    std::unique_lock lock(mutex_);
    if (closed_) throw closed_error();
    enqueue(lock, std::move(m));
  }

  // Wakes a parked owner without a message (readers whose access records need draining).
  void nudge() {
    std::unique_lock lock(mutex_);
    nudged_ = true;
    wake_owner();
  }

  // Whether the owner is parked (a hint, read without the lock).
  bool owner_parked_hint() const noexcept {
    // relaxed: a hint; nudge() rechecks under the mutex.
    return parked_hint_.load(std::memory_order_relaxed);
  }

  // No pushes after this; the owner drains what was accepted, then wait_and_drain says stop.
  void close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    owner_parked_ = false;
    owner_.notify_one();
    space_.notify_all();
  }

  // After close(): returns once no producer is inside push_cast any more.
  void wait_for_producers_to_leave() {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return space_waiters_ == 0; });
  }

  // Owner side: blocks until there is work, a nudge, or `deadline` (brief spin, then park),
  // then swaps the whole queue into `out` (which must be empty; it may stay empty on a
  // deadline or nudge). Returns false once closed and drained.
  bool wait_and_drain(std::vector<Msg>& out, time_point deadline) {
    // relaxed: only a hint to stop waiting early; the queue is checked under the mutex.
    for (int i = 0; i < kSpinIterations * 4 && !nonempty_.load(std::memory_order_relaxed); ++i) {
      cpu_relax();
    }
    for (int i = 0; i < kYieldIterations && !nonempty_.load(std::memory_order_relaxed); ++i) {
      std::this_thread::yield();
    }
    std::unique_lock lock(mutex_);
    while (queue_.empty() && !nudged_) {
      if (closed_) return false;
      if (std::chrono::steady_clock::now() >= deadline) break;
      owner_parked_ = true;
      // relaxed: a hint for readers (owner_parked_hint).
      parked_hint_.store(true, std::memory_order_relaxed);
      if (deadline == time_point::max()) {
        owner_.wait(lock);
      } else {
        owner_.wait_until(lock, deadline);
      }
      owner_parked_ = false;
      parked_hint_.store(false, std::memory_order_relaxed);  // relaxed: as above
    }
    nudged_ = false;
    out.swap(queue_);
    casts_ = 0;
    // relaxed: a hint, see above.
    nonempty_.store(false, std::memory_order_relaxed);
    if (space_waiters_ != 0) space_.notify_all();
    return true;
  }

  // Messages queued now (exact at the instant of the lock).
  std::size_t depth() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  void enqueue(std::unique_lock<std::mutex>& lock, Msg&& m) {
    queue_.push_back(std::move(m));
    // relaxed: a spin hint for the owner (see wait_and_drain).
    if (queue_.size() == 1) nonempty_.store(true, std::memory_order_relaxed);
    wake_owner();
    lock.unlock();
  }

  // Under the mutex: a notify after unlocking could touch a mailbox that a destructor
  // (which takes the mutex first) has freed meanwhile.
  void wake_owner() {
    if (std::exchange(owner_parked_, false)) owner_.notify_one();
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable space_;  // producers waiting for room; wait_for_producers_to_leave
  std::condition_variable owner_;  // the parked owner
  std::vector<Msg> queue_;         // guarded by mutex_
  std::size_t casts_ = 0;          // casts in queue_; guarded by mutex_
  std::size_t space_waiters_ = 0;  // guarded by mutex_
  bool owner_parked_ = false;      // guarded by mutex_
  bool nudged_ = false;            // guarded by mutex_
  bool closed_ = false;            // guarded by mutex_
  alignas(kFalseSharingRange) std::atomic<bool> nonempty_{false};
  std::atomic<bool> parked_hint_{false};
};

}  // namespace warden::detail
