// Calls: a request that an owner runs and answers. The request lives in the caller's frame
// (or, with a deadline or when nobody waits, on the heap) and the reply is delivered through
// the caller's immortal thread record, so an owner never touches a frame that may be gone.
//
// Invariants
//  - A thread has at most one call in flight, so its reply word changes only when that call
//    completes; `ticket` is the word's value before the call.
//  - After completing its part, an owner touches only the caller's record, never the call
//    (unless it holds a claim reference).
//  - A call's parts (one per owner for calls that stop every owner) complete in any order;
//    the last one wakes the caller.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "warden/detail/sync.hpp"
#include "warden/detail/thread_state.hpp"
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
  // Calls that stop every owner at a barrier run in this order on every owner (1, 2, ...),
  // whatever order the owners find them in their producers' queues; 0: not such a call.
  std::uint64_t barrier_order = 0;
};

// Where a call keeps what its function returned: nothing for void (a placeholder), else the
// value.
template <class R>
using call_result = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;

// Runs f() on an owner, keeping what it returned in `result` or what it threw in `error`: an
// exception from user code reaches the caller, never the owner.
template <class R, class F>
void run_into(call_result<R>& result, std::exception_ptr& error, F&& f) noexcept {
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<F>(f)();
    } else {
      result.emplace(std::forward<F>(f)());
    }
  } catch (...) {
    error = std::current_exception();
  }
}

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

// Allocates a call nobody waits for (an asynchronous barrier, e.g. clear() across owners):
// the last of its `parts` to complete deletes it.
template <class Call>
Call* new_detached_call(int parts) {
  Call* c = new_timed_call<Call>(parts);
  c->claim->release();  // no caller reference
  // relaxed: published to the owners by the mailbox.
  c->parts.store(parts, std::memory_order_relaxed);
  return c;
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
  if (c.parts.fetch_sub(1, std::memory_order_acq_rel) == 1 && caller != nullptr) {
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

}  // namespace warden::detail
