// warden::actor<K, V>: the GenServer shape. One owner thread holds an absl::flat_hash_map;
// every operation, reads included, is a message to it. Casts (put, erase) return at once;
// calls (everything else) wait for the reply in the caller's thread record (brief spin, then
// a futex). The owner drains its whole mailbox per wake-up and replies to each call as soon
// as it has run. It is warden's honest baseline for the table, with the same meanings:
//  - per-producer FIFO casts; flush() = read-your-writes; a call is ordered behind its
//    thread's earlier casts (one mailbox);
//  - transact all-or-nothing, its exception carried to the caller; snapshot at one instant
//    (the owner runs it, so nothing else happens meanwhile);
//  - the same cache features (size bound, expiry, loading, versions, change feed, dump);
//  - anything called on the actor from its own thread (inside any callback it runs) is a
//    reentrancy_error; the owner never dies from user code;
//  - destruction drains: every accepted cast is applied, calls in flight complete.
// The engine is detail/actor_engine.hpp.
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
#include "warden/detail/actor_engine.hpp"
#include "warden/detail/dump_format.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/stats.hpp"
#include "warden/transaction.hpp"
#include "warden/versioned.hpp"

namespace warden {

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class actor {
  using engine = detail::actor_engine<K, V, Hash, Eq>;
  using entry = detail::stored<V>;
  static_assert(std::is_nothrow_move_constructible_v<K> && std::is_nothrow_move_constructible_v<V>,
                "warden::actor needs nothrow-movable keys and values: the map relocates them "
                "when it grows, and a throw there cannot be undone");
  static_assert(std::is_copy_constructible_v<K> && std::is_copy_constructible_v<V>,
                "warden::actor needs copyable keys and values: reads return copies");

 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;
  using tx_type = transaction<K, V, Hash, Eq>;

  // What a snapshot function receives; it runs on the actor's thread, so the map holds still.
  class view {
   public:
    std::optional<V> get(const K& key) const {
      const entry* p = find_entry(key);
      return p ? std::optional<V>(p->value) : std::nullopt;
    }
    bool contains(const K& key) const { return find_entry(key) != nullptr; }
    const V* find(const K& key) const {
      const entry* p = find_entry(key);
      return p ? &p->value : nullptr;
    }
    std::optional<versioned<V>> get_versioned(const K& key) const {
      const entry* p = find_entry(key);
      return p ? std::optional<versioned<V>>(versioned<V>{p->value, p->version}) : std::nullopt;
    }
    std::size_t size() const { return e_->entries().size(); }
    template <class F>
    void for_each(F&& f) const {
      for (const auto& [k, v] : e_->entries()) {
        if (v.live_at(now_)) f(k, static_cast<const V&>(v.value));
      }
    }
    template <class F>
    void for_each_entry(F&& f) const {
      for (const auto& [k, v] : e_->entries()) {
        if (v.live_at(now_)) f(k, static_cast<const V&>(v.value), v.deadline);
      }
    }
    std::int64_t now() const { return now_; }

   private:
    friend class actor;
    view(const engine* e, std::int64_t now) : e_(e), now_(now) {}
    view(const view&) = delete;
    view& operator=(const view&) = delete;
    const entry* find_entry(const K& key) const {
      const entry* p = e_->find(key, e_->hash(key));
      return p != nullptr && p->live_at(now_) ? p : nullptr;
    }
    const engine* e_;
    std::int64_t now_;
  };
  using view_type = view;

  actor() : actor(actor_options{}) {}
  explicit actor(const actor_options& options, Hash hash = Hash(), Eq eq = Eq())
      : e_(make_engine(options, std::move(hash), std::move(eq))) {}
  actor(actor&&) noexcept = default;
  actor& operator=(actor&&) noexcept = default;
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;
  ~actor() = default;

  // ---- reads: calls too, that is the actor's shape. Hash runs here, in the caller ---------
  std::optional<V> get(const K& key) const {
    return counted_read(key, [](const entry& p) { return p.value; });
  }
  bool contains(const K& key) const {
    return counted_read(key, [](const entry&) { return true; }).has_value();
  }
  std::optional<versioned<V>> get_versioned(const K& key) const {
    return counted_read(key, [](const entry& p) { return versioned<V>{p.value, p.version}; });
  }
  // Runs fn(const V&) on the actor's thread, on the value in place; whether it was present.
  template <class F>
    requires std::invocable<F&, const V&>
  bool visit(const K& key, F&& fn) const {
    return counted_read(key,
                        [&](const entry& p) {
                          std::invoke(fn, static_cast<const V&>(p.value));
                          return true;
                        })
        .has_value();
  }
  // Reads by a lookup key (as table::get(const Q&)), with no temporary K.
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  std::optional<V> get(const Q& key) const {
    return counted_read(key, [](const entry& p) { return p.value; });
  }
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  bool contains(const Q& key) const {
    return counted_read(key, [](const entry&) { return true; }).has_value();
  }
  template <class Q, class F>
    requires detail::lookup_key_for<K, Hash, Eq, Q> && std::invocable<F&, const V&>
  bool visit(const Q& key, F&& fn) const {
    return counted_read(key,
                        [&](const entry& p) {
                          std::invoke(fn, static_cast<const V&>(p.value));
                          return true;
                        })
        .has_value();
  }

  // Entries held now (expired ones the actor has not removed yet included).
  std::size_t size() const { return checked().size(); }

  cache_stats stats() const { return checked().stats(); }

  // Writes every live entry (encoded on the actor's thread: one instant), with the time each
  // has left to live. The format is the same on every backend.
  void dump(std::ostream& os) const {
    const std::string bytes = checked().dump_bytes();
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!os) throw error("warden::actor::dump: the stream failed");
  }

