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
  using store = typename engine::store;
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
    std::size_t size() const { return e_->map.size(); }
    template <class F>
    void for_each(F&& f) const {
      for (const auto& [k, v] : e_->map) {
        if (v.live_at(now_)) f(k, static_cast<const V&>(v.value));
      }
    }
    template <class F>
    void for_each_entry(F&& f) const {
      for (const auto& [k, v] : e_->map) {
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
      auto it = e_->map.find(detail::prehashed_key<K>{&key, e_->hasher(key)});
      if (it == e_->map.end() || !it->second.live_at(now_)) return nullptr;
      return &it->second;
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
    return counted_read(
        key, [](const entry& p) { return std::optional<V>(p.value); }, std::optional<V>());
  }
  bool contains(const K& key) const {
    return counted_read(key, [](const entry&) { return true; }, false);
  }
  std::optional<versioned<V>> get_versioned(const K& key) const {
    return counted_read(
        key,
        [](const entry& p) {
          return std::optional<versioned<V>>(versioned<V>{p.value, p.version});
        },
        std::optional<versioned<V>>());
  }
  // Runs fn(const V&) on the actor's thread, on the value in place; whether it was present.
  template <class F>
    requires std::invocable<F&, const V&>
  bool visit(const K& key, F&& fn) const {
    return counted_read(
        key,
        [&](const entry& p) {
          std::invoke(fn, static_cast<const V&>(p.value));
          return true;
        },
        false);
  }
  // Reads by a lookup key (as table::get(const Q&)), with no temporary K.
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  std::optional<V> get(const Q& key) const {
    return counted_read(
        key, [](const entry& p) { return std::optional<V>(p.value); }, std::optional<V>());
  }
  template <class Q>
    requires detail::lookup_key_for<K, Hash, Eq, Q>
  bool contains(const Q& key) const {
    return counted_read(key, [](const entry&) { return true; }, false);
  }
  template <class Q, class F>
    requires detail::lookup_key_for<K, Hash, Eq, Q> && std::invocable<F&, const V&>
  bool visit(const Q& key, F&& fn) const {
    return counted_read(
        key,
        [&](const entry& p) {
          std::invoke(fn, static_cast<const V&>(p.value));
          return true;
        },
        false);
  }

  // Entries held now (expired ones the actor has not removed yet included).
  std::size_t size() const {
    return call_owner([](engine& e) { return e.map.size(); });
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
    });
    const auto& c = e.state.counters();
    // relaxed: statistics.
    st.evictions = c.evictions.load(std::memory_order_relaxed);
    st.expirations = c.expirations.load(std::memory_order_relaxed);
    st.batches = c.batches.load(std::memory_order_relaxed);
    st.writes = c.writes.load(std::memory_order_relaxed);
    st.mailbox_depth = e.thread.box().depth();
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

  // Writes every live entry (encoded on the actor's thread: one instant), with the time each
  // has left to live. The format is the same on every backend.
  void dump(std::ostream& os) const {
    std::string bytes = call_owner([](engine& e) {
      detail::dump_writer<K, V> w;
      const std::int64_t t = e.state.now();
      for (const auto& [k, v] : e.map) {
        if (!v.live_at(t)) continue;
        w.add(k, v.value, v.deadline == detail::kNever ? detail::kDumpNoTtl : v.deadline - t);
      }
      return std::move(w).finish();
    });
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!os) throw error("warden::actor::dump: the stream failed");
  }

  // ---- casts. As on the table, Hash runs here so its exceptions reach the caller ----------
  void put(K key, V value) { cast_put(std::move(key), std::move(value), detail::kNoTtl, false); }
  template <class Rep, class Period>
  void put(K key, V value, std::chrono::duration<Rep, Period> ttl) {
    const std::int64_t ns = detail::saturating_ns(ttl);
    if (ns < 0) throw std::invalid_argument("warden::actor::put: negative ttl");
    cast_put(std::move(key), std::move(value), ns, false);
  }
  bool try_put(K key, V value) {
    return cast_put(std::move(key), std::move(value), detail::kNoTtl, true);
  }
  void erase(K key) { cast_erase(std::move(key), false); }
  bool try_erase(K key) { return cast_erase(std::move(key), true); }
  // Removes every entry as one batch; asynchronous, ordered behind this thread's casts.
  void clear() {
    engine& e = checked();
    not_on_owner(e);
    struct clear_call : engine::call_t {};
    auto* c = detail::new_detached_call<clear_call>(1);
    c->run = [](typename engine::call_t&, engine& en) {
      store st{en};
      en.state.clear(st);
    };
    try {
      e.thread.box().push_call(e.queue(my_slot(e)), typename engine::message{c, nullptr, 0});
    } catch (...) {
      c->claim->release();
      throw;
    }
  }

  // ---- calls ------------------------------------------------------------------------------
  // Returns once every cast this thread sent before is applied; rethrows the first error of
  // those casts since this thread's last flush, if any.
  void flush() {
    engine& e = checked();
    detail::linger_count::scope stay(e.lingering, true);
    detail::cache_slot& slot = my_slot(e);
    call_owner([](engine&) {});
    if (auto err = slot.take_cast_error(detail::current_record().generation)) {
      std::rethrow_exception(err);
    }
  }

  V update_counter(const K& key, V delta)
    requires detail::counter_value<V>
  {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) {
      store st{e};
      const std::int64_t t = e.state.now();
      const entry* cur = e.state.find_live(st, key, h, t);
      const V next = detail::wrapping_add(cur ? cur->value : V{}, delta);
      e.state.put(st, h, K(key), V(next), detail::kNoTtl, t);
      return next;
    });
  }

  bool insert_new(const K& key, V value) {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) {
      store st{e};
      const std::int64_t t = e.state.now();
      if (e.state.find_live(st, key, h, t) != nullptr) return false;
      e.state.put(st, h, K(key), std::move(value), detail::kNoTtl, t);
      return true;
    });
  }

  std::optional<V> take(const K& key) {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) -> std::optional<V> {
      store st{e};
      const entry* cur = e.state.find_live(st, key, h, e.state.now());
      if (cur == nullptr) return std::nullopt;
      std::optional<V> out(cur->value);
      e.state.erase(st, h, K(key));
      return out;
    });
  }

  template <class F>
    requires std::is_invocable_r_v<std::optional<V>, F&, const std::optional<V>&>
  std::optional<V> update(const K& key, F&& fn) {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) -> std::optional<V> {
      store st{e};
      const std::int64_t t = e.state.now();
      const entry* cur = e.state.find_live(st, key, h, t);
      const std::optional<V> before = cur ? std::optional<V>(cur->value) : std::nullopt;
      std::optional<V> after = std::invoke(fn, before);
      if (after) {
        e.state.put(st, h, K(key), V(*after), detail::kNoTtl, t);
      } else if (cur != nullptr) {
        e.state.erase(st, h, K(key));
      }
      return after;
    });
  }

  bool put_if_version(const K& key, V value, std::uint64_t version) {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) {
      store st{e};
      const std::int64_t t = e.state.now();
      const entry* cur = e.state.find_live(st, key, h, t);
      if ((cur ? cur->version : 0) != version) return false;
      e.state.put(st, h, K(key), std::move(value), detail::kNoTtl, t);
      return true;
    });
  }

  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&, const K&, const V&>
  std::size_t erase_if(Pred&& pred) {
    return call_owner([&](engine& e) {
      store st{e};
      auto keys = e.state.select(st, pred, e.state.now());
      std::size_t n = 0;
      for (auto& [k, h] : keys) n += e.state.erase(st, h, std::move(k)) ? 1 : 0;
      return n;
    });
  }

  template <class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return call_owner(transaction_body(fn), std::nullopt);
  }

  // As transact, with a deadline: if the actor has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it).
  template <class Rep, class Period, class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact_for(std::chrono::duration<Rep, Period> timeout,
                                                  F&& fn) {
    return call_owner(transaction_body(fn), detail::deadline_after(timeout));
  }

  // Runs fn(view) on the actor's thread: one instant, since nothing else runs meanwhile.
  template <class F>
    requires std::invocable<F&, view&>
  std::invoke_result_t<F&, view&> snapshot(F&& fn) const {
    using R = std::invoke_result_t<F&, view&>;
    static_assert(!std::is_reference_v<R>, "a snapshot function must return by value");
    return call_owner([&](engine& e) -> R {
      view v(&e, e.state.now());
      return std::invoke(fn, v);
    });
  }

  // As table::get_or_load (the loader runs in the caller's thread, never the actor's).
  template <class Loader>
    requires std::is_invocable_r_v<V, Loader&, const K&>
  V get_or_load(const K& key, Loader&& loader) {
    std::optional<V> hit = get(key);
    if (hit) return std::move(*hit);
    engine& en = checked();
    const std::size_t h = en.hasher(key);
    detail::thread_record& rec = detail::current_record();
    struct claimed {
      std::optional<V> value;
      std::shared_ptr<detail::load_state<V>> load;
      bool mine = false;
    };
    claimed c = call_owner([&](engine& e) {
      store st{e};
      claimed out;
      if (const entry* p = e.state.find_live(st, key, h, e.state.now())) {
        out.value.emplace(p->value);
        return out;
      }
      out.load = e.state.claim_load(key, h, &rec, &out.mine);
      return out;
    });
    if (c.value) return std::move(*c.value);
    auto& load = c.load;
    if (!c.mine) {
      if (load->loader == &rec) {
        throw reentrancy_error("get_or_load of a key from inside its own loader");
      }
      load->wait();
      if (load->error) std::rethrow_exception(load->error);
      return *load->value;
    }
    detail::cache_slot& slot = my_slot(en);
    if (en.record_stats) detail::cache_slot::bump(slot.loads);
    std::optional<V> value;
    std::exception_ptr error;
    try {
      value.emplace(std::invoke(loader, key));
    } catch (...) {
      error = std::current_exception();
      if (en.record_stats) detail::cache_slot::bump(slot.load_failures);
    }
    try {
      call_owner([&](engine& e) {
        store st{e};
        try {
          e.state.end_load(key, h, load.get());
          if (value && !load->superseded) {
            e.state.put(st, h, K(key), V(*value), detail::kNoTtl, e.state.now());
          }
        } catch (...) {
          // Not stored; the loaded value still reaches everyone.
        }
        try {
          load->value = value;
        } catch (...) {
          load->error = std::current_exception();
        }
        if (error) load->error = error;
        detail::must_succeed([&] { e.load_wakes.push_back(load); }, "waking loaders");
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

  // As table::restore.
  void restore(std::istream& is) {
    checked();
    auto entries = detail::read_dump<K, V>(is);
    call_owner([&](engine& e) {
      store st{e};
      using prepared = typename engine::state_type::prepared;
      std::vector<prepared> writes;
      writes.reserve(entries.size());
      const std::int64_t t = e.state.now();
      try {
        for (auto& d : entries) {
          const std::size_t h = detail::hash_retrying(e.hasher, d.key);
          prepared p = e.state.prepare_put(st, h, std::move(d.key), std::move(d.value),
                                           d.ttl == detail::kDumpNoTtl ? detail::kNoTtl : d.ttl, t);
          writes.push_back(std::move(p));  // reserved
        }
      } catch (...) {
        for (auto it = writes.rbegin(); it != writes.rend(); ++it) e.state.abort(*it);
        throw;
      }
      try {
        e.all_or_nothing([&] {
          for (auto& p : writes) e.state.apply(st, p);
        });
      } catch (...) {
        for (auto it = writes.rbegin(); it != writes.rend(); ++it) e.state.abort(*it);
        throw;
      }
      for (auto& p : writes) e.state.finish(p);
      e.state.evict_excess(st);
    });
  }

  // As table::subscribe.
  template <class F>
    requires std::invocable<F&, const change_batch<K, V>&>
  [[nodiscard]] subscription subscribe(F fn) {
    engine& en = checked();
    not_on_owner(en);
    const std::uint64_t id = en.change_feed->add(std::move(fn));
    subscription sub(en.change_feed, id);
    call_owner([](engine& e) {
      e.publish_changes();
      e.state.set_collecting(true);
    });
    return sub;
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

  static detail::cache_slot& my_slot(const engine& e) {
    return e.slots.mine([] {});
  }

  // A read on the owner: on_hit(entry) -> R for a live entry, else `miss`; counts the stats.
  template <class Q, class OnHit, class R>
  R counted_read(const Q& key, OnHit on_hit, R miss) const {
    engine& en = checked();
    const std::size_t h = detail::lookup_hash<K, Hash, Eq>(en.hasher, key);
    std::optional<R> out = call_owner([&](engine& e) -> std::optional<R> {
      const entry* p = e.read(key, h);
      if (p == nullptr) return std::nullopt;
      return std::optional<R>(on_hit(*p));
    });
    if (en.record_stats) detail::cache_slot::bump(out ? my_slot(en).hits : my_slot(en).misses);
    return out ? std::move(*out) : std::move(miss);
  }

  // The owner-side body of a transaction: run fn over a staged tx, then commit it.
  template <class F>
  static auto transaction_body(F& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    return [&fn](engine& e) -> R {
      tx_type tx(&find_live_thunk, &e, e.hasher, e.equal);
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn, tx);
        commit(e, tx);
      } else {
        R result = std::invoke(fn, tx);
        commit(e, tx);
        return result;
      }
    };
  }

  static const V* find_live_thunk(const void* ctx, const K& key, std::size_t h) {
    engine& e = *const_cast<engine*>(static_cast<const engine*>(ctx));
    store st{e};
    const entry* p = e.state.find_live(st, key, h, e.state.now());
    return p ? &p->value : nullptr;
  }

  // A transaction's staged writes, all or nothing.
  static void commit(engine& e, const tx_type& tx) {
    using prepared = typename engine::state_type::prepared;
    store st{e};
    std::vector<prepared> writes;
    writes.reserve(tx.staged().size());
    const std::int64_t t = e.state.now();
    try {
      for (const auto& [key, value] : tx.staged()) {
        const std::size_t h = detail::hash_retrying(e.hasher, key);
        if (value) {
          writes.push_back(e.state.prepare_put(st, h, K(key), V(*value), detail::kNoTtl, t));
        } else if (auto p = e.state.prepare_erase(st, h, K(key))) {
          writes.push_back(std::move(*p));
        }
      }
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) e.state.abort(*it);
      throw;
    }
    try {
      e.all_or_nothing([&] {
        for (auto& p : writes) e.state.apply(st, p);
      });
    } catch (...) {
      for (auto it = writes.rbegin(); it != writes.rend(); ++it) e.state.abort(*it);
      throw;
    }
    for (auto& p : writes) e.state.finish(p);
    e.state.evict_excess(st);
  }

  static detail::thread_record& not_on_owner(const engine& e) {
    if (e.is_owner_thread()) throw reentrancy_error("an actor operation from its own thread");
    return detail::current_record();
  }

  // Runs fn(engine&) on the actor's thread and returns its result (or rethrows); with a
  // deadline, cancels it (timeout_error) if the actor has not started it by then.
  template <class Fn>
  std::invoke_result_t<Fn&, engine&> call_owner(
      Fn&& fn, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) const {
    using R = std::invoke_result_t<Fn&, engine&>;
    engine& e = checked();
    detail::thread_record& rec = not_on_owner(e);
    e.check_not_on_pool("a call");
    if (e.change_feed->bounded() && e.change_feed->on_notifier_thread()) {
      throw reentrancy_error("a call from a subscriber of an actor with a bounded change feed");
    }
    struct fn_call : engine::call_t {
      std::remove_reference_t<Fn>* fn;
      std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
    };
    fn_call local;
    fn_call* call = deadline ? detail::new_timed_call<fn_call>(1) : &local;
    std::optional<detail::claim_ref> timed;
    if (deadline) timed.emplace(call->claim);
    fn_call& c = *call;
    c.fn = &fn;
    c.run = [](typename engine::call_t& base, engine& en) {
      auto& self = static_cast<fn_call&>(base);
      try {
        if constexpr (std::is_void_v<R>) {
          std::invoke(*self.fn, en);
        } else {
          self.result.emplace(std::invoke(*self.fn, en));
        }
      } catch (...) {
        self.error = std::current_exception();
      }
    };
    detail::begin_call<engine>(c, rec, 1);
    try {
      e.thread.box().push_call(e.queue(my_slot(e)), typename engine::message{&c, nullptr, 0});
    } catch (...) {
      detail::abandon_after_partial_post(c, 0, 1);
    }
    if (deadline) {
      detail::await_until(c, *deadline);
    } else {
      detail::await(c);
    }
    if constexpr (!std::is_void_v<R>) return std::move(*c.result);
  }

  bool cast_put(K&& key, V&& value, std::int64_t ttl, bool try_only) {
    const std::size_t h = checked().hasher(key);
    return cast_message(typename engine::put_op{std::move(key), std::move(value), h, ttl},
                        try_only);
  }
  bool cast_erase(K&& key, bool try_only) {
    const std::size_t h = checked().hasher(key);
    return cast_message(typename engine::erase_op{std::move(key), h}, try_only);
  }

  template <class Op>
  bool cast_message(Op&& op, bool try_only) {
    engine& e = checked();
    detail::thread_record& rec = not_on_owner(e);
    detail::cache_slot& slot = my_slot(e);
    typename engine::message m{std::forward<Op>(op), &slot, rec.generation};
    auto& q = e.queue(slot);
    if (try_only) return e.thread.box().try_push_cast(q, std::move(m));
    if (e.change_feed->on_notifier_thread()) {
      e.thread.box().push_call(q, std::move(m));  // a subscriber's cast never waits for room
    } else {
      e.thread.box().push_cast(q, std::move(m), [&] {
        e.check_not_on_pool("a cast waiting for room in a full mailbox");
      });
    }
    return true;
  }

  std::unique_ptr<engine> e_;
};

}  // namespace warden
