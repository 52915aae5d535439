// The owner's MPSC mailbox, shared by table owners and the actor.
//
// Protocol: producers append under a std::mutex and return; the owner takes the whole queue
// in one swap and applies it as a batch, so the lock is held for an append or a swap, never
// for the work. Per-producer FIFO follows from the lock: one thread's appends are ordered.
// An idle owner parks on `wake_` (std::atomic::wait, a futex); a producer pays the wake-up
// syscall only when it finds `owner_parked_` set, i.e. at most once per owner sleep.
//
// Bounded (capacity > 0): casts beyond `capacity` wait for the owner to drain (push-back) or
// are refused by try_push_cast. Calls are never counted against the capacity and never wait
// for room: each thread has at most one call in flight, so they are bounded by the number of
// threads, and a flood of casts cannot starve them.
//
// Why a lock and not a lock-free queue: the design target is one producer at >= 10M casts/s
// through the owner, which an uncontended mutex meets (two uncontended atomic RMWs per
// append); the read path, the product's reason to exist, never touches the mailbox.
#pragma once

#include <atomic>
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
      if (closed_) throw closed_error();
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

  void push_call(Msg&& m) {
    std::unique_lock lock(mutex_);
    if (closed_) throw closed_error();
    enqueue(lock, std::move(m));
  }

  // No pushes after this; the owner drains what was accepted, then wait_and_drain says stop.
  void close() {
    std::unique_lock lock(mutex_);
    closed_ = true;
    const bool wake = std::exchange(owner_parked_, false);
    // relaxed: the mutex publishes `closed_`; the changed value alone releases the waiter.
    if (wake) wake_.fetch_add(1, std::memory_order_relaxed);
    const bool notify_space = space_waiters_ != 0;
    lock.unlock();
    if (wake) wake_.notify_one();
    if (notify_space) space_.notify_all();
  }

  // Owner side: blocks until there is work (brief spin, then park), then swaps the whole queue
  // into `out` (which must be empty). Returns false once closed and drained.
  bool wait_and_drain(std::vector<Msg>& out) {
    // relaxed: only a hint to stop waiting early; the queue is checked under the mutex.
    for (int i = 0; i < kSpinIterations * 4 && !nonempty_.load(std::memory_order_relaxed); ++i) {
      cpu_relax();
    }
    for (int i = 0; i < kYieldIterations && !nonempty_.load(std::memory_order_relaxed); ++i) {
      std::this_thread::yield();
    }
    std::unique_lock lock(mutex_);
    while (queue_.empty()) {
      if (closed_) return false;
      owner_parked_ = true;
      // relaxed: read under the mutex; a producer changes it only under the mutex afterwards.
      const std::uint32_t seen = wake_.load(std::memory_order_relaxed);
      lock.unlock();
      wake_.wait(seen, std::memory_order_relaxed);
      lock.lock();
    }
    out.swap(queue_);
    casts_ = 0;
    // relaxed: a hint, see above.
    nonempty_.store(false, std::memory_order_relaxed);
    const bool notify_space = space_waiters_ != 0;
    lock.unlock();
    if (notify_space) space_.notify_all();
    return true;
  }

  // Casts queued now (for stats; exact at the instant of the lock).
  std::size_t depth() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  void enqueue(std::unique_lock<std::mutex>& lock, Msg&& m) {
    queue_.push_back(std::move(m));
    // relaxed: a spin hint for the owner (see wait_and_drain).
    if (queue_.size() == 1) nonempty_.store(true, std::memory_order_relaxed);
    const bool wake = std::exchange(owner_parked_, false);
    // relaxed: as in close().
    if (wake) wake_.fetch_add(1, std::memory_order_relaxed);
    lock.unlock();
    if (wake) wake_.notify_one();
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable space_;
  std::vector<Msg> queue_;  // guarded by mutex_
  std::size_t casts_ = 0;   // casts in queue_; guarded by mutex_
  std::size_t space_waiters_ = 0;
  bool owner_parked_ = false;  // guarded by mutex_
  bool closed_ = false;        // guarded by mutex_
  alignas(kFalseSharingRange) std::atomic<std::uint32_t> wake_{0};
  std::atomic<bool> nonempty_{false};
};

}  // namespace warden::detail
