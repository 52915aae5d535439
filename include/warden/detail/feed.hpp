// The notifier behind a cache's change feed (change_feed.hpp for the public side).
//
// Invariants
//  - Owners hand over each published batch under `mutex_`, together with the flip that makes
//    it visible (publish()), so batch sequence numbers follow the publication order of every
//    owner's flips, and a transaction across owners is handed over once, as one batch.
//  - A subscriber receives exactly the batches with sequence > its `from` (the last sequence
//    handed over when it subscribed), in order, one at a time, on the notifier thread.
//  - Nothing handed over is dropped. Unbounded by default (capacity 0): a slow subscriber
//    makes the queue grow (stats().feed_queued shows it) but never slows the owners. With a
//    capacity, an owner whose hand-over finds the queue full waits for room: push-back
//    instead of growth. That is why calls from inside a subscriber are refused on a bounded
//    feed (the owner could be waiting for that very subscriber).
//  - An exception from a subscriber is caught on the notifier, counted, and kept for that
//    subscription's next sync(), which rethrows it; delivery goes on.
//  - stop() (cache destruction, after the owners have drained) delivers every batch already
//    handed over, then ends the notifier. The feed itself is shared with the subscriptions,
//    which may outlive the cache.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "warden/change_feed.hpp"
#include "warden/error.hpp"

namespace warden::detail {

template <class K, class V>
class feed final : public feed_base, public std::enable_shared_from_this<feed<K, V>> {
 public:
  using batch_type = change_batch<K, V>;
  using changes = std::vector<change<K, V>>;
  using function = std::function<void(const batch_type&)>;

  explicit feed(std::size_t capacity) : capacity_(capacity) {}
  feed(const feed&) = delete;
  feed& operator=(const feed&) = delete;
  ~feed() override {
    if (notifier_.joinable()) notifier_.detach();  // only if stop() ran on the notifier
  }

  // Owners read this at the start of each batch to decide whether to collect changes.
  bool has_subscribers() const noexcept {
    // relaxed: a subscriber joining also posts an activation call to every owner, which
    // orders everything that matters (subscribe() in the backends).
    return subscribers_.load(std::memory_order_relaxed) != 0;
  }

  bool bounded() const noexcept { return capacity_ != 0; }
  bool on_notifier_thread() const noexcept {
    // relaxed: only the notifier itself can find its own id here; other threads see either
    // the default id or another thread's, never their own.
    return std::this_thread::get_id() == notifier_id_.load(std::memory_order_relaxed);
  }

  // Adds a subscriber that receives every batch handed over from now on; returns its id.
  std::uint64_t add(function fn) {
    auto f = std::make_shared<const function>(std::move(fn));
    std::unique_lock lock(mutex_);
    if (stopping_) throw closed_error();
    if (!notifier_.joinable()) {
      notifier_ = std::thread([self = this->shared_from_this()] { self->run(); });
      notifier_id_.store(notifier_.get_id(), std::memory_order_relaxed);  // relaxed: see above
    }
    const std::uint64_t id = next_id_++;
    subs_.push_back(subscriber{id, std::move(f), published_, nullptr});
    // relaxed: see has_subscribers().
    subscribers_.fetch_add(1, std::memory_order_relaxed);
    return id;
  }

