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
#include "warden/detail/table_writes.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/stats.hpp"
#include "warden/transaction.hpp"
#include "warden/versioned.hpp"

namespace warden {

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class table {
  using engine = detail::table_engine<K, V, Hash, Eq>;
  using writes = detail::table_writes<engine>;
  using calls = detail::keyed_calls<K, V>;
  using entry = detail::stored<V>;
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
      const entry* p = live(e_->find_published(pub_, key, e_->hash(key)));
      return p ? std::optional<V>(p->value) : std::nullopt;
    }
    bool contains(const K& key) const {
      return live(e_->find_published(pub_, key, e_->hash(key))) != nullptr;
    }
    // In place, valid while the view lives.
    const V* find(const K& key) const {
      const entry* p = live(e_->find_published(pub_, key, e_->hash(key)));
      return p ? &p->value : nullptr;
    }
    std::optional<versioned<V>> get_versioned(const K& key) const {
      const entry* p = live(e_->find_published(pub_, key, e_->hash(key)));
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
      for (std::size_t s = 0; s < e_->shard_count(); ++s) n += e_->published_map(pub_, s).size();
      return n;
    }
    // Calls f(key, value) for every live entry, in no particular order.
    template <class F>
    void for_each(F&& f) const {
      for (std::size_t s = 0; s < e_->shard_count(); ++s) {
        for (const auto& [k, v] : e_->published_map(pub_, s)) {
          if (live(&v) != nullptr) f(k, static_cast<const V&>(v.value));
        }
      }
    }
    // As for_each, with each entry's deadline (kNever: none) on the table's clock.
    template <class F>
    void for_each_entry(F&& f) const {
      for (std::size_t s = 0; s < e_->shard_count(); ++s) {
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
      return e_->hash(key);
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

  cache_stats stats() const { return checked().stats(); }

  // Diagnostics: how many times the owners have switched their readers between light and
  // fenced announcements (table_options::asymmetric_fence).
  std::uint64_t fence_mode_switches() const noexcept { return e_ ? e_->fence_mode_switches() : 0; }

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
    cast_put(std::move(key), std::move(value), detail::checked_ttl_ns(ttl, "warden::table::put"),
             false);
  }
  // As put, but returns false instead of waiting when the mailbox is full.
  bool try_put(K key, V value) {
    return cast_put(std::move(key), std::move(value), detail::kNoTtl, true);
  }
  void erase(K key) { cast_erase(std::move(key), false); }
  bool try_erase(K key) { return cast_erase(std::move(key), true); }

  // Removes every entry, published as one batch (across owners too). Asynchronous, ordered
  // behind this thread's earlier casts; flush() waits for it.
  void clear() { writes::clear(checked()); }

  // ---- calls ------------------------------------------------------------------------------
  // Returns once every cast this thread sent before is applied and visible to all readers.
  // Rethrows the first error of this thread's casts since its last flush, if any.
  void flush() { checked().flush(); }

  // Atomically adds `delta` to the value of `key` (absent or expired: 0) and returns the new
  // value. Integers wrap around as unsigned arithmetic does (never undefined behaviour).
  V update_counter(const K& key, V delta)
    requires detail::counter_value<V>
  {
    return keyed<V>(key, "update_counter", [&](auto& s, auto& st, std::size_t h) {
      return calls::add(s, st, key, h, delta);
    });
  }

  // Inserts only if `key` is absent (an expired entry counts as absent); true if it did.
  bool insert_new(const K& key, V value) {
    return keyed<bool>(key, "insert_new", [&](auto& s, auto& st, std::size_t h) {
      return calls::insert_new(s, st, key, h, value);
    });
  }

  // Removes `key` and returns what it held (nullopt if absent or expired).
  std::optional<V> take(const K& key) {
    return keyed<std::optional<V>>(
        key, "take", [&](auto& s, auto& st, std::size_t h) { return calls::take(s, st, key, h); });
  }

  // Runs fn(const std::optional<V>&) -> std::optional<V> on the owner; its result becomes
  // the value of `key` (nullopt erases it) and is returned. fn must not call this table.
  template <class F>
    requires std::is_invocable_r_v<std::optional<V>, F&, const std::optional<V>&>
  std::optional<V> update(const K& key, F&& fn) {
    return keyed<std::optional<V>>(key, "update", [&](auto& s, auto& st, std::size_t h) {
      return calls::update(s, st, key, h, fn);
    });
  }

  // Writes only if the version of `key` is `version` (0: only if absent or expired); true
  // if it wrote.
  bool put_if_version(const K& key, V value, std::uint64_t version) {
    return keyed<bool>(key, "put_if_version", [&](auto& s, auto& st, std::size_t h) {
      return calls::put_if_version(s, st, key, h, value, version);
    });
  }

  // Removes every live entry with pred(key, value) true, published as one batch (across
  // owners too); returns how many. pred runs on an owner and must not call this table; if it
  // throws, nothing is removed and the exception reaches the caller.
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&, const K&, const V&>
  std::size_t erase_if(Pred&& pred) {
    return writes::erase_if(checked(), pred);
  }

  // Runs fn(tx) on the owner; all of its writes become visible at once or, if fn throws,
  // not at all (the exception reaches the caller unchanged). tx.get/contains see the
  // transaction's own writes. With several owners the transaction briefly stops them all,
  // and is atomic across them. fn must not call this table other than through tx.
  template <class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return writes::transact(checked(), fn, std::nullopt);
  }

  // As transact, with a deadline: if the owner has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it), as a gen_server call would.
  template <class Rep, class Period, class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact_for(std::chrono::duration<Rep, Period> timeout,
                                                  F&& fn) {
    return writes::transact(checked(), fn, detail::deadline_after(timeout));
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
    return calls::load_missing(e, key, e.hash(key), loader);
  }

  // Puts every entry of a dump (with the time it had left to live), as one batch. Throws
  // format_error, having changed nothing, if the stream is not an intact dump of K and V.
  void restore(std::istream& is) {
    engine& e = checked();
    writes::restore(e, detail::read_dump<K, V>(is));
  }

  // fn(const change_batch<K, V>&) receives every batch published from now on, whole and in
  // publication order, on the table's notifier thread. It may read the table and cast to it;
  // calls from it are refused (reentrancy_error) when the feed is bounded (feed_capacity),
  // where they could wait for the very notifier that runs them. Its exceptions are kept for
  // the subscription's sync().
  template <class F>
    requires std::invocable<F&, const change_batch<K, V>&>
  [[nodiscard]] subscription subscribe(F fn) {
    return writes::subscribe(checked(), std::move(fn));
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
    const std::size_t h = e.hash(key);
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

  bool cast_put(K&& key, V&& value, std::int64_t ttl, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return writes::cast(e, h, typename engine::put_op{std::move(key), std::move(value), h, ttl},
                        try_only);
  }
  bool cast_erase(K&& key, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return writes::cast(e, h, typename engine::erase_op{std::move(key), h}, try_only);
  }

  // Hashes here (its exceptions reach the caller), then runs body(state, store, hash) on the
  // key's owner.
  template <class R, class Body>
  R keyed(const K& key, const char* what, Body&& body) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return e.template call_keyed<R>(
        h, [&](auto& s, auto& st, auto&) -> R { return body(s, st, h); }, what);
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
