// The engine behind warden::actor: one owner thread, one map, one mailbox. Every operation is
// a message; the owner applies them in arrival order through its owner_state (versions,
// policy, expiry, change list), replies to each call as soon as it has run, and hands the
// changes made so far to the change feed before each reply (so a flush followed by sync()
// sees them delivered) and at the end of each batch.
//
// Invariants
//  - Only the owner thread touches `map` and `state` (callers reach them through calls).
//  - Reads served on the owner judge expiry by the clock at that moment, and count for the
//    policy directly (no access rings: the owner sees every read).
//  - A transaction's writes are applied with an undo log: all of them, or (when a map
//    operation throws) none, restored from the log.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "warden/change_feed.hpp"
#include "warden/detail/cache_calls.hpp"
#include "warden/detail/call.hpp"
#include "warden/detail/carried.hpp"
#include "warden/detail/entry.hpp"
#include "warden/detail/feed.hpp"
#include "warden/detail/hashing.hpp"
#include "warden/detail/owner_loop.hpp"
#include "warden/detail/owner_map.hpp"
#include "warden/detail/owner_state.hpp"
#include "warden/detail/read_section.hpp"
#include "warden/options.hpp"
#include "warden/transaction.hpp"

namespace warden::detail {

template <class K, class V, class Hash, class Eq>
class actor_engine {
 public:
  using entry = stored<V>;
  using map_type = owner_map<K, entry, Hash, Eq>;
  using state_type = owner_state<K, V, Hash, Eq>;
  using feed_type = feed<K, V>;
  using call_t = call<actor_engine>;

  struct put_op {
    carried<K> key;
    carried<V> value;
    std::size_t hash;
    std::int64_t ttl;
  };
  struct erase_op {
    carried<K> key;
    std::size_t hash;
  };
  struct message {
    std::variant<put_op, erase_op, call_t*> op;
    cache_slot* sender = nullptr;
    std::uint64_t generation = 0;
  };

  // The map as owner_state's Store, with an optional undo log for all-or-nothing writes.
  struct store {
    actor_engine& e;
    entry* find(const K& key, std::size_t h) {
      auto it = e.map.find(prehashed_key<K>{&key, h});
      return it == e.map.end() ? nullptr : &it->second;
    }
    void upsert(std::size_t h, K&& key, entry&& value) {
      if (e.undoing) {
        // Everything that may throw (Eq, the key's copy, the log's growth) comes before the
        // map changes, so a throw leaves nothing for the rollback to misread.
        auto it = e.map.find(prehashed_key<K>{&key, h});
        undo_entry u{K(key), h, std::nullopt};
        e.undo.push_back(std::move(u));
        if (it != e.map.end()) {
          e.undo.back().old.emplace(std::move(it->second));
          it->second = std::move(value);
          return;
        }
        try {
          detail::upsert(e.map, h, std::move(key), std::move(value));
        } catch (...) {
          e.undo.pop_back();
          throw;
        }
        return;
      }
      detail::upsert(e.map, h, std::move(key), std::move(value));
    }
    void erase(K&& key, std::size_t h) noexcept {
      must_succeed(
          [&] {
            auto it = e.map.find(prehashed_key<K>{&key, h});
            if (it == e.map.end()) return;
            if (e.undoing) {
              undo_entry u{K(key), h, std::nullopt};  // may throw: then nothing has changed
              e.undo.push_back(std::move(u));
              e.undo.back().old.emplace(std::move(it->second));
            }
            e.map.erase(it);
          },
          "erasing a key (Eq)");
      if (!e.undoing) shrink_if_sparse(e.map);
    }
    void set_deadline(const K& key, std::size_t h, std::int64_t d) noexcept {
      must_succeed(
          [&] {
            auto it = e.map.find(prehashed_key<K>{&key, h});
            if (it != e.map.end()) it->second.deadline = d;
          },
          "extending an entry's deadline");
    }
    template <class F>
    void for_each(F&& f) {
      for (const auto& [k, v] : e.map) f(k, v);
    }
    void clear() noexcept { e.map.clear(); }
  };

  struct undo_entry {
    K key;
    std::size_t hash;
    std::optional<entry> old;  // nullopt: the key was absent
  };

