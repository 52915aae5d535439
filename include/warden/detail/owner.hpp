// What the table's owners and the actor share: calls (a request in the caller's frame with a
// reply delivered through the caller's immortal thread record), and the owner thread that
// drains a mailbox batch by batch.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "warden/detail/mailbox.hpp"
#include "warden/detail/sync.hpp"
#include "warden/detail/thread_registry.hpp"

namespace warden::detail {

// A call in flight. It lives in the caller's stack frame; the caller does not return until
// every part has completed, and after completing its part an owner touches only the caller's
// thread record, never the call, so the frame may vanish at once.
template <class Ctx>
struct call {
  using run_fn = void (*)(call&, Ctx&);
  run_fn run = nullptr;      // null: a pure barrier (flush)
  std::exception_ptr error;  // set by an owner; rethrown in the caller
  std::atomic<int> parts{1};  // owners that must complete before the caller is released
  thread_record* caller = nullptr;
  std::uint32_t ticket = 0;  // caller's reply word when the call was made
};

// Caller side: must precede posting. The thread has no other call in flight, so the reply
// word changes only when this one completes.
template <class Ctx>
void begin_call(call<Ctx>& c, thread_record& rec, int parts) {
  c.caller = &rec;
  // relaxed: the thread's own previous call's bump was already seen with acquire.
  c.ticket = rec.reply.load(std::memory_order_relaxed);
  // relaxed: published to the owners by the mailbox mutex.
  c.parts.store(parts, std::memory_order_relaxed);
}

// Owner side: completes one part; the last part wakes the caller.
template <class Ctx>
void complete(call<Ctx>& c) noexcept {
  thread_record* const caller = c.caller;
  // acq_rel: each part releases what it wrote; the last one acquires the others' writes
  // before publishing everything with the reply bump below.
  if (c.parts.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // release: pairs with the caller's acquire in await(), publishing the result and error.
  caller->reply.fetch_add(1, std::memory_order_release);
  caller->reply.notify_one();  // the record is immortal: safe even if the caller has returned
}

// Caller side: waits for all parts, then rethrows the owner-side error, if any.
template <class Ctx>
void await(call<Ctx>& c) {
  wait_for_change(c.caller->reply, c.ticket);
  if (c.error) std::rethrow_exception(c.error);
}

// Caller side, when posting part `posted` of `total` failed (the mailbox closed): gives up
// the parts never posted, waits for the posted ones (they reference this frame), rethrows.
template <class Ctx>
[[noreturn]] void abandon_after_partial_post(call<Ctx>& c, int posted, int total) {
  const int unposted = total - posted;
  // acq_rel: as in complete(); if this drops the count to zero nobody else touches `c`.
  if (c.parts.fetch_sub(unposted, std::memory_order_acq_rel) != unposted) {
    wait_for_change(c.caller->reply, c.ticket);
  }
  throw;
}

// Errors of casts that failed on the owner, kept for the sending thread's next flush().
// Keyed by (record, generation) so an error never reaches a later thread reusing the record.
class cast_error_log {
 public:
  void record(const thread_record* sender, std::uint64_t generation,
              std::exception_ptr e) noexcept {
    try {
      std::lock_guard lock(mutex_);
      errors_.try_emplace(std::pair{sender, generation}, std::move(e));  // keeps the first
      // release: pairs with the acquire in take(); the map itself is under the mutex.
      nonempty_.store(true, std::memory_order_release);
    } catch (...) {
      // Out of memory while recording: the error is lost; the cast was still not applied.
    }
  }

  // The first error recorded for `rec`'s thread since it last took one, or null.
  std::exception_ptr take(const thread_record& rec) {
    // acquire: pairs with record()'s release; a cheap early-out when there are none.
    if (!nonempty_.load(std::memory_order_acquire)) return nullptr;
    std::lock_guard lock(mutex_);
    auto it = errors_.find(std::pair{&rec, rec.generation});
    if (it == errors_.end()) return nullptr;
    std::exception_ptr e = std::move(it->second);
    errors_.erase(it);
    // relaxed: under the mutex, which orders it with record().
    if (errors_.empty()) nonempty_.store(false, std::memory_order_relaxed);
    return e;
  }

 private:
  std::mutex mutex_;
  absl::flat_hash_map<std::pair<const thread_record*, std::uint64_t>, std::exception_ptr>
      errors_;  // guarded by mutex_
  std::atomic<bool> nonempty_{false};
};

// One owner thread draining one mailbox. The batch function must not throw: it catches user
// exceptions and carries them to callers, so the owner never dies from user code.
template <class Msg>
class owner_thread {
 public:
  explicit owner_thread(std::size_t capacity) : mailbox_(capacity) {}
  owner_thread(const owner_thread&) = delete;
  owner_thread& operator=(const owner_thread&) = delete;
  ~owner_thread() { stop(); }

  // `batch(std::vector<Msg>&)` is called with every drained batch until stop().
  template <class Batch>
  void start(std::uint32_t cache_id, Batch batch) {
    thread_ = std::thread([this, cache_id, batch = std::move(batch)]() mutable {
      // Marks this thread as an owner of `cache_id`, so calls it makes back into the same
      // cache are refused instead of deadlocking.
      current_record().owner_of = cache_id;
      std::vector<Msg> work;
      while (mailbox_.wait_and_drain(work)) {
        batch(work);
        work.clear();
      }
    });
  }

  // Drains: every message accepted before this is processed before the thread exits.
  void stop() {
    mailbox_.close();
    if (thread_.joinable()) thread_.join();
  }

  mailbox<Msg>& box() { return mailbox_; }
  const mailbox<Msg>& box() const { return mailbox_; }

 private:
  mailbox<Msg> mailbox_;
  std::thread thread_;
};

}  // namespace warden::detail
