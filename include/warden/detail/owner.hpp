// What the table's owners and the actor share: calls (a request in the caller's frame with a
// reply delivered through the caller's immortal thread record), and the owner thread that
// drains a mailbox batch by batch.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "warden/detail/mailbox.hpp"
#include "warden/detail/sync.hpp"
#include "warden/detail/thread_registry.hpp"
#include "warden/error.hpp"

namespace warden::detail {

// The shared state of a call with a deadline. Such a call lives on the heap, owned by the
// references in `refs` (the caller's and one per part), so a caller whose deadline passed
// can leave while its message is still queued. Exactly one of "an owner starts it" and "the
// caller cancels it" wins the state word; with several parts, once one part has started,
// the others run too (a barrier must not be left half attended).
struct call_claim {
  static constexpr int kPending = 0, kStarted = 1, kCancelled = 2;
  std::atomic<int> state{kPending};
  std::atomic<int> refs{1};
  void (*destroy)(void*) = nullptr;
  void* object = nullptr;

  // Owner side, before running a part.
  bool try_start() noexcept {
    int seen = kPending;
    // acq_rel: orders the owner's run after the caller's setup (also published by the
    // mailbox mutex) and makes a cancel by the caller visible; see try_cancel.
    return state.compare_exchange_strong(seen, kStarted, std::memory_order_acq_rel) ||
           seen == kStarted;
  }
  // Caller side, at the deadline.
  bool try_cancel() noexcept {
    int seen = kPending;
    // acq_rel: the winner of this word decides alone whether the call runs.
    return state.compare_exchange_strong(seen, kCancelled, std::memory_order_acq_rel);
  }
  void release() noexcept {
    // acq_rel: the last holder deletes the call after every other holder's last use of it.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(object);
  }
};

// A call in flight. It lives in the caller's stack frame (or, with a deadline, on the heap); the
// caller does not return until every part has completed, and after completing its part an owner
// touches only the caller's thread record, never the call, so the frame may vanish at once.
template <class Ctx>
struct call {
  using run_fn = void (*)(call&, Ctx&);
  run_fn run = nullptr;       // null: a pure barrier (flush)
  std::exception_ptr error;   // set by an owner; rethrown in the caller
  std::atomic<int> parts{1};  // owners that must complete before the caller is released
  thread_record* caller = nullptr;
  std::uint32_t ticket = 0;     // caller's reply word when the call was made
  call_claim* claim = nullptr;  // set for calls with a deadline
};

// Allocates a call with a deadline; its claim holds a reference for the caller (release it
// with claim_ref) and one for each of `parts` owner parts.
template <class Call>
Call* new_timed_call(int parts) {
  struct holder : Call {
    call_claim claim_storage;
  };
  auto* h = new holder;
  // relaxed: published to the owners by the mailbox mutex.
  h->claim_storage.refs.store(1 + parts, std::memory_order_relaxed);
  h->claim_storage.destroy = [](void* p) { delete static_cast<holder*>(p); };
  h->claim_storage.object = h;
  h->claim = &h->claim_storage;
  return h;
}

// The caller's reference to a timed call.
class claim_ref {
 public:
  explicit claim_ref(call_claim* c) : claim_(c) {}
  claim_ref(const claim_ref&) = delete;
  claim_ref& operator=(const claim_ref&) = delete;
  ~claim_ref() { claim_->release(); }

 private:
  call_claim* claim_;
};

// Owner side: whether to run `c`. A call its caller cancelled is dropped untouched (but for
// this part's reference).
template <class Ctx>
bool start_call(call<Ctx>& c) noexcept {
  if (c.claim == nullptr || c.claim->try_start()) return true;
  c.claim->release();
  return false;
}

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
  call_claim* const claim = c.claim;
  // acq_rel: each part releases what it wrote; the last one acquires the others' writes
  // before publishing everything with the reply bump below.
  if (c.parts.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // release: pairs with the caller's acquire in await(), publishing the result and error.
    caller->reply.fetch_add(1, std::memory_order_release);
    caller->reply.notify_one();  // the record is immortal: safe even if the caller returned
  }
  if (claim != nullptr) claim->release();  // may delete `c`
}

