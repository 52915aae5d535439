// warden::table<K, V>: the owner table. Reads run in the caller's thread with no lock, no
// syscall and no retry; one owner thread (or several, sharded) serializes every write and
// publishes each batch as a whole. The engine and its invariants are in
// detail/table_engine.hpp; this header is the public handle: it checks, hashes, forwards.
//
// Guarantees (also in README.md):
//  - Any thread may call anything, except that the table must not be destroyed or moved
//    while other threads use it (as with any object).
//  - Reads (get, contains, get_versioned, visit, size, snapshot, pin, dump): lock-free, in
//    the caller; they see a published state and check expiry themselves.
//  - Casts (put, erase, clear): return once queued; applied by the key's owner in the order
//    each thread sent them; visible to all readers at the owner's next publication.
//  - flush(): returns once every cast this thread sent before is applied and visible.
//  - Calls (update_counter, transact, insert_new, take, update, erase_if, put_if_version,
//    restore, and get_or_load's miss path): ordered behind the calling thread's earlier
//    casts; return after their writes are published (read-your-writes).
//  - A published batch or transaction is atomic for snapshot readers, across owners too.
//  - Errors: closed_error on a moved-from table; reentrancy_error for any call, cast or read
//    from inside an owner-side callback of this table (transact, update, erase_if), and for
//    calls and flush inside a snapshot or pin of it; exceptions from user code reach the
//    caller unchanged. A cast whose application on the owner throws is dropped (the rest of
//    its batch still applies) and its exception is rethrown by the sender's next flush().
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <type_traits>
#include <utility>

#include <absl/hash/hash.h>

#include "warden/cache.hpp"
#include "warden/change_feed.hpp"
#include "warden/detail/dump_format.hpp"
#include "warden/detail/table_engine.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/stats.hpp"
#include "warden/transaction.hpp"
#include "warden/versioned.hpp"

