// The owner loop, shared by the table's owners and the actor: it drains its mailbox batch
// by batch and wakes on its own when it has timed work.
//
// One cycle: wait for messages, a nudge or the deadline the last idle() asked for; then
// call the owner's hooks (owner_hooks below) in order on the drained batch (possibly empty):
// apply, after_applied, publish, after_published, idle. Every hook is noexcept: hooks catch
// user exceptions and carry them to callers, so an owner never dies from user code. stop()
// drains: every message accepted before it is processed.
//
// Combining: a caller that posts a call and finds the owner parked runs the owner's cycle
// itself (serve_parked), on its own thread, instead of waking the owner and being woken back:
// an isolated call costs no futex round trip. The cycle is the same one, never on two threads
// at once (mailbox.hpp's borrow; the pool's task state), so the owner's single-thread
// invariants hold; is_current() names the borrowing thread while it runs the cycle.
//
// Given an owner_pool, the owner starts no thread: the same cycle runs as the pool's task
// (one cycle per turn, never on two threads at once), woken by its mailbox's pushes, nudges
// and close(), and by the pool's timer for idle()'s deadline.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "warden/detail/mailbox.hpp"
#include "warden/detail/thread_state.hpp"
#include "warden/owner_pool.hpp"

namespace warden::detail {

// Empties a per-batch buffer that just held `used` elements. A burst's peak capacity goes back
// to the allocator at the first batch well below it; steady large batches keep their buffer
// (freeing and refaulting megabytes per batch cost puts 15% in a profile).
template <class T>
void clear_keeping_working_set(std::vector<T>& v, std::size_t used, std::size_t keep) noexcept {
  v.clear();
  if (v.capacity() > keep && used < v.capacity() / 4) std::vector<T>().swap(v);
}

// What the loop asks of an owner, once per cycle and in this order:
//   apply(batch)       every message in arrival order: casts applied, calls run
//   after_applied()    work that joins the batch before anyone sees it (expiry due by now)
//   publish()          the batch becomes visible: to readers, and to the change feed
//   after_published()  what waits for visibility: replies to the batch's calls, loaders
//   idle()             timed work (expiry sweeps, access records, fence bits); returns when
//                      the loop must run again if no message comes
template <class H, class Msg>
concept owner_hooks = requires(H& h, std::vector<Msg>& batch) {
  { h.apply(batch) } noexcept;
  { h.after_applied() } noexcept;
  { h.publish() } noexcept;
  { h.after_published() } noexcept;
  { h.idle() } noexcept -> std::same_as<std::chrono::steady_clock::time_point>;
};

template <class Msg>
class owner_thread {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr std::size_t kKeepBatchCapacity = 4096;
  // A pooled owner borrowed by a caller runs at most this many cycles there: the one with the
  // call, and a look for more that leaves the task idle instead of queued for a pool thread.
  static constexpr int kMaxBorrowedCycles = 2;

  explicit owner_thread(std::size_t capacity, std::shared_ptr<owner_pool> pool = nullptr)
      : mailbox_(capacity), pool_(std::move(pool)), task_(&pooled_cycle, this) {}
  owner_thread(const owner_thread&) = delete;
  owner_thread& operator=(const owner_thread&) = delete;
  ~owner_thread() { stop(); }

  // `hooks` must outlive stop().
  template <class H>
    requires owner_hooks<H, Msg>
  void start(H& hooks) {
    hooks_ = &hooks;
    cycle_ = &run_cycle<H>;
    if (pool_) {
      mailbox_.set_waker([](void* t) { static_cast<owner_thread*>(t)->wake_task(); }, this);
      pool_->attach(task_);
      attached_ = true;
      return;
    }
    thread_ = std::thread([this] {
      // relaxed: see is_current; stored here too, so the owner knows itself from its first
      // cycle on, before the starting thread's store below.
      id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
      std::vector<Msg> work;
      time_point wake = time_point::max();
      while (mailbox_.wait_and_drain(work, wake)) wake = cycle(work);
    });
    // relaxed: read only to recognize the owner's own thread (is_current).
    id_.store(thread_.get_id(), std::memory_order_relaxed);
  }

  // Drains: every message accepted before this is processed before the thread exits. Then
  // waits for producers still inside the mailbox (refused) to leave it. A cache with several
  // owners closes every mailbox before joining any (close(), then stop()), so producers
  // blocked at any owner are refused at once, whatever an owner is still busy with.
  void close() { mailbox_.close(); }
  void stop() {
    mailbox_.close();
    if (thread_.joinable()) thread_.join();
    if (attached_) {
      if (pool_->is_pool_thread()) {
        // No waiting for another pool thread from here (it may be the only one): the final
        // cycles run here whenever no other thread runs them.
        while (!finished()) {
          if (!pool_->run_here(task_)) std::this_thread::yield();
        }
      } else {
        std::unique_lock lock(finish_mutex_);
        finished_cv_.wait(lock, [&] { return finished_locked_; });
      }
      pool_->detach(task_);
      attached_ = false;
    }
    mailbox_.wait_for_producers_to_leave();
  }