  // Owner side: runs flip() and hands `c` over as the next batch, both under the mutex.
  // Strong guarantee: everything that allocates happens before flip(), so a bad_alloc
  // leaves `c` intact and nothing flipped.
  template <class Flip>
  void publish(changes&& c, Flip&& flip) {
    std::list<queued> node;
    node.push_back(queued{std::make_shared<batch_type>(0, changes()),
                          std::chrono::steady_clock::time_point()});
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] { return capacity_ == 0 || queue_.size() < capacity_ || stopping_; });
    flip();
    batch_type& b = *node.front().batch;
    b.sequence_ = ++published_;
    b.changes_ = std::move(c);
    node.front().at = std::chrono::steady_clock::now();
    queue_.splice(queue_.end(), node);
    work_.notify_one();
  }

  void unsubscribe(std::uint64_t id) noexcept override {
    std::unique_lock lock(mutex_);
    for (auto it = subs_.begin(); it != subs_.end(); ++it) {
      if (it->id != id) continue;
      subs_.erase(it);
      // relaxed: see has_subscribers().
      subscribers_.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
    // Once this returns, fn is not running: wait for a delivery in progress to it, unless
    // this is that delivery unsubscribing itself.
    if (!on_notifier_thread()) done_.wait(lock, [&] { return running_id_ != id; });
  }

  void sync(std::uint64_t id) override {
    if (on_notifier_thread()) {
      throw reentrancy_error(
          "subscription::sync from inside a subscriber (it would wait for itself)");
    }
    std::unique_lock lock(mutex_);
    const std::uint64_t target = published_;
    done_.wait(lock, [&] { return delivered_ >= target; });
    for (subscriber& s : subs_) {
      if (s.id == id && s.error) std::rethrow_exception(std::exchange(s.error, nullptr));
    }
  }

  // Cache destruction, after the owners have drained: delivers what was handed over, then
  // ends the notifier. From the notifier itself (a subscriber destroying the cache) the
  // thread is left to finish on its own; it keeps the feed alive.
  void stop() noexcept {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    work_.notify_one();
    room_.notify_all();
    lock.unlock();
    if (!notifier_.joinable() || on_notifier_thread()) return;
    notifier_.join();
  }

  struct counters {
    std::uint64_t queued = 0;       // batches handed over, not yet delivered
    std::uint64_t delivered = 0;    // batches delivered
    std::uint64_t errors = 0;       // exceptions subscribers threw
    std::uint64_t last_lag_ns = 0;  // hand-over to the start of delivery, last batch
    std::uint64_t max_lag_ns = 0;
  };
  counters stats() const {
    std::lock_guard lock(mutex_);
    counters c;
    c.queued = queue_.size();
    c.delivered = delivered_;
    c.errors = errors_;
    c.last_lag_ns = last_lag_ns_;
    c.max_lag_ns = max_lag_ns_;
    return c;
  }

 private:
  struct subscriber {
    std::uint64_t id;
    std::shared_ptr<const function> fn;
    std::uint64_t from;
    std::exception_ptr error;
  };
  struct queued {
    std::shared_ptr<batch_type> batch;
    std::chrono::steady_clock::time_point at;
  };

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything delivered
      queued q = std::move(queue_.front());
      queue_.pop_front();
      room_.notify_all();
      const auto lag = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - q.at)
                           .count();
      last_lag_ns_ = static_cast<std::uint64_t>(lag);
      if (last_lag_ns_ > max_lag_ns_) max_lag_ns_ = last_lag_ns_;
      const std::uint64_t seq = q.batch->sequence();
      // Deliver to each subscriber in turn, without the lock; the list may change meanwhile.
      for (std::size_t i = 0; i < subs_.size(); ++i) {
        if (subs_[i].from >= seq) continue;
        const std::uint64_t id = subs_[i].id;
        std::shared_ptr<const function> fn = subs_[i].fn;
        running_id_ = id;
        lock.unlock();
        std::exception_ptr error;
        try {
          (*fn)(*q.batch);
        } catch (...) {
          error = std::current_exception();
        }
        lock.lock();
        running_id_ = 0;
        done_.notify_all();
        if (error) {
          ++errors_;
          for (subscriber& s : subs_) {
            if (s.id == id && !s.error) s.error = error;
          }
        }
        // The list may have changed: continue after this subscriber's current position.
        i = 0;
        while (i < subs_.size() && subs_[i].id <= id) ++i;
        --i;
      }
      delivered_ = seq;
      done_.notify_all();
    }
  }

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable work_, done_, room_;
  std::list<queued> queue_;                                      // guarded by mutex_
  std::vector<subscriber> subs_;                                 // guarded by mutex_; ids ascending
  std::uint64_t published_ = 0;                                  // guarded by mutex_
  std::uint64_t delivered_ = 0;                                  // guarded by mutex_
  std::uint64_t next_id_ = 1;                                    // guarded by mutex_
  std::uint64_t running_id_ = 0;                                 // guarded by mutex_
  std::uint64_t errors_ = 0, last_lag_ns_ = 0, max_lag_ns_ = 0;  // guarded by mutex_
  bool stopping_ = false;                                        // guarded by mutex_
  std::atomic<std::size_t> subscribers_{0};
  std::thread notifier_;
  std::atomic<std::thread::id> notifier_id_{};
};

}  // namespace warden::detail
