// The calls both backends offer, written once. Each engine runs a body on the owner of the
// key (`call_keyed(h, body, what)`: body(state, store) on that owner's owner_state and
// Store); the handles only check, hash and forward.
//
// Invariants
//  - A body runs on the key's owner, alone: it may read and write that owner's state freely,
//    and its writes are published (with the rest of the batch) before the caller returns.
//  - Bodies judge expiry at one instant (state.now() read once) and treat an expired entry
//    as absent, as reads do.
//  - get_or_load: the loader runs in the caller's thread, never on an owner; every waiter is
//    woken whatever happens (loading.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "warden/detail/dump_format.hpp"
#include "warden/detail/entry.hpp"
#include "warden/detail/feed.hpp"
#include "warden/detail/hashing.hpp"
#include "warden/detail/loading.hpp"
#include "warden/detail/owner_state.hpp"
#include "warden/detail/read_section.hpp"
#include "warden/error.hpp"
#include "warden/stats.hpp"

namespace warden::detail {

template <class K, class V>
struct keyed_calls {
  using entry = stored<V>;

  // update_counter: the new value (absent or expired counts as 0; integers wrap).
  template <class State, class Store>
  static V add(State& s, Store& st, const K& key, std::size_t h, V delta) {
    const std::int64_t t = s.now();
    const entry* cur = s.find_live(st, key, h, t);
    const V next = wrapping_add(cur ? cur->value : V{}, delta);
    s.put(st, h, K(key), V(next), kNoTtl, t);
    return next;
  }

  template <class State, class Store>
  static bool insert_new(State& s, Store& st, const K& key, std::size_t h, V& value) {
    const std::int64_t t = s.now();
    if (s.find_live(st, key, h, t) != nullptr) return false;
    s.put(st, h, K(key), std::move(value), kNoTtl, t);
    return true;
  }

  template <class State, class Store>
  static std::optional<V> take(State& s, Store& st, const K& key, std::size_t h) {
    const entry* cur = s.find_live(st, key, h, s.now());
    if (cur == nullptr) return std::nullopt;
    std::optional<V> out(cur->value);
    s.erase(st, h, K(key));
    return out;
  }

  template <class State, class Store, class F>
  static std::optional<V> update(State& s, Store& st, const K& key, std::size_t h, F& fn) {
    const std::int64_t t = s.now();
    const entry* cur = s.find_live(st, key, h, t);
    const std::optional<V> before = cur ? std::optional<V>(cur->value) : std::nullopt;
    std::optional<V> after = std::invoke(fn, before);
    if (after) {
      s.put(st, h, K(key), V(*after), kNoTtl, t);
    } else if (cur != nullptr) {
      s.erase(st, h, K(key));
    }
    return after;
  }

  template <class State, class Store>
  static bool put_if_version(State& s, Store& st, const K& key, std::size_t h, V& value,
                             std::uint64_t version) {
    const std::int64_t t = s.now();
    const entry* cur = s.find_live(st, key, h, t);
    if ((cur ? cur->version : 0) != version) return false;
    s.put(st, h, K(key), std::move(value), kNoTtl, t);
    return true;
  }

  // get_or_load's miss: the value if it appeared meanwhile, else the load in flight
  // (`mine`: the caller is its loader).
  struct claimed {
    std::optional<V> value;
    std::shared_ptr<load_state<V>> load;
    bool mine = false;
  };
  template <class State, class Store>
  static claimed find_or_claim(State& s, Store& st, const K& key, std::size_t h,
                               const thread_record& rec) {
    claimed out;
    if (const entry* p = s.find_live(st, key, h, s.now())) {
      out.value.emplace(p->value);
      return out;
    }
    out.load = s.claim_load(key, h, &rec, &out.mine);
    return out;
  }

  // get_or_load after a miss, on either engine.
  template <class Engine, class Loader>
  static V load_missing(Engine& e, const K& key, std::size_t h, Loader& loader) {
    const thread_record& rec = current_record();
    claimed c = e.template call_keyed<claimed>(
        h, [&](auto& s, auto& st, auto&) { return find_or_claim(s, st, key, h, rec); },
        "get_or_load");
    return finish_load(
        key, h, rec, std::move(c), loader, e.my_slot(), e.stats_recorded(), [&](auto&& end) {
          e.template call_keyed<void>(
              h, [&](auto& s, auto& st, auto& wakes) { end(s, st, wakes); }, "get_or_load");
        });
  }