  // ---- casts. As on the table, Hash runs here so its exceptions reach the caller ----------
  void put(K key, V value) { cast_put(std::move(key), std::move(value), detail::kNoTtl, false); }
  template <class Rep, class Period>
  void put(K key, V value, std::chrono::duration<Rep, Period> ttl) {
    cast_put(std::move(key), std::move(value), detail::checked_ttl_ns(ttl, "warden::actor::put"),
             false);
  }
  bool try_put(K key, V value) {
    return cast_put(std::move(key), std::move(value), detail::kNoTtl, true);
  }
  void erase(K key) { cast_erase(std::move(key), false); }
  bool try_erase(K key) { return cast_erase(std::move(key), true); }
  // Removes every entry as one batch; asynchronous, ordered behind this thread's casts.
  void clear() { checked().clear(); }

  // ---- calls ------------------------------------------------------------------------------
  // Returns once every cast this thread sent before is applied; rethrows the first error of
  // those casts since this thread's last flush, if any.
  void flush() { checked().flush(); }

  V update_counter(const K& key, V delta)
    requires detail::counter_value<V>
  {
    return keyed<V>(
        key, [&](auto& s, auto& st, std::size_t h) { return calls::add(s, st, key, h, delta); });
  }

  bool insert_new(const K& key, V value) {
    return keyed<bool>(key, [&](auto& s, auto& st, std::size_t h) {
      return calls::insert_new(s, st, key, h, value);
    });
  }

  std::optional<V> take(const K& key) {
    return keyed<std::optional<V>>(
        key, [&](auto& s, auto& st, std::size_t h) { return calls::take(s, st, key, h); });
  }

  template <class F>
    requires std::is_invocable_r_v<std::optional<V>, F&, const std::optional<V>&>
  std::optional<V> update(const K& key, F&& fn) {
    return keyed<std::optional<V>>(
        key, [&](auto& s, auto& st, std::size_t h) { return calls::update(s, st, key, h, fn); });
  }

  bool put_if_version(const K& key, V value, std::uint64_t version) {
    return keyed<bool>(key, [&](auto& s, auto& st, std::size_t h) {
      return calls::put_if_version(s, st, key, h, value, version);
    });
  }

  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&, const K&, const V&>
  std::size_t erase_if(Pred&& pred) {
    return checked().erase_if(pred);
  }

  template <class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return checked().transact(fn, std::nullopt);
  }

  // As transact, with a deadline: if the actor has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it).
  template <class Rep, class Period, class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact_for(std::chrono::duration<Rep, Period> timeout,
                                                  F&& fn) {
    return checked().transact(fn, detail::deadline_after(timeout));
  }

  // Runs fn(view) on the actor's thread: one instant, since nothing else runs meanwhile.
  template <class F>
    requires std::invocable<F&, view&>
  std::invoke_result_t<F&, view&> snapshot(F&& fn) const {
    using R = std::invoke_result_t<F&, view&>;
    static_assert(!std::is_reference_v<R>, "a snapshot function must return by value");
    return checked().run_on_owner([&](engine& e) -> R {
      view v(&e, e.now());
      return std::invoke(fn, v);
    });
  }

  // As table::get_or_load (the loader runs in the caller's thread, never the actor's).
  template <class Loader>
    requires std::is_invocable_r_v<V, Loader&, const K&>
  V get_or_load(const K& key, Loader&& loader) {
    std::optional<V> hit = get(key);
    if (hit) return std::move(*hit);
    engine& e = checked();
    return calls::load_missing(e, key, e.hash(key), loader);
  }

  // As table::restore.
  void restore(std::istream& is) {
    engine& e = checked();
    e.restore(detail::read_dump<K, V>(is));
  }

  // As table::subscribe.
  template <class F>
    requires std::invocable<F&, const change_batch<K, V>&>
  [[nodiscard]] subscription subscribe(F fn) {
    return checked().subscribe(std::move(fn));
  }

 private:
  static std::unique_ptr<engine> make_engine(const actor_options& options, Hash hash, Eq eq) {
    detail::validate(options);
    return std::make_unique<engine>(options, std::move(hash), std::move(eq));
  }

  engine& checked() const {
    if (WARDEN_UNLIKELY(!e_)) throw closed_error();
    return *e_;
  }

  using calls = detail::keyed_calls<K, V>;

  // Hashes here (its exceptions reach the caller), then runs body(state, store, hash) on the
  // actor's thread.
  template <class R, class Body>
  R keyed(const K& key, Body&& body) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return e.template call_keyed<R>(
        h, [&](auto& s, auto& st, auto&) -> R { return body(s, st, h); }, "");
  }

  // A read on the owner: on_hit(entry) for a live entry, else nullopt.
  template <class Q, class OnHit>
  auto counted_read(const Q& key, OnHit on_hit) const {
    engine& e = checked();
    return e.counted_read(key, e.hash(key), on_hit);
  }

  bool cast_put(K&& key, V&& value, std::int64_t ttl, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return e.cast(typename engine::put_op{std::move(key), std::move(value), h, ttl}, try_only);
  }
  bool cast_erase(K&& key, bool try_only) {
    engine& e = checked();
    const std::size_t h = e.hash(key);
    return e.cast(typename engine::erase_op{std::move(key), h}, try_only);
  }

  std::unique_ptr<engine> e_;
};

}  // namespace warden