  // After push_call_unwoken found the owner parked: runs its cycle here (combining) or, when
  // that is not possible now, wakes it. The calling thread must be no owner, hold nothing
  // the cycle may wait for (a read section of this cache) and expect its reply from this
  // cycle: the callers' checks before a call (reentrancy_error) ensure the first two.
  void serve_parked() {
    if (tls.owner_cycles != 0) {  // inside another cache's owner-side callback
      mailbox_.wake();
      return;
    }
    if (pool_) {
      if (!pool_->run_here(task_, kMaxBorrowedCycles)) wake_task();
      return;
    }
    if (!mailbox_.try_borrow()) {
      mailbox_.wake();
      return;
    }
    // relaxed: see is_current; the owner thread sleeps until end_borrow, and its id is
    // restored before then.
    const std::thread::id owner = id_.load(std::memory_order_relaxed);
    id_.store(std::this_thread::get_id(), std::memory_order_relaxed);  // relaxed: as above
    mailbox_.drain_borrowed(work_);
    const time_point next = cycle(work_);
    id_.store(owner, std::memory_order_relaxed);  // relaxed: as above
    mailbox_.end_borrow(next);
  }

  // Whether the calling thread is this owner now (works across shared objects, unlike a
  // thread_local marker, which each -fvisibility=hidden library would have its own copy of).
  bool is_current() const noexcept {
    // relaxed: a thread only needs to recognize its own id, which it stored itself.
    return std::this_thread::get_id() == id_.load(std::memory_order_relaxed);
  }
  const owner_pool* pool() const noexcept { return pool_.get(); }

  // Whether a call or a wait for room from the calling thread must be refused because it
  // could wait for a thread of this owner's pool that the caller holds (owner_pool.hpp, P4):
  // it is a pool thread, or runs a cycle of an owner of the same pool. A cycle run by a
  // caller (combining) holds no pool thread, but is refused alike, so that what a callback
  // may do does not depend on which thread ran it.
  bool caller_holds_pool() const noexcept {
    return pool_ != nullptr && (tls.cycle_pool == pool_.get() || pool_->is_pool_thread());
  }

  mailbox<Msg>& box() { return mailbox_; }
  const mailbox<Msg>& box() const { return mailbox_; }

 private:
  using time_point_t = owner_pool::time_point;

  void wake_task() { pool_->wake(task_); }

  bool finished() {
    std::lock_guard lock(finish_mutex_);
    return finished_locked_;
  }

  template <class H>
  static time_point run_cycle(void* hooks, std::vector<Msg>& work) noexcept {
    H& h = *static_cast<H*>(hooks);
    h.apply(work);
    h.after_applied();
    h.publish();
    h.after_published();
    return h.idle();
  }

  // One cycle on the drained `work`; returns the next deadline.
  time_point cycle(std::vector<Msg>& work) noexcept {
    const std::size_t used = work.size();
    // Reads from an owner-side callback are refused (reentrancy_error) on the slow path of
    // the slot lookup only; dropping the thread's most recent slot sends the callback's reads
    // there, on whichever thread runs the cycle.
    tls.mru_serial = 0;
    ++tls.owner_cycles;
    const void* const outer_pool = tls.cycle_pool;
    tls.cycle_pool = pool_.get();
    const time_point wake = cycle_(hooks_, work);
    tls.cycle_pool = outer_pool;
    --tls.owner_cycles;
    clear_keeping_working_set(work, used, kKeepBatchCapacity);
    return wake;
  }

  // One turn on a pool thread: the body of the dedicated loop, without its waits.
  static time_point_t pooled_cycle(void* ctx) noexcept {
    auto& self = *static_cast<owner_thread*>(ctx);
    // relaxed: see is_current.
    self.id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    time_point_t next = self.wake_;
    const auto r = self.mailbox_.poll(self.work_);
    if (r == mailbox<Msg>::poll_result::closed) {
      self.id_.store(std::thread::id(), std::memory_order_relaxed);  // relaxed: as above
      {
        std::lock_guard lock(self.finish_mutex_);
        self.finished_locked_ = true;
      }
      self.finished_cv_.notify_all();
      return time_point_t::max();
    }
    const bool work = r == mailbox<Msg>::poll_result::work;
    const time_point_t now = std::chrono::steady_clock::now();
    if (work || now >= self.wake_) {
      self.wake_ = self.cycle(self.work_);
      // Look again at once after work: more may have come (a dedicated owner would spin).
      next = work ? now : self.wake_;
    }
    self.id_.store(std::thread::id(), std::memory_order_relaxed);  // relaxed: as above
    return next;
  }

  mailbox<Msg> mailbox_;
  std::thread thread_;
  std::atomic<std::thread::id> id_{};
  void* hooks_ = nullptr;  // set before the thread or task starts, constant after
  time_point (*cycle_)(void*, std::vector<Msg>&) noexcept = nullptr;
  // Pooled: the task and what its cycles use (only the thread running the task touches
  // work_ and wake_; the pool runs it on one thread at a time). A dedicated owner's borrowed
  // cycles use work_ too (only the borrower touches it).
  std::shared_ptr<owner_pool> pool_;
  owner_pool::task task_;
  bool attached_ = false;
  std::vector<Msg> work_;
  time_point wake_ = time_point::max();
  std::mutex finish_mutex_;
  std::condition_variable finished_cv_;
  bool finished_locked_ = false;  // guarded by finish_mutex_
};

}  // namespace warden::detail
