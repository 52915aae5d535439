// The table's writes that are more than one message to one owner: casts (the message and
// its sender's bookkeeping), and the writes that stop every owner at a barrier and apply
// all or nothing across them: transactions, restore, erase_if, clear (which stops no one:
// it is a barrier of casts). Plus subscribing, which must reach every owner.
//
// Invariants
//  - transaction_commit reserves everything its writes and their undo could allocate
//    before the first write (map_growth.hpp), so an exception (a user's Eq or copy, or
//    std::bad_alloc) leaves every owner's state as it was: nothing of a failed transaction
//    is ever published.
//  - A barrier's body runs while every owner is stopped (or there is one owner), so it may
//    touch every owner's state.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "warden/change_feed.hpp"
#include "warden/detail/cache_calls.hpp"
#include "warden/detail/dump_format.hpp"
#include "warden/detail/table_barriers.hpp"
#include "warden/detail/thread_state.hpp"
#include "warden/error.hpp"

namespace warden::detail {

template <class Engine>
struct table_writes {
  using engine = Engine;
  using owner = typename engine::owner;
  using store = typename engine::store;
  using entry = typename engine::entry;
  using tx_type = typename engine::tx_type;
  using K = typename engine::key_type;
  using V = typename engine::mapped_type;
  using barriers = table_barriers<Engine>;

  template <class Op>
  static bool cast(engine& e, std::size_t h, Op&& op, bool try_only) {
    if (e.is_owner_thread()) {
      throw reentrancy_error("a cast to a table from inside its own owner-side callback");
    }
    cache_slot& slot = e.my_slot();
    thread_record& rec = current_record();
    const std::uint32_t target = e.owner_of(h);
    typename engine::message m{std::forward<Op>(op), &slot, rec.generation};
    auto& box = e.owners[target]->thread.box();
    auto& q = e.queue(slot, target);
    if (try_only) {
      if (!box.try_push_cast(q, std::move(m))) return false;
    } else if (e.change_feed->on_notifier_thread()) {
      box.push_call(q, std::move(m));  // a subscriber's cast never waits for room
    } else {
      box.push_cast(q, std::move(m), [&] {
        e.check_not_on_pool("a cast waiting for room in a full mailbox");
        if (slot.held_by_caller()) {
          throw reentrancy_error(
              "a cast waiting for room in a full mailbox inside a snapshot or pin of the same "
              "table");
        }
      });
    }
    e.note_cast(rec, target);
    return true;
  }

  static void flush_needed_for_all(engine& e) {
    thread_record& rec = current_record();
    for (std::uint32_t i = 0; i < e.owner_count; ++i) e.note_cast(rec, i);
  }

  static void clear(engine& e) {
    barriers::post(e, [](owner& o) {
      engine& en = *o.engine;
      for (auto& each : en.owners) {
        store st{en, *each};
        each->state.clear(st);
      }
    });
    flush_needed_for_all(e);
  }

  template <class Pred>
  static std::size_t erase_if(engine& e, Pred& pred) {
    auto body = [&](owner&) -> std::size_t {
      std::vector<std::vector<std::pair<K, std::size_t>>> keys;
      keys.reserve(e.owners.size());
      for (auto& each : e.owners) {
        store st{e, *each};
        keys.push_back(each->state.select(st, pred, each->state.now()));
      }
      std::size_t n = 0;
      for (std::size_t i = 0; i < e.owners.size(); ++i) {
        store st{e, *e.owners[i]};
        for (auto& [k, h] : keys[i]) n += e.owners[i]->state.erase(st, h, std::move(k)) ? 1 : 0;
      }
      return n;
    };
    return barriers::template run<std::size_t>(e, body, std::nullopt, "erase_if");
  }

  template <class F>
  static std::invoke_result_t<F&, tx_type&> transact(
      engine& e, F& fn, std::optional<std::chrono::steady_clock::time_point> deadline) {
    using R = std::invoke_result_t<F&, tx_type&>;
    auto body = [&](owner&) -> R {
      tx_type tx(&find_current_thunk, &e, e.hasher, e.equal);
      return run_and_commit(fn, tx, [&] {
        transaction_commit(e, [&](auto&& add) { add_staged_writes<K, V>(tx, e.hasher, add); });
      });
    };
    return barriers::template run<R>(e, body, deadline, "transact");
  }