  actor_engine(const actor_options& opts, Hash hash, Eq eq)
      : slots(registry::instance().next_serial(), false),
        hasher(hash),
        equal(eq),
        map(0, inner_hash<K, Hash>{std::move(hash)}, inner_eq<K, Eq>{std::move(eq)}),
        state(make_config(opts), 0, opts.max_size, hasher, equal),
        record_stats(opts.record_stats),
        change_feed(std::make_shared<feed_type>(opts.feed_capacity)),
        thread(opts.mailbox_capacity, opts.pool) {
    thread.start(*this);
  }
  actor_engine(const actor_engine&) = delete;
  actor_engine& operator=(const actor_engine&) = delete;
  ~actor_engine() {
    thread.stop();
    lingering.wait_until_empty();
    change_feed->stop();
  }

  static cache_config make_config(const actor_options& opts) {
    cache_config c;
    c.max_size = opts.max_size;
    c.expire_after_write = opts.expire_after_write.count();
    c.expire_after_access = opts.expire_after_access.count();
    c.clock = opts.clock;
    c.record_stats = opts.record_stats;
    return c;
  }

  // ---- owner side ------------------------------------------------------------------------
  // The live entry of `key` now, counting the read for the policy.
  // Q: K, or a lookup key for it (hashing.hpp).
  template <class Q>
  const entry* read(const Q& key, std::size_t h) {
    const std::int64_t t = state.now();
    auto it = map.find(prehashed_key<Q>{&key, h});
    const entry* p = it != map.end() && it->second.live_at(t) ? &it->second : nullptr;
    store st{*this};
    state.on_owner_read(st, p != nullptr ? &it->first : nullptr, h, t);
    return p;
  }

  // Applies writes all or nothing: runs apply_all(), rolling the map back if it throws.
  template <class F>
  void all_or_nothing(F&& apply_all) {
    undoing = true;
    undo.clear();
    try {
      apply_all();
    } catch (...) {
      undoing = false;
      for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
        must_succeed(
            [&] {
              auto it = map.find(prehashed_key<K>{&u->key, u->hash});
              if (u->old) {
                if (it != map.end()) {
                  it->second = std::move(*u->old);
                } else {
                  detail::upsert(map, u->hash, std::move(u->key), std::move(*u->old));
                }
              } else if (it != map.end()) {
                map.erase(it);
              }
            },
            "rolling back a transaction (Eq)");
      }
      undo.clear();
      throw;
    }
    undoing = false;
    undo.clear();
  }

