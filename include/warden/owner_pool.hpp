// warden::owner_pool: owner threads shared by many caches. A cache given a pool
// (table_options::pool, actor_options::pool) starts no thread of its own: its owner becomes a
// task that the pool's threads run when the cache has work (a message, a nudge, a timed
// wake-up), one cycle at a time. The cache's semantics do not change: FIFO per producer,
// batches published whole, calls ordered behind casts.
//
// Invariants:
//  P1 A task runs on at most one thread at a time, a pool thread or a caller in run_here
//     (its state: idle, queued, running, rerun), so its owner's single-thread invariants
//     hold. A wake-up while it runs sets rerun, and the thread that runs it queues it again:
//     no wake-up is lost.
//  P2 A task is in the run queue at most once, and is queued only from idle or rerun.
//  P3 detach() removes a task from the run queue and the timers and returns only when no
//     pool thread runs it; nothing refers to it afterwards.
//  P4 A cycle may block (an owner waiting for readers to leave a copy, a bounded change feed):
//     it holds its pool thread meanwhile. So pooled tables have one owner each (a barrier
//     across several owners could wait on a task that no free thread runs), and an owner-side
//     callback of a pooled cache may not call another cache of the same pool
//     (reentrancy_error), which could wait for a thread that the callback itself holds.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace warden {

class owner_pool {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // One owner's share of the pool; owned by the owner (detail::owner_thread).
  class task {
   public:
    // `cycle(ctx)` runs one round of the owner (drain, apply, publish, timed work) and
    // returns when it next wants to run: now (more work), a deadline, or time_point::max().
    task(time_point (*cycle)(void*), void* ctx) : cycle_(cycle), ctx_(ctx) {}
    task(const task&) = delete;
    task& operator=(const task&) = delete;

   private:
    friend class owner_pool;
    enum class state : std::uint8_t { idle, queued, running, rerun, detached };
    time_point (*cycle_)(void*);
    void* ctx_;
    state state_ = state::idle;                         // guarded by the pool's mutex
    std::multimap<time_point, task*>::iterator timer_;  // valid when has_timer_
    bool has_timer_ = false;                            // guarded by the pool's mutex
  };

  // Starts `threads` (>= 1) pool threads.
  explicit owner_pool(std::size_t threads) {
    if (threads == 0) throw std::invalid_argument("warden::owner_pool needs at least 1 thread");
    workers_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  owner_pool(const owner_pool&) = delete;
  owner_pool& operator=(const owner_pool&) = delete;

  // Caches hold the pool through a shared_ptr, so none is left when this runs. Must not run
  // on one of the pool's own threads (the last reference dropped inside an owner-side
  // callback): a thread cannot join itself, so that ends the process with a message.
  ~owner_pool() {
    if (is_pool_thread()) {
      std::fputs("warden: an owner_pool destroyed on one of its own threads\n", stderr);
      std::abort();
    }
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& w : workers_) w.join();
  }

  std::size_t threads() const noexcept { return workers_.size(); }

  // Whether the calling thread is one of this pool's threads.
  bool is_pool_thread() const noexcept {
    const auto me = std::this_thread::get_id();
    return std::any_of(workers_.begin(), workers_.end(),
                       [&](const std::thread& w) { return w.get_id() == me; });
  }

  // ---- used by warden's owners (detail::owner_thread) ------------------------------------
  // Asks for `t` to run (a message, a nudge, close()). Safe from any thread, at any time
  // between attach and detach.
  void wake(task& t) {
    {
      std::lock_guard lock(mutex_);
      switch (t.state_) {
        case task::state::idle:
          t.state_ = task::state::queued;
          queue_.push_back(&t);
          break;
        case task::state::running:
          t.state_ = task::state::rerun;
          return;
        default:  // queued, rerun: it will run; detached: it will not
          return;
      }
    }
    ready_.notify_one();
  }

  void attach(task& t) { wake(t); }  // a first cycle, as a dedicated owner has at start