namespace warden {

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class table {
  using engine = detail::table_engine<K, V, Hash, Eq>;
  using entry = detail::stored<V>;
  using owner = typename engine::owner;
  using store = typename engine::store;
  static_assert(std::is_nothrow_move_constructible_v<K> && std::is_nothrow_move_constructible_v<V>,
                "warden::table needs nothrow-movable keys and values: the maps relocate them "
                "when they grow, and a throw there cannot be undone");
  static_assert(std::is_copy_constructible_v<K> && std::is_copy_constructible_v<V>,
                "warden::table needs copyable keys and values: each write is kept twice (the "
                "left-right copies) and reads return copies");

 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;
  using tx_type = transaction<K, V, Hash, Eq>;

  // What a snapshot function receives: every read sees the table at one instant (including
  // the time: expiry is judged at the view's opening).
  class view {
   public:
    std::optional<V> get(const K& key) const {
      const entry* p = live(e_->find_published(pub_, key, e_->hasher(key)));
      return p ? std::optional<V>(p->value) : std::nullopt;
    }
    bool contains(const K& key) const {
      return live(e_->find_published(pub_, key, e_->hasher(key))) != nullptr;
    }
    // In place, valid while the view lives.
    const V* find(const K& key) const {
      const entry* p = live(e_->find_published(pub_, key, e_->hasher(key)));
      return p ? &p->value : nullptr;
    }
    std::optional<versioned<V>> get_versioned(const K& key) const {
      const entry* p = live(e_->find_published(pub_, key, e_->hasher(key)));
      return p ? std::optional<versioned<V>>(versioned<V>{p->value, p->version}) : std::nullopt;
    }
    // The same reads by a lookup key (see table::get(const Q&)).
    template <class Q>
      requires detail::lookup_key_for<K, Hash, Eq, Q>
    std::optional<V> get(const Q& key) const {
      const entry* p = live(e_->find_published(pub_, key, lookup_hash(key)));
      return p ? std::optional<V>(p->value) : std::nullopt;
    }
    template <class Q>
      requires detail::lookup_key_for<K, Hash, Eq, Q>
    bool contains(const Q& key) const {
      return live(e_->find_published(pub_, key, lookup_hash(key))) != nullptr;
    }
    template <class Q>
      requires detail::lookup_key_for<K, Hash, Eq, Q>
    const V* find(const Q& key) const {
      const entry* p = live(e_->find_published(pub_, key, lookup_hash(key)));
      return p ? &p->value : nullptr;
    }
    // Entries published at the view's instant (expired ones the owner has not removed yet
    // included, as size() counts them).
    std::size_t size() const {
      std::size_t n = 0;
      for (std::size_t s = 0; s <= e_->shard_mask; ++s) n += e_->published_map(pub_, s).size();
      return n;
    }
    // Calls f(key, value) for every live entry, in no particular order.
    template <class F>
    void for_each(F&& f) const {
      for (std::size_t s = 0; s <= e_->shard_mask; ++s) {
        for (const auto& [k, v] : e_->published_map(pub_, s)) {
          if (live(&v) != nullptr) f(k, static_cast<const V&>(v.value));
        }
      }
    }
    // As for_each, with each entry's deadline (kNever: none) on the table's clock.
    template <class F>
    void for_each_entry(F&& f) const {
      for (std::size_t s = 0; s <= e_->shard_mask; ++s) {
        for (const auto& [k, v] : e_->published_map(pub_, s)) {
          if (live(&v) != nullptr) f(k, static_cast<const V&>(v.value), v.deadline);
        }
      }
    }
    // The time the view judges expiry by.
    std::int64_t now() const {
      if (now_ == kUnread) now_ = e_->now();
      return now_;
    }

   protected:
    view(const engine* e, std::uint64_t pub) : e_(e), pub_(pub) {}
    view(const view&) = delete;
    view& operator=(const view&) = delete;
    friend class table;

    template <class Q>
    std::size_t lookup_hash(const Q& key) const {
      return detail::lookup_hash<K, Hash, Eq>(e_->hasher, key);
    }
    const entry* live(const entry* p) const {
      if (p == nullptr || p->deadline == detail::kNever) return p;
      return p->live_at(now()) ? p : nullptr;
    }

    static constexpr std::int64_t kUnread = std::numeric_limits<std::int64_t>::min();
    const engine* e_;
    std::uint64_t pub_;
    mutable std::int64_t now_ = kUnread;
  };
  using view_type = view;

  // A pinned read section: announces the reader once, then serves any number of reads at
  // one instant, as a snapshot does. Hold it briefly: while it is open, the owner cannot
  // write the copy it reads (writes queue up and are applied once it closes). Pins may be
  // closed in any order and on any thread (e.g. held in a unique_ptr or a coroutine frame).
  class pinned : public view {
   public:
    ~pinned() { detail::exit_pin(*slot_, word_); }

   private:
    friend class table;
    pinned(const engine* e, detail::cache_slot& slot, typename engine::opened s)
        : view(e, s.pub), slot_(&slot), word_(s.word) {}
    detail::cache_slot* slot_;
    unsigned word_;
  };

  table() : table(table_options{}) {}
  // Throws std::invalid_argument when the options break a rule (see table_options).
  explicit table(const table_options& options, Hash hash = Hash(), Eq eq = Eq())
      : e_(make_engine(options, std::move(hash), std::move(eq))) {}

  table(table&&) noexcept = default;
  // Drains and destroys the current contents first.
  table& operator=(table&&) noexcept = default;
  table(const table&) = delete;
  table& operator=(const table&) = delete;
  // Drains: every cast accepted before is applied. Like any object, the table must not be
  // destroyed while other threads are still inside its calls.
  ~table() = default;

  // ---- reads: lock-free, in the caller's thread ----------------------------------------
  std::optional<V> get(const K& key) const {
    std::optional<V> out;
    read(key, [&](const entry& p) { out.emplace(p.value); });
    return out;
  }

  bool contains(const K& key) const {
    return read(key, [](const entry&) {});
  }

  std::optional<versioned<V>> get_versioned(const K& key) const {
    std::optional<versioned<V>> out;
    read(key, [&](const entry& p) { out.emplace(versioned<V>{p.value, p.version}); });
    return out;
  }

  // Calls fn(const V&) on the value in place, inside the read section (no copy); returns
  // whether the key was present. fn must be short and must not call back into this table's
  // calls (it delays the owner's next write, as a snapshot does).
  template <class F>
    requires std::invocable<F&, const V&>
  bool visit(const K& key, F&& fn) const {
    return read(key, [&](const entry& p) { std::invoke(fn, static_cast<const V&>(p.value)); });
  }

  // Reads by a lookup key, with no temporary K: a std::string_view or const char* for
  // std::string keys with the default Hash and Eq, or any type a transparent Hash and Eq
  // (both declaring is_transparent) accept. Same meanings as above.
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  std::optional<V> get(const Q& key) const {
    std::optional<V> out;
    read(key, [&](const entry& p) { out.emplace(p.value); });
    return out;
  }
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  bool contains(const Q& key) const {
    return read(key, [](const entry&) {});
  }
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  std::optional<versioned<V>> get_versioned(const Q& key) const {
    std::optional<versioned<V>> out;
    read(key, [&](const entry& p) { out.emplace(versioned<V>{p.value, p.version}); });
    return out;
  }
  template <class Q, class F>
    requires detail::lookup_key_for<K, Hash, Eq, Q> && std::invocable<F&, const V&>
  bool visit(const Q& key, F&& fn) const {
    return read(key, [&](const entry& p) { std::invoke(fn, static_cast<const V&>(p.value)); });
  }

  // Entries visible now (O(shards)); may count expired entries the owners have not removed
  // yet (after flush() it counts none).
  std::size_t size() const {
    return snapshot([](const view& v) { return v.size(); });
  }

  // Runs fn(view) in the caller's thread over one instant of the whole table (all owners).
  template <class F>
    requires std::invocable<F&, view&>
  std::invoke_result_t<F&, view&> snapshot(F&& fn) const {
    using R = std::invoke_result_t<F&, view&>;
    static_assert(!std::is_reference_v<R>,
                  "a snapshot function must return by value: the view's data is gone after it");
    const engine& e = checked();
    detail::cache_slot& slot = e.my_slot();
    const auto s = e.open_scoped(slot);
    section_guard close{slot, s.word};
    view v(&e, s.pub);
    return std::invoke(fn, v);
  }

  [[nodiscard]] pinned pin() const {
    const engine& e = checked();
    detail::cache_slot& slot = e.my_slot();
    return pinned(&e, slot, e.open_pin(slot));
  }

  cache_stats stats() const {
    const engine& e = checked();
    cache_stats st;
    e.slots.for_each([&](const detail::cache_slot& s) {
      // relaxed: statistics.
      st.hits += s.hits.load(std::memory_order_relaxed);
      st.misses += s.misses.load(std::memory_order_relaxed);
      st.loads += s.loads.load(std::memory_order_relaxed);
      st.load_failures += s.load_failures.load(std::memory_order_relaxed);
      st.access_drops += s.drops.load(std::memory_order_relaxed);
    });
    for (const auto& o : e.owners) {
      const auto& c = o->state.counters();
      // relaxed: statistics.
      st.evictions += c.evictions.load(std::memory_order_relaxed);
      st.expirations += c.expirations.load(std::memory_order_relaxed);
      st.batches += c.batches.load(std::memory_order_relaxed);
      st.writes += c.writes.load(std::memory_order_relaxed);
      st.access_records += c.records.load(std::memory_order_relaxed);
      st.publish_ns += c.publish_ns.load(std::memory_order_relaxed);
      st.mailbox_depth += o->thread.box().depth();
    }
    if (!e.record_stats)
      st.hits = st.misses = st.loads = st.load_failures = st.evictions = st.expirations = 0;
    const auto f = e.change_feed->stats();
    st.feed_queued = f.queued;
    st.feed_delivered = f.delivered;
    st.feed_errors = f.errors;
    st.feed_lag_ns = f.last_lag_ns;
    st.feed_max_lag_ns = f.max_lag_ns;
    return st;
  }

  // Diagnostics: how many times the owners have switched their readers between light and
  // fenced announcements (table_options::asymmetric_fence).
  std::uint64_t fence_mode_switches() const noexcept { return e_ ? e_->published.switches() : 0; }

  // Writes every live entry as of one instant (a snapshot; writers keep running), with the
  // time each has left to live. The format is the same on every backend (dump_format.hpp).
  void dump(std::ostream& os) const {
    std::string bytes = snapshot([](const view& v) {
      detail::dump_writer<K, V> w;
      const std::int64_t t = v.now();
      v.for_each_entry([&](const K& k, const V& value, std::int64_t deadline) {
        w.add(k, value, deadline == detail::kNever ? detail::kDumpNoTtl : deadline - t);
      });
      return std::move(w).finish();
    });
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!os) throw error("warden::table::dump: the stream failed");
  }