  template <class Entries>
  static void restore(engine& e, Entries entries) {
    auto body = [&](owner&) {
      transaction_commit(e, [&](auto&& add) { add_dumped_writes<K, V>(entries, e.hasher, add); });
    };
    barriers::template run<void>(e, body, std::nullopt, "restore");
  }

  template <class F>
  static subscription subscribe(engine& e, F fn) {
    e.check_may_call("subscribe");
    const std::uint64_t id = e.change_feed->add(std::move(fn));
    subscription sub(e.change_feed, id);
    // Every owner ends its batch in progress, then collects changes from here on.
    auto activate = [](owner& o) {
      o.engine->publish_and_reply(o);
      o.state.set_collecting(true);
    };
    for (std::uint32_t i = 0; i < e.owner_count; ++i) {
      e.template call_on<void>(i, activate, "subscribe");
    }
    return sub;
  }

  // Applies the writes that `produce(add)` adds, all or nothing, on the owners of their
  // keys (all owners are stopped at a barrier, or there is one), then evicts what exceeds.
  // add(hash, K&&, optional<V>&& (nullopt: erase), ttl).
  template <class Produce>
  static void transaction_commit(engine& e, Produce&& produce) {
    using prepared = typename engine::state_type::prepared;
    std::vector<std::pair<owner*, prepared>> writes;
    try {
      produce([&](std::size_t h, K&& key, std::optional<V>&& value, std::int64_t ttl) {
        owner& o = *e.owners[e.owner_of(h)];
        store st{e, o};
        const std::int64_t t = o.state.now();
        std::optional<prepared> p;
        if (value) {
          p.emplace(o.state.prepare_put(st, h, std::move(key), std::move(*value), ttl, t));
        } else {
          p = o.state.prepare_erase(st, h, std::move(key));
        }
        if (!p) return;
        try {
          writes.emplace_back(&o, std::move(*p));  // strong: prepared moves without throwing
        } catch (...) {
          o.state.abort(*p);
          throw;
        }
      });
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) it->first->state.abort(it->second);
      throw;
    }
    // Everything applying (or undoing) the writes could allocate, reserved before the first.
    std::vector<std::size_t> marks;
    try {
      marks.resize(e.owners.size());
      std::vector<std::size_t> per_owner(e.owners.size());
      std::vector<std::size_t> puts_per_shard(e.shard_mask + 1);
      for (auto& [o, p] : writes) {
        ++per_owner[o->index];
        if (p.value) ++puts_per_shard[e.shard_of(p.hash)];
      }
      for (auto& o : e.owners) {
        if (per_owner[o->index] != 0)
          e.reserve_all_or_nothing(*o, per_owner[o->index], puts_per_shard);
      }
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) it->first->state.abort(it->second);
      throw;
    }
    for (std::size_t i = 0; i < e.owners.size(); ++i) marks[i] = e.begin_undo(*e.owners[i]);
    try {
      for (auto& [o, p] : writes) {
        store st{e, *o};
        o->state.apply(st, p);
      }
    } catch (...) {
      for (std::size_t i = 0; i < e.owners.size(); ++i) e.rollback(*e.owners[i], marks[i]);
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) it->first->state.abort(it->second);
      throw;
    }
    for (auto& o : e.owners) e.end_undo(*o);
    for (auto& [o, p] : writes) o->state.finish(p);
    for (auto& o : e.owners) {
      store st{e, *o};
      o->state.evict_excess(st);
    }
  }

  // The committed, live value of `key` for a transaction (its owner's idle copy).
  static const V* find_current_thunk(const void* ctx, const K& key, std::size_t h) {
    engine& e = *const_cast<engine*>(static_cast<const engine*>(ctx));
    owner& o = *e.owners[e.owner_of(h)];
    store st{e, o};
    const entry* p = o.state.find_live(st, key, h, o.state.now());
    return p ? &p->value : nullptr;
  }
};

}  // namespace warden::detail
