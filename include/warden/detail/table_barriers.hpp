// The table's barrier calls: an operation that runs while every owner is stopped (transact,
// erase_if, restore, clear), then publishes what it wrote across owners as one batch.
//
// Invariants
//  - Every part of a barrier meets the others in a `meeting`: each owner first
//    publishes its pending batch and readies its idle copies, then arrives; the last to
//    arrive coordinates (runs the body over every owner's state, publishes every touched
//    owner with one flip) and only then releases the others. With one owner the meeting is
//    that owner alone.
//  - Barriers across owners are numbered and posted under `cross_post_mutex`, and owners run
//    them in number order (table_engine::run_call), so two barriers never wait on each other.
//  - A barrier of one part with no deadline is a plain call, and may run on the calling
//    thread when its owner is parked (post_parts decides).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "warden/detail/call.hpp"
#include "warden/detail/hashing.hpp"  // must_succeed
#include "warden/detail/sync.hpp"
#include "warden/detail/thread_state.hpp"

namespace warden::detail {

template <class Engine>
struct table_barriers {
  using engine = Engine;
  using owner = typename engine::owner;
  using call_t = typename engine::call_t;

  // Where a barrier's parts meet.
  struct meeting {
    std::atomic<std::uint32_t> arrived{0};
    std::atomic<std::uint32_t> released{0};
    std::uint32_t owner_count = 1;

    // Owner `o`'s part arrives. Returns true on the coordinator, which runs the body and then
    // calls release(); the others return false once the coordinator has released them.
    bool arrive(owner& o) noexcept {
      engine& en = *o.engine;
      if (owner_count > 1) en.publish_and_reply(o);
      en.ensure_idle_ready(o);
      if (owner_count == 1) return true;
      // acq_rel: releases this owner's state to the coordinator; the last arrival acquires
      // every other owner's (all RMWs on one atomic form a release sequence).
      if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == owner_count) return true;
      wait_for_change(released, 0);  // acquire: the coordinator's writes
      return false;
    }

    void release(owner& coordinator) noexcept {
      if (owner_count == 1) return;
      publish_all(*coordinator.engine);
      // release: the other owners read their updated state after waking.
      released.store(1, std::memory_order_release);
      released.notify_all();
    }
  };

  // Runs body(coordinator) -> R with every owner stopped at a barrier (one owner: on it),
  // then publishes what it wrote, across owners, as one batch. With a deadline: cancelled
  // with timeout_error if no owner has started it by then.
  template <class R, class Body>
  static R run(engine& e, Body& body, std::optional<std::chrono::steady_clock::time_point> deadline,
               const char* what) {
    static_assert(!std::is_reference_v<R>, "a barrier operation returns by value");
    e.check_may_call(what);
    cache_slot& slot = e.my_slot();
    thread_record& rec = current_record();
    linger_count::scope stay(e.lingering, true);  // see table_engine's `lingering`
    struct barrier_call : call_t, meeting {
      Body* body;
      call_result<R> result{};
    };
    const int parts = static_cast<int>(e.owner_count);
    barrier_call local;
    barrier_call* call = deadline ? new_timed_call<barrier_call>(parts) : &local;
    std::optional<claim_ref> timed;
    if (deadline) timed.emplace(call->claim);
    barrier_call& c = *call;
    c.body = &body;
    c.owner_count = e.owner_count;
    c.run = [](call_t& base, owner& o) {
      auto& self = static_cast<barrier_call&>(base);
      if (!self.arrive(o)) return;
      run_into<R>(self.result, self.error, [&]() -> decltype(auto) { return (*self.body)(o); });
      self.release(o);
    };
    begin_call<owner>(c, rec, parts);
    if (parts == 1) {
      e.post_parts(slot, c, 1);
    } else {
      std::lock_guard lock(e.cross_post_mutex);
      c.barrier_order = ++e.barrier_orders;
      e.post_parts(slot, c, parts);
    }
    if (deadline) {
      await_until(c, *deadline);
    } else {
      await(c);
    }
    if (parts > 1) e.forget_dirty_owners(rec);
    if constexpr (!std::is_void_v<R>) return std::move(*c.result);
  }

  // As run, but nobody waits: posted after this thread's earlier casts, applied later
  // (clear()). Errors inside are lost (the body must not throw).
  template <class Body>
  static void post(engine& e, Body body) {
    e.check_may_call("clear");
    cache_slot& slot = e.my_slot();
    struct barrier_call : call_t, meeting {
      Body body;
    };
    const int parts = static_cast<int>(e.owner_count);
    barrier_call* c = new_detached_call<barrier_call>(parts);
    c->body = std::move(body);
    c->owner_count = e.owner_count;
    c->run = [](call_t& base, owner& o) {
      auto& self = static_cast<barrier_call&>(base);
      if (!self.arrive(o)) return;
      self.body(o);
      self.release(o);
    };
    std::lock_guard lock(e.cross_post_mutex);
    if (parts > 1) c->barrier_order = ++e.barrier_orders;
    int posted = 0;
    try {
      for (; posted < parts; ++posted) {
        const auto o = static_cast<std::uint32_t>(posted);
        e.owners[o]->thread.box().push_call(e.queue(slot, o),
                                            typename engine::message{c, nullptr, 0});
      }
    } catch (...) {
      // Only the first post can fail (mailboxes close in order, owner 0 first), so no part
      // is left waiting at the barrier; the unposted parts' references go.
      for (int i = posted; i < parts; ++i) c->claim->release();
      throw;
    }
  }

  // The coordinator, at a barrier: publishes every owner's writes as one batch.
  static void publish_all(engine& e) noexcept {
    std::uint64_t mask = 0;
    std::vector<owner*> all;
    must_succeed([&] { all.reserve(e.owners.size()); }, "listing owners");
    for (auto& o : e.owners) {
      all.push_back(o.get());
      if (o->dirty) mask |= std::uint64_t{1} << o->index;
    }
    e.publish(mask, all.data(), all.size());
  }
};

}  // namespace warden::detail