  // ---- casts ------------------------------------------------------------------------------
  // Queues a write and returns. Bounded mailbox: waits for room when full (reentrancy_error
  // instead if waiting could deadlock). Hash and the copies of key and value run here, so
  // their exceptions reach the caller and nothing is queued.
  void put(K key, V value) { cast_put(std::move(key), std::move(value), detail::kNoTtl, false); }
  // As put; the entry expires `ttl` after this write, whatever the options say.
  template <class Rep, class Period>
  void put(K key, V value, std::chrono::duration<Rep, Period> ttl) {
    cast_put(std::move(key), std::move(value), ttl_ns(ttl), false);
  }
  // As put, but returns false instead of waiting when the mailbox is full.
  bool try_put(K key, V value) {
    return cast_put(std::move(key), std::move(value), detail::kNoTtl, true);
  }
  void erase(K key) { cast_erase(std::move(key), false); }
  bool try_erase(K key) { return cast_erase(std::move(key), true); }

  // Removes every entry, published as one batch (across owners too). Asynchronous, ordered
  // behind this thread's earlier casts; flush() waits for it.
  void clear() {
    engine& e = checked();
    e.post_barrier([](owner& o) {
      engine& en = *o.engine;
      for (auto& each : en.owners) {
        store st{en, *each};
        each->state.clear(st);
      }
    });
    flush_needed_for_all(e);
  }