  // Applies the writes that `produce(add)` adds (at most `count`), all or nothing, then
  // evicts what exceeds. add(hash, K&&, optional<V>&& (nullopt: erase), ttl).
  template <class Produce>
  void commit_writes(std::size_t count, Produce&& produce) {
    using prepared = typename state_type::prepared;
    store st{*this};
    std::vector<prepared> writes;
    writes.reserve(count);  // push_back below cannot throw
    const std::int64_t t = state.now();
    try {
      produce([&](std::size_t h, K&& key, std::optional<V>&& value, std::int64_t ttl) {
        if (value) {
          writes.push_back(state.prepare_put(st, h, std::move(key), std::move(*value), ttl, t));
        } else if (auto p = state.prepare_erase(st, h, std::move(key))) {
          writes.push_back(std::move(*p));
        }
      });
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) state.abort(*it);
      throw;
    }
    try {
      all_or_nothing([&] {
        for (auto& p : writes) state.apply(st, p);
      });
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) state.abort(*it);
      throw;
    }
    for (auto& p : writes) state.finish(p);
    state.evict_excess(st);
  }

  // Runs fn(tx) on the actor's thread and commits its writes, all or nothing.
  template <class F>
  auto transact(F& fn, std::optional<std::chrono::steady_clock::time_point> deadline) {
    using tx_type = transaction<K, V, Hash, Eq>;
    return run_on_owner(
        [&fn](actor_engine& e) {
          tx_type tx(&find_live_thunk, &e, e.hasher, e.equal);
          return run_and_commit(fn, tx, [&] {
            e.commit_writes(tx.staged().size(),
                            [&](auto&& add) { add_staged_writes<K, V>(tx, e.hasher, add); });
          });
        },
        deadline);
  }

  static const V* find_live_thunk(const void* ctx, const K& key, std::size_t h) {
    auto& e = *const_cast<actor_engine*>(static_cast<const actor_engine*>(ctx));
    store st{e};
    const entry* p = e.state.find_live(st, key, h, e.state.now());
    return p ? &p->value : nullptr;
  }

  void publish_changes() noexcept {
    if (state.changes().empty()) return;
    must_succeed([&] { change_feed->publish(std::move(state.changes()), [] {}); },
                 "handing over a batch");
    state.changes().clear();
  }

  static void record_cast_error(const message& m, std::exception_ptr e) noexcept {
    if (m.sender != nullptr) m.sender->record_cast_error(m.generation, std::move(e));
  }

  // ---- the owner loop's hooks (owner_loop.hpp) ----------------------------------------------
  // A call is answered as soon as it has run (the changes made so far handed to the feed
  // first), not at the end of its batch: nothing else needs publishing.
  void apply(std::vector<message>& batch) noexcept {
    owner_counters::add(state.counters().batches, 1);
    state.set_collecting(change_feed->has_subscribers());
    store st{*this};
    const std::int64_t t = batch.empty() ? 0 : state.now();
    const std::size_t n = batch.size();
    for (std::size_t i = 0; i < n; ++i) {
      // Overlaps the cache misses of queued writes.
      if (i + kPrefetchDistance < n) {
        const message& ahead = batch[i + kPrefetchDistance];
        if (auto* p = std::get_if<put_op>(&ahead.op)) {
          prefetch_probe(map, p->key.get(), p->hash);
        } else if (auto* e = std::get_if<erase_op>(&ahead.op)) {
          prefetch_probe(map, e->key.get(), e->hash);
        }
      }
      message& m = batch[i];
      if (auto* p = std::get_if<put_op>(&m.op)) {
        try {
          state.put(st, p->hash, std::move(p->key.get()), std::move(p->value.get()), p->ttl, t);
        } catch (...) {
          record_cast_error(m, std::current_exception());
        }
      } else if (auto* e = std::get_if<erase_op>(&m.op)) {
        try {
          state.erase(st, e->hash, std::move(e->key.get()));
        } catch (...) {
          record_cast_error(m, std::current_exception());
        }
      } else {
        call_t* c = std::get<call_t*>(m.op);
        if (!start_call(*c)) continue;  // cancelled at its deadline
        // A call sees (and a flush returns after) the removal of everything expired by now.
        state.expire(st, state.now());
        if (c->run != nullptr) c->run(*c, *this);
        publish_changes();
        complete(*c);
        for (auto& l : load_wakes) l->publish();
        load_wakes.clear();
      }
    }
  }
  void after_applied() noexcept {
    store st{*this};
    state.expire(st, state.now());
  }
  void publish() noexcept { publish_changes(); }
  void after_published() noexcept {}

  std::chrono::steady_clock::time_point idle() noexcept {
    using clock_t = std::chrono::steady_clock;
    store st{*this};
    const std::int64_t t = state.now();
    state.expire(st, t);
    publish_changes();
    const std::int64_t next = state.next_expiry();
    if (next == kNever) return clock_t::time_point::max();
    if (state.config().clock != nullptr) return clock_t::now() + std::chrono::milliseconds(10);
    return clock_t::now() + std::chrono::nanoseconds(std::max<std::int64_t>(next - t, 0));
  }

  bool is_owner_thread() const noexcept { return thread.is_current(); }
  // A pooled actor's calls, and casts that wait for room, are refused on the pool's own
  // threads and in its owners' callbacks (owner_pool.hpp, P4; owner_thread::caller_holds_pool).
  void check_not_on_pool(const char* what) const {
    if (thread.caller_holds_pool()) {
      throw reentrancy_error(
          std::string(what) +
          " from a thread, or an owner-side callback, of the owner_pool the actor runs on");
    }
  }

  // ---- caller side -------------------------------------------------------------------------
  template <class Q>
  std::size_t hash(const Q& key) const {
    return lookup_hash<K, Hash, Eq>(hasher, key);
  }

  // For views, which run on the actor's thread.
  const map_type& entries() const noexcept { return map; }
  template <class Q>
  const entry* find(const Q& key, std::size_t h) const {
    auto it = map.find(prehashed_key<Q>{&key, h});
    return it == map.end() ? nullptr : &it->second;
  }
  std::int64_t now() const { return state.now(); }

  template <class Op>
  bool cast(Op&& op, bool try_only) {
    thread_record& rec = not_on_owner();
    cache_slot& slot = my_slot();
    message m{std::forward<Op>(op), &slot, rec.generation};
    auto& q = queue(slot);
    if (try_only) return thread.box().try_push_cast(q, std::move(m));
    if (change_feed->on_notifier_thread()) {
      thread.box().push_call(q, std::move(m));  // a subscriber's cast never waits for room
    } else {
      thread.box().push_cast(
          q, std::move(m), [&] { check_not_on_pool("a cast waiting for room in a full mailbox"); });
    }
    return true;
  }

  // A read on the actor's thread: on_hit(entry) for a live entry, else nullopt; counts the
  // caller's stats.
  template <class Q, class OnHit>
  std::optional<std::invoke_result_t<OnHit&, const entry&>> counted_read(const Q& key,
                                                                         std::size_t h,
                                                                         OnHit& on_hit) {
    using R = std::invoke_result_t<OnHit&, const entry&>;
    std::optional<R> out = run_on_owner([&](actor_engine& e) -> std::optional<R> {
      const entry* p = e.read(key, h);
      if (p == nullptr) return std::nullopt;
      return std::optional<R>(on_hit(*p));
    });
    if (record_stats) cache_slot::bump(out ? my_slot().hits : my_slot().misses);
    return out;
  }

  std::size_t size() {
    return run_on_owner([](actor_engine& e) { return e.map.size(); });
  }

  // Every live entry, encoded on the actor's thread (one instant; dump_format.hpp).
  std::string dump_bytes() {
    return run_on_owner([](actor_engine& e) {
      dump_writer<K, V> w;
      const std::int64_t t = e.state.now();
      for (const auto& [k, v] : e.map) {
        if (!v.live_at(t)) continue;
        w.add(k, v.value, v.deadline == kNever ? kDumpNoTtl : v.deadline - t);
      }
      return std::move(w).finish();
    });
  }

  // Asynchronous, ordered behind this thread's casts.
  void clear() {
    not_on_owner();
    struct clear_call : call_t {};
    auto* c = new_detached_call<clear_call>(1);
    c->run = [](call_t&, actor_engine& en) {
      store st{en};
      en.state.clear(st);
    };
    try {
      thread.box().push_call(queue(my_slot()), message{c, nullptr, 0});
    } catch (...) {
      c->claim->release();
      throw;
    }
  }

  void flush() {
    linger_count::scope stay(lingering, true);
    cache_slot& slot = my_slot();
    run_on_owner([](actor_engine&) {});
    if (auto err = slot.take_cast_error(current_record().generation)) {
      std::rethrow_exception(err);
    }
  }

  template <class Pred>
  std::size_t erase_if(Pred& pred) {
    return run_on_owner([&](actor_engine& e) {
      store st{e};
      auto keys = e.state.select(st, pred, e.state.now());
      std::size_t n = 0;
      for (auto& [k, h] : keys) n += e.state.erase(st, h, std::move(k)) ? 1 : 0;
      return n;
    });
  }

  template <class Entries>
  void restore(Entries entries) {
    run_on_owner([&](actor_engine& e) {
      e.commit_writes(entries.size(),
                      [&](auto&& add) { add_dumped_writes<K, V>(entries, e.hasher, add); });
    });
  }

  template <class F>
  subscription subscribe(F fn) {
    not_on_owner();
    const std::uint64_t id = change_feed->add(std::move(fn));
    subscription sub(change_feed, id);
    run_on_owner([](actor_engine& e) {
      e.publish_changes();
      e.state.set_collecting(true);
    });
    return sub;
  }

  cache_slot& my_slot() const {
    return slots.mine([] {});
  }

  thread_record& not_on_owner() const {
    if (is_owner_thread()) throw reentrancy_error("an actor operation from its own thread");
    return current_record();
  }

  // Runs fn(actor_engine&) on the actor's thread and returns its result (or rethrows); with a
  // deadline, cancels it (timeout_error) if the actor has not started it by then.
  template <class Fn>
  std::invoke_result_t<Fn&, actor_engine&> run_on_owner(
      Fn&& fn, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) {
    using R = std::invoke_result_t<Fn&, actor_engine&>;
    thread_record& rec = not_on_owner();
    check_not_on_pool("a call");
    if (change_feed->bounded() && change_feed->on_notifier_thread()) {
      throw reentrancy_error("a call from a subscriber of an actor with a bounded change feed");
    }
    // After the push this thread may still touch the actor when its reply is already on the
    // way (running the parked owner's cycle, or waking it): counted, so that a destruction
    // that begins meanwhile waits for it (calls in flight complete).
    linger_count::scope stay(lingering, true);
    struct fn_call : call_t {
      std::remove_reference_t<Fn>* fn;
      call_result<R> result{};
    };
    fn_call local;
    fn_call* timed_call = deadline ? new_timed_call<fn_call>(1) : &local;
    std::optional<claim_ref> timed;
    if (deadline) timed.emplace(timed_call->claim);
    fn_call& c = *timed_call;
    c.fn = &fn;
    c.run = [](call_t& base, actor_engine& en) {
      auto& self = static_cast<fn_call&>(base);
      run_into<R>(self.result, self.error,
                  [&]() -> decltype(auto) { return std::invoke(*self.fn, en); });
    };
    begin_call<actor_engine>(c, rec, 1);
    bool parked = false;
    try {
      if (deadline) {
        thread.box().push_call(queue(my_slot()), message{&c, nullptr, 0});
      } else {
        parked = thread.box().push_call_unwoken(queue(my_slot()), message{&c, nullptr, 0});
      }
    } catch (...) {
      abandon_after_partial_post(c, 0, 1);
    }
    // The checks above make this thread fit to run the parked actor's cycle (combining). A
    // call with a deadline is not run here: other messages ahead of it could outlast it.
    if (parked) thread.serve_parked();
    if (deadline) {
      await_until(c, *deadline);
    } else {
      await(c);
    }
    if constexpr (!std::is_void_v<R>) return std::move(*c.result);
  }

  // Runs body(state, store, load_wakes) -> R on the actor's thread (cache_calls.hpp).
  template <class R, class Body>
  R call_keyed(std::size_t, Body&& body, const char*) {
    return run_on_owner([&](actor_engine& e) -> R {
      store st{e};
      return body(e.state, st, e.load_wakes);
    });
  }

  bool stats_recorded() const noexcept { return record_stats; }

  cache_stats stats() const {
    cache_stats st;
    add_caller_stats(slots, st);
    add_owner_stats(state.counters(), st);
    st.mailbox_depth = thread.box().depth();
    drop_unrecorded_stats(record_stats, st);
    add_feed_stats(*change_feed, st);
    return st;
  }

  using queue_type = typename mailbox<message>::producer;
  // The calling thread's queue in the actor's mailbox (made on its first message).
  queue_type& queue(cache_slot& s) {
    if (WARDEN_UNLIKELY(s.producers == nullptr)) s.producers = new void*[1]();
    if (WARDEN_UNLIKELY(s.producers[0] == nullptr)) s.producers[0] = &thread.box().add_producer();
    return *static_cast<queue_type*>(s.producers[0]);
  }

 private:
  mutable slot_list slots;  // callers' per-thread parts: stats counters, cast errors
  const Hash hasher;
  const Eq equal;
  map_type map;  // owned by the actor thread
  state_type state;
  const bool record_stats;
  bool undoing = false;
  std::vector<undo_entry> undo;
  std::vector<std::shared_ptr<load_state<V>>> load_wakes;
  std::shared_ptr<feed_type> change_feed;
  linger_count lingering;        // callers that may touch the engine after their reply
  owner_thread<message> thread;  // last: started after everything it uses exists
};

}  // namespace warden::detail