// Caller side: waits for all parts, then rethrows the owner-side error, if any.
template <class Ctx>
void await(call<Ctx>& c) {
  wait_for_change(c.caller->reply, c.ticket);
  if (c.error) std::rethrow_exception(c.error);
}

// Caller side, for a call with a deadline: waits for it, but if no owner has started it when
// the deadline passes, cancels it and throws timeout_error. A call already started is waited
// for to the end (its effects cannot be taken back). Rethrows the owner-side error, if any.
template <class Ctx>
void await_until(call<Ctx>& c, std::chrono::steady_clock::time_point deadline) {
  const auto& word = c.caller->reply;
  for (int i = 0;; ++i) {
    // acquire: pairs with complete()'s release bump.
    if (word.load(std::memory_order_acquire) != c.ticket) break;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      if (c.claim->try_cancel()) throw timeout_error();
      wait_for_change(word, c.ticket);
      break;
    }
    if (i < kSpinIterations) {
      cpu_relax();
    } else if (i < kSpinIterations + kYieldIterations) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::microseconds(50), deadline - now));
    }
  }
  if (c.error) std::rethrow_exception(c.error);
}

// Caller side, when posting part `posted` of `total` failed (the mailbox closed): gives up
// the parts never posted, waits for the posted ones (they reference this frame), rethrows.
template <class Ctx>
[[noreturn]] void abandon_after_partial_post(call<Ctx>& c, int posted, int total) {
  const int unposted = total - posted;
  if (c.claim != nullptr) {
    for (int i = 0; i < unposted; ++i) c.claim->release();  // the caller still holds one
  }
  // acq_rel: as in complete(); if this drops the count to zero nobody else touches `c`.
  if (c.parts.fetch_sub(unposted, std::memory_order_acq_rel) != unposted) {
    wait_for_change(c.caller->reply, c.ticket);
  }
  throw;
}

// A message to an owner: a cast (put or erase, carrying the hash its caller computed, so a
// throwing Hash threw there) or a call. `sender` and `generation` name the casting thread,
// for reporting a cast that fails on the owner.
template <class K, class V, class Call>
struct message {
  struct put_op {
    K key;
    V value;
    std::size_t hash;
  };
  struct erase_op {
    K key;
    std::size_t hash;
  };
  std::variant<put_op, erase_op, Call*> op;
  thread_record* sender = nullptr;
  std::uint64_t generation = 0;
};

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

// Counts callers that still use an engine after a reply (to collect their cast errors, or to
// post the next step of a call made of several). Destruction drains the mailboxes, which
// releases such a caller, and then waits here for it to leave before freeing the engine, so
// a call in flight when destruction begins completes safely.
class linger_count {
 public:
  class scope {
   public:
    scope(linger_count& c, bool active) noexcept : count_(active ? &c : nullptr) {
      // relaxed: the caller then posts to a mailbox (mutex) that the destructor's drain and
      // join order before its wait, so an in-flight caller is always counted there.
      if (count_ != nullptr) count_->n_.fetch_add(1, std::memory_order_relaxed);
    }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    ~scope() {
      // release: the caller's last use of the engine happens before the destructor's
      // acquire load sees the count drop.
      if (count_ != nullptr) count_->n_.fetch_sub(1, std::memory_order_release);
    }

   private:
    linger_count* count_;
  };

  // After every mailbox is drained. Callers left are past their reply and leave within a few
  // instructions; a yield loop avoids notifying a futex that may be freed at once.
  void wait_until_empty() const noexcept {
    // acquire: pairs with ~scope's release.
    while (n_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  std::atomic<std::uint32_t> n_{0};
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