  // The rest of get_or_load after the claim. end_on_owner(fn) runs fn(state, store,
  // load_wakes) on the key's owner as a call.
  template <class Loader, class EndOnOwner>
  static V finish_load(const K& key, std::size_t h, const thread_record& rec, claimed c,
                       Loader& loader, cache_slot& slot, bool record_stats,
                       EndOnOwner&& end_on_owner) {
    if (c.value) return std::move(*c.value);
    std::shared_ptr<load_state<V>> load = std::move(c.load);
    if (!c.mine) {
      if (load->loader == &rec) {
        throw reentrancy_error("get_or_load of a key from inside its own loader");
      }
      load->wait();
      if (load->error) std::rethrow_exception(load->error);
      return *load->value;
    }
    if (record_stats) cache_slot::bump(slot.loads);
    std::optional<V> value;
    std::exception_ptr error;
    try {
      value.emplace(std::invoke(loader, key));
    } catch (...) {
      error = std::current_exception();
      if (record_stats) cache_slot::bump(slot.load_failures);
    }
    // Waiters are woken whatever happens: by the owner after publishing the value, or here
    // if the owner could not be reached (the cache is shutting down).
    try {
      end_on_owner([&](auto& s, auto& st, auto& load_wakes) {
        try {
          s.end_load(key, h, load.get());
          if (value && !load->superseded) s.put(st, h, K(key), V(*value), kNoTtl, s.now());
        } catch (...) {
          // Not stored (Eq or a copy threw); the loaded value still reaches everyone.
        }
        try {
          load->value = value;
        } catch (...) {
          load->error = std::current_exception();
        }
        if (error) load->error = error;
        must_succeed([&] { load_wakes.push_back(load); }, "waking loaders");
      });
    } catch (...) {
      if (!load->done.load(std::memory_order_acquire)) {  // acquire: as in load_state::wait
        load->error = std::current_exception();
        load->publish();
      }
      throw;
    }
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

// fn(tx), then commit(), returning fn's result: the owner-side body of a transaction.
template <class F, class Tx, class Commit>
std::invoke_result_t<F&, Tx&> run_and_commit(F& fn, Tx& tx, Commit&& commit) {
  using R = std::invoke_result_t<F&, Tx&>;
  static_assert(!std::is_reference_v<R>, "a transact function must return by value");
  if constexpr (std::is_void_v<R>) {
    std::invoke(fn, tx);
    commit();
  } else {
    R result = std::invoke(fn, tx);
    commit();
    return result;
  }
}

// The writes of a transaction's staged set and of a dump's entries, as the engines'
// all-or-nothing commits take them: add(hash, K&&, optional<V>&& (nullopt: erase), ttl).
template <class K, class V, class Tx, class Hash, class Add>
void add_staged_writes(const Tx& tx, const Hash& hasher, Add&& add) {
  for (const auto& [key, value] : tx.staged()) {
    add(hash_retrying(hasher, key), K(key), value ? std::optional<V>(*value) : std::optional<V>(),
        kNoTtl);
  }
}
template <class K, class V, class Entries, class Hash, class Add>
void add_dumped_writes(Entries& entries, const Hash& hasher, Add&& add) {
  for (auto& d : entries) {
    add(hash_retrying(hasher, d.key), std::move(d.key), std::optional<V>(std::move(d.value)),
        d.ttl == kDumpNoTtl ? kNoTtl : d.ttl);
  }
}

// The callers' half of cache_stats (per-thread counters) and the change feed's.
inline void add_caller_stats(const slot_list& slots, cache_stats& st) {
  slots.for_each([&](const cache_slot& s) {
    // relaxed: statistics.
    st.hits += s.hits.load(std::memory_order_relaxed);
    st.misses += s.misses.load(std::memory_order_relaxed);
    st.loads += s.loads.load(std::memory_order_relaxed);
    st.load_failures += s.load_failures.load(std::memory_order_relaxed);
    st.access_drops += s.drops.load(std::memory_order_relaxed);
  });
}

template <class Feed>
void add_feed_stats(const Feed& feed, cache_stats& st) {
  const auto f = feed.stats();
  st.feed_queued = f.queued;
  st.feed_delivered = f.delivered;
  st.feed_errors = f.errors;
  st.feed_lag_ns = f.last_lag_ns;
  st.feed_max_lag_ns = f.max_lag_ns;
}

// An owner's counters (relaxed loads: statistics).
inline void add_owner_stats(const owner_counters& c, cache_stats& st) {
  st.evictions += c.evictions.load(std::memory_order_relaxed);
  st.expirations += c.expirations.load(std::memory_order_relaxed);
  st.batches += c.batches.load(std::memory_order_relaxed);
  st.writes += c.writes.load(std::memory_order_relaxed);
  st.access_records += c.records.load(std::memory_order_relaxed);
  st.publish_ns += c.publish_ns.load(std::memory_order_relaxed);
}

// With record_stats off, the counters it controls read 0 (the owners count evictions and
// expirations anyway, for their own bookkeeping).
inline void drop_unrecorded_stats(bool record_stats, cache_stats& st) {
  if (!record_stats)
    st.hits = st.misses = st.loads = st.load_failures = st.evictions = st.expirations = 0;
}

}  // namespace warden::detail