  // Runs up to `max_cycles` cycles of `t` on the calling thread if no other thread runs it,
  // for as long as each asks to run again at once; whether it ran any. For an owner stopped
  // on one of this pool's threads (which must not wait for another), and for a caller that
  // runs a parked owner's cycle itself instead of waking a pool thread (combining).
  bool run_here(task& t, int max_cycles = 1) {
    {
      std::lock_guard lock(mutex_);
      if (t.state_ == task::state::queued) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), &t));
      } else if (t.state_ != task::state::idle) {
        return false;
      }
      t.state_ = task::state::running;
      drop_timer(t);  // finish_cycle sets the next one
    }
    time_point next = t.cycle_(t.ctx_);
    for (int i = 1; i < max_cycles && next <= std::chrono::steady_clock::now(); ++i) {
      next = t.cycle_(t.ctx_);
    }
    finish_cycle(t, next);
    return true;
  }

  // P3. Called by the owner's destructor after its final cycle, never from that task's own
  // cycle.
  void detach(task& t) {
    std::unique_lock lock(mutex_);
    idle_.wait(lock,
               [&] { return t.state_ != task::state::running && t.state_ != task::state::rerun; });
    if (t.state_ == task::state::queued) queue_.erase(std::find(queue_.begin(), queue_.end(), &t));
    drop_timer(t);
    t.state_ = task::state::detached;
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      fire_due_timers();
      if (!queue_.empty()) {
        task* t = queue_.front();
        queue_.pop_front();
        t->state_ = task::state::running;
        drop_timer(*t);  // finish_cycle sets the next one
        lock.unlock();
        const time_point next = t->cycle_(t->ctx_);
        finish_cycle(*t, next);
        lock.lock();
        continue;
      }
      if (stopping_) return;
      if (timers_.empty()) {
        ready_.wait(lock);
      } else {
        // A copy: wait_until rereads its deadline, and another thread may erase the timer.
        const time_point until = timers_.begin()->first;
        ready_.wait_until(lock, until);
      }
    }
  }

  // After a cycle: queued again if woken meanwhile or it has more to do (P1), else idle
  // with its timed wake-up, if any.
  void finish_cycle(task& t, time_point next) {
    bool queued = false;
    bool new_first_timer = false;
    {
      std::lock_guard lock(mutex_);
      if (t.state_ == task::state::rerun || next <= std::chrono::steady_clock::now()) {
        t.state_ = task::state::queued;
        queue_.push_back(&t);
        queued = true;
      } else {
        t.state_ = task::state::idle;
        if (next != time_point::max()) {
          t.timer_ = timers_.emplace(next, &t);
          t.has_timer_ = true;
          new_first_timer = t.timer_ == timers_.begin();
        }
      }
    }
    idle_.notify_all();  // a detach() may wait for this task
    // A new earliest timer: the pool's idle threads sleep until a later one, or with none,
    // and the thread that ran this cycle may go on to a long one of another task; one of
    // them must wait for this timer instead.
    if (queued || new_first_timer) ready_.notify_one();
  }

  // Forgets `t`'s timed wake-up, if any (with the mutex held).
  void drop_timer(task& t) noexcept {
    if (t.has_timer_) timers_.erase(t.timer_);
    t.has_timer_ = false;
  }

  // Queues the tasks whose timed wake-up has come (with the mutex held).
  void fire_due_timers() {
    const time_point now = std::chrono::steady_clock::now();
    bool queued = false;
    while (!timers_.empty() && timers_.begin()->first <= now) {
      task* t = timers_.begin()->second;
      timers_.erase(timers_.begin());
      t->has_timer_ = false;
      if (t->state_ == task::state::idle) {
        t->state_ = task::state::queued;
        queue_.push_back(t);
        queued = true;
      }
    }
    if (queued) ready_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable ready_;  // work or a timer for the pool's threads
  std::condition_variable idle_;   // a task finished a cycle (detach waits for it)
  std::deque<task*> queue_;
  std::multimap<time_point, task*> timers_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // last: started once the rest exists
};

}  // namespace warden