  // ---- calls ------------------------------------------------------------------------------
  // Returns once every cast this thread sent before is applied and visible to all readers.
  // Rethrows the first error of this thread's casts since its last flush, if any.
  void flush() { checked().flush(); }

  // Atomically adds `delta` to the value of `key` (absent or expired: 0) and returns the new
  // value. Integers wrap around as unsigned arithmetic does (never undefined behaviour).
  V update_counter(const K& key, V delta)
    requires detail::counter_value<V>
  {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return e.template call_on<V>(
        e.owner_of(h),
        [&](owner& o) {
          store st{*o.engine, o};
          const std::int64_t t = o.state.now();
          const entry* cur = o.state.find_live(st, key, h, t);
          const V next = detail::wrapping_add(cur ? cur->value : V{}, delta);
          o.state.put(st, h, K(key), V(next), detail::kNoTtl, t);
          return next;
        },
        "update_counter");
  }

  // Inserts only if `key` is absent (an expired entry counts as absent); true if it did.
  bool insert_new(const K& key, V value) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return e.template call_on<bool>(
        e.owner_of(h),
        [&](owner& o) {
          store st{*o.engine, o};
          const std::int64_t t = o.state.now();
          if (o.state.find_live(st, key, h, t) != nullptr) return false;
          o.state.put(st, h, K(key), std::move(value), detail::kNoTtl, t);
          return true;
        },
        "insert_new");
  }

  // Removes `key` and returns what it held (nullopt if absent or expired).
  std::optional<V> take(const K& key) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return e.template call_on<std::optional<V>>(
        e.owner_of(h),
        [&](owner& o) -> std::optional<V> {
          store st{*o.engine, o};
          const entry* cur = o.state.find_live(st, key, h, o.state.now());
          if (cur == nullptr) return std::nullopt;
          std::optional<V> out(cur->value);
          o.state.erase(st, h, K(key));
          return out;
        },
        "take");
  }

  // Runs fn(const std::optional<V>&) -> std::optional<V> on the owner; its result becomes
  // the value of `key` (nullopt erases it) and is returned. fn must not call this table.
  template <class F>
    requires std::is_invocable_r_v<std::optional<V>, F&, const std::optional<V>&>
  std::optional<V> update(const K& key, F&& fn) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return e.template call_on<std::optional<V>>(
        e.owner_of(h),
        [&](owner& o) -> std::optional<V> {
          store st{*o.engine, o};
          const std::int64_t t = o.state.now();
          const entry* cur = o.state.find_live(st, key, h, t);
          const std::optional<V> before = cur ? std::optional<V>(cur->value) : std::nullopt;
          std::optional<V> after = std::invoke(fn, before);
          if (after) {
            o.state.put(st, h, K(key), V(*after), detail::kNoTtl, t);
          } else if (cur != nullptr) {
            o.state.erase(st, h, K(key));
          }
          return after;
        },
        "update");
  }

  // Writes only if the version of `key` is `version` (0: only if absent or expired); true
  // if it wrote.
  bool put_if_version(const K& key, V value, std::uint64_t version) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return e.template call_on<bool>(
        e.owner_of(h),
        [&](owner& o) {
          store st{*o.engine, o};
          const std::int64_t t = o.state.now();
          const entry* cur = o.state.find_live(st, key, h, t);
          if ((cur ? cur->version : 0) != version) return false;
          o.state.put(st, h, K(key), std::move(value), detail::kNoTtl, t);
          return true;
        },
        "put_if_version");
  }

  // Removes every live entry with pred(key, value) true, published as one batch (across
  // owners too); returns how many. pred runs on an owner and must not call this table; if it
  // throws, nothing is removed and the exception reaches the caller.
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&, const K&, const V&>
  std::size_t erase_if(Pred&& pred) {
    engine& e = checked();
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
    return e.template run_barrier<std::size_t>(body, std::nullopt, "erase_if");
  }

  // Runs fn(tx) on the owner; all of its writes become visible at once or, if fn throws,
  // not at all (the exception reaches the caller unchanged). tx.get/contains see the
  // transaction's own writes. With several owners the transaction briefly stops them all,
  // and is atomic across them. fn must not call this table other than through tx.
  template <class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return run_transaction(fn, std::nullopt);
  }

  // As transact, with a deadline: if the owner has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it), as a gen_server call would.
  template <class Rep, class Period, class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact_for(std::chrono::duration<Rep, Period> timeout,
                                                  F&& fn) {
    return run_transaction(fn, detail::deadline_after(timeout));
  }

  // The value of `key` if present; otherwise loader(key) runs once, in one caller's thread,
  // while every concurrent caller for `key` waits for its result, which is stored (unless a
  // put or erase of `key` landed meanwhile: that write wins) and returned to all. If the
  // loader throws, every waiter gets the exception and nothing is stored. A loader that asks
  // for its own key gets reentrancy_error.
  template <class Loader>
    requires std::is_invocable_r_v<V, Loader&, const K&>
  V get_or_load(const K& key, Loader&& loader) {
    std::optional<V> hit = get(key);
    if (hit) return std::move(*hit);
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    const std::uint32_t target = e.owner_of(h);
    detail::thread_record& rec = detail::current_record();
    struct claimed {
      std::optional<V> value;
      std::shared_ptr<detail::load_state<V>> load;
      bool mine = false;
    };
    claimed c = e.template call_on<claimed>(
        target,
        [&](owner& o) {
          store st{*o.engine, o};
          claimed out;
          if (const entry* p = o.state.find_live(st, key, h, o.state.now())) {
            out.value.emplace(p->value);
            return out;
          }
          out.load = o.state.claim_load(key, h, &rec, &out.mine);
          return out;
        },
        "get_or_load");
    if (c.value) return std::move(*c.value);
    return finish_load(e, key, h, target, rec, std::move(c.load), c.mine, loader);
  }

  // Puts every entry of a dump (with the time it had left to live), as one batch. Throws
  // format_error, having changed nothing, if the stream is not an intact dump of K and V.
  void restore(std::istream& is) {
    engine& e = checked();
    auto entries = detail::read_dump<K, V>(is);
    auto body = [&](owner&) {
      std::vector<std::size_t> hashes;
      hashes.reserve(entries.size());
      for (auto& d : entries) hashes.push_back(detail::hash_retrying(e.hasher, d.key));
      transaction_commit(e, [&](auto&& add) {
        for (std::size_t i = 0; i < entries.size(); ++i) {
          auto& d = entries[i];
          add(hashes[i], std::move(d.key), std::optional<V>(std::move(d.value)),
              d.ttl == detail::kDumpNoTtl ? detail::kNoTtl : d.ttl);
        }
      });
    };
    e.template run_barrier<void>(body, std::nullopt, "restore");
  }

  // fn(const change_batch<K, V>&) receives every batch published from now on, whole and in
  // publication order, on the table's notifier thread. It may read the table and cast to it;
  // calls from it are refused (reentrancy_error) when the feed is bounded (feed_capacity),
  // where they could wait for the very notifier that runs them. Its exceptions are kept for
  // the subscription's sync().
  template <class F>
    requires std::invocable<F&, const change_batch<K, V>&>
  [[nodiscard]] subscription subscribe(F fn) {
    engine& e = checked();
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

 private:
  struct section_guard {
    detail::cache_slot& slot;
    unsigned word;
    ~section_guard() { detail::exit_scoped(slot, word); }
  };

  // The one read path: finds `key` in the published state and, if it is live, calls
  // on_hit(entry) inside the section; records the access and stats after leaving it.
  template <class Q, class OnHit>
  WARDEN_ALWAYS_INLINE bool read(const Q& key, OnHit&& on_hit) const {
    const engine& e = checked();
    const std::size_t h = detail::lookup_hash<K, Hash, Eq>(e.hasher, key);
    detail::cache_slot& slot = e.my_slot();
    std::int64_t t = 0;
    bool hit;
    {
      const auto s = e.open_scoped(slot);
      section_guard close{slot, s.word};
      const entry* p = e.find_published(s.pub, key, h);
      if (p != nullptr && WARDEN_UNLIKELY(p->deadline != detail::kNever)) {
        t = e.now();
        if (!p->live_at(t)) p = nullptr;
      }
      hit = p != nullptr;
      if (hit) on_hit(*p);
    }
    e.after_read(slot, h, hit, t);
    return hit;
  }

  template <class Rep, class Period>
  static std::int64_t ttl_ns(std::chrono::duration<Rep, Period> ttl) {
    const std::int64_t ns = detail::saturating_ns(ttl);
    if (ns < 0) throw std::invalid_argument("warden::table::put: negative ttl");
    return ns;
  }

  bool cast_put(K&& key, V&& value, std::int64_t ttl, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return cast(e, h, typename engine::put_op{std::move(key), std::move(value), h, ttl}, try_only);
  }
  bool cast_erase(K&& key, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return cast(e, h, typename engine::erase_op{std::move(key), h}, try_only);
  }

  template <class Op>
  bool cast(engine& e, std::size_t h, Op&& op, bool try_only) {
    if (e.is_owner_thread()) {
      throw reentrancy_error("a cast to a table from inside its own owner-side callback");
    }
    detail::cache_slot& slot = e.my_slot();
    detail::thread_record& rec = detail::current_record();
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
    detail::thread_record& rec = detail::current_record();
    for (std::uint32_t i = 0; i < e.owner_count; ++i) e.note_cast(rec, i);
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

  template <class F>
  std::invoke_result_t<F&, tx_type&> run_transaction(
      F& fn, std::optional<std::chrono::steady_clock::time_point> deadline) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    engine& e = checked();
    auto body = [&](owner&) -> R {
      tx_type tx(&find_current_thunk, &e, e.hasher, e.equal);
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn, tx);
        commit_staged(e, tx);
      } else {
        R result = std::invoke(fn, tx);
        commit_staged(e, tx);
        return result;
      }
    };
    return e.template run_barrier<R>(body, deadline, "transact");
  }

  static void commit_staged(engine& e, const tx_type& tx) {
    transaction_commit(e, [&](auto&& add) {
      for (const auto& [key, value] : tx.staged()) {
        add(detail::hash_retrying(e.hasher, key), K(key),
            value ? std::optional<V>(*value) : std::optional<V>(), detail::kNoTtl);
      }
    });
  }

  // The committed, live value of `key` for a transaction (its owner's idle copy).
  static const V* find_current_thunk(const void* ctx, const K& key, std::size_t h) {
    engine& e = *const_cast<engine*>(static_cast<const engine*>(ctx));
    owner& o = *e.owners[e.owner_of(h)];
    store st{e, o};
    const entry* p = o.state.find_live(st, key, h, o.state.now());
    return p ? &p->value : nullptr;
  }

  template <class Loader>
  V finish_load(engine& e, const K& key, std::size_t h, std::uint32_t target,
                detail::thread_record& rec, std::shared_ptr<detail::load_state<V>> load, bool mine,
                Loader& loader) {
    if (!mine) {
      if (load->loader == &rec) {
        throw reentrancy_error("get_or_load of a key from inside its own loader");
      }
      load->wait();
      if (load->error) std::rethrow_exception(load->error);
      return *load->value;
    }
    detail::cache_slot& slot = e.my_slot();
    if (e.record_stats) detail::cache_slot::bump(slot.loads);
    std::optional<V> value;
    std::exception_ptr error;
    try {
      value.emplace(std::invoke(loader, key));
    } catch (...) {
      error = std::current_exception();
      if (e.record_stats) detail::cache_slot::bump(slot.load_failures);
    }
    // Waiters are woken whatever happens: by the owner after publishing the value, or here
    // if the owner could not be reached (the table is shutting down).
    try {
      e.template call_on<void>(
          target,
          [&](owner& o) {
            store st{*o.engine, o};
            try {
              o.state.end_load(key, h, load.get());
              if (value && !load->superseded) {
                o.state.put(st, h, K(key), V(*value), detail::kNoTtl, o.state.now());
              }
            } catch (...) {
              // Not stored (Eq or a copy threw); the loaded value still reaches everyone.
            }
            try {
              load->value = value;
            } catch (...) {
              load->error = std::current_exception();
            }
            if (error) load->error = error;
            detail::must_succeed([&] { o.load_wakes.push_back(load); }, "waking loaders");
          },
          "get_or_load");
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

  static std::unique_ptr<engine> make_engine(const table_options& options, Hash hash, Eq eq) {
    detail::validate(options);
    return std::make_unique<engine>(options, std::move(hash), std::move(eq));
  }

  engine& checked() const {
    if (WARDEN_UNLIKELY(!e_)) throw closed_error();
    return *e_;
  }

  std::unique_ptr<engine> e_;
};

}  // namespace warden
