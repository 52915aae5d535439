// warden::actor<K, V>: the GenServer shape. One owner thread holds an absl::flat_hash_map;
// every operation, reads included, is a message to it. Casts (put/erase) return at once;
// calls (everything else) wait for the reply in the caller's thread record (brief spin, then
// a futex). The owner drains its whole mailbox per wake-up and replies to each call as soon
// as it has run. It is warden's honest baseline for the table, with the same meanings:
//  - per-producer FIFO casts; flush() = read-your-writes; a call is ordered behind its
//    thread's earlier casts (one mailbox);
//  - transact all-or-nothing, its exception carried to the caller; snapshot at one instant
//    (the owner runs it, so nothing else happens meanwhile);
//  - anything called on the actor from its own thread (inside a transact or snapshot
//    function) is a reentrancy_error; the owner never dies from user code;
//  - destruction drains: every accepted cast is applied, calls in flight complete.
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>

#include "warden/detail/hashing.hpp"
#include "warden/detail/owner.hpp"
#include "warden/detail/owner_map.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/transaction.hpp"

namespace warden {
namespace detail {

template <class K, class V, class Hash, class Eq>
struct actor_engine {
  using map_type = owner_map<K, V, Hash, Eq>;
  using call_t = call<actor_engine>;
  using message = detail::message<K, V, call_t>;
  using put_op = typename message::put_op;
  using erase_op = typename message::erase_op;

  actor_engine(const actor_options& opts, Hash hash, Eq eq)
      : id(registry::instance().acquire_id()),
        hasher(hash),
        map(0, inner_hash<K, Hash>{std::move(hash)}, inner_eq<K, Eq>{std::move(eq)}),
        thread(opts.mailbox_capacity) {
    thread.start(id, [this](std::vector<message>& batch) { process(batch); });
  }
  actor_engine(const actor_engine&) = delete;
  actor_engine& operator=(const actor_engine&) = delete;
  ~actor_engine() {
    thread.stop();
    lingering.wait_until_empty();
    registry::instance().release_id(id);
  }

  const V* find(const K& key, std::size_t h) const {
    auto it = map.find(prehashed_key<K>{&key, h});
    return it == map.end() ? nullptr : &it->second;
  }

  static const V* find_thunk(const void* self, const K& key, std::size_t h) {
    return static_cast<const actor_engine*>(self)->find(key, h);
  }

  // Applies a transaction's staged writes, all or nothing. Every copy is made before the map
  // is touched (this absl version does not keep a map consistent when a copy throws inside an
  // insert); the map then receives only moves, and each old value is moved into an undo log.
  // What can still throw (Eq in a probe, out of memory) rolls back by moving the old values
  // home again.
  void commit(const transaction<K, V, Hash, Eq>& tx) {
    struct prepared {
      K key;
      K undo_key;
      std::optional<V> value;
      std::size_t hash;
    };
    struct undo_entry {
      K key;
      std::size_t hash;
      std::optional<V> old;
    };
    std::vector<prepared> writes;
    writes.reserve(tx.staged().size());
    for (const auto& [key, value] : tx.staged()) {
      writes.push_back(prepared{K(key), K(key), value, hash_retrying(hasher, key)});
    }
    std::vector<undo_entry> undo;
    undo.reserve(writes.size());
    try {
      for (prepared& w : writes) {
        auto it = map.find(prehashed_key<K>{&w.key, w.hash});
        std::optional<V> old;
        if (it != map.end()) old.emplace(std::move(it->second));
        undo.push_back(undo_entry{std::move(w.undo_key), w.hash, std::move(old)});
        if (w.value) {
          if (it != map.end()) {
            it->second = std::move(*w.value);
          } else {
            upsert(map, w.hash, std::move(w.key), std::move(*w.value));
          }
        } else if (it != map.end()) {
          map.erase(it);
        }
      }
    } catch (...) {
      for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
        must_succeed(
            [&] {
              auto it = map.find(prehashed_key<K>{&u->key, u->hash});
              if (u->old) {
                if (it != map.end()) {
                  it->second = std::move(*u->old);
                } else {
                  upsert(map, u->hash, std::move(u->key), std::move(*u->old));
                }
              } else if (it != map.end()) {
                map.erase(it);
              }
            },
            "rolling back a transaction (Eq)");
      }
      throw;
    }
  }

  void process(std::vector<message>& batch) noexcept {
    const std::size_t n = batch.size();
    for (std::size_t i = 0; i < n; ++i) {
      // Overlaps the cache misses of queued writes, as the table's owners do.
      if (i + kPrefetchDistance < n) {
        const message& ahead = batch[i + kPrefetchDistance];
        if (auto* p = std::get_if<put_op>(&ahead.op)) {
          map.prefetch(prehashed_key<K>{&p->key, p->hash});
        } else if (auto* e = std::get_if<erase_op>(&ahead.op)) {
          map.prefetch(prehashed_key<K>{&e->key, e->hash});
        }
      }
      message& m = batch[i];
      if (auto* p = std::get_if<put_op>(&m.op)) {
        try {
          upsert(map, p->hash, std::move(p->key), std::move(p->value));
        } catch (...) {
          cast_errors.record(m.sender, m.generation, std::current_exception());
        }
      } else if (auto* e = std::get_if<erase_op>(&m.op)) {
        try {
          map.erase(prehashed_key<K>{&e->key, e->hash});
        } catch (...) {
          cast_errors.record(m.sender, m.generation, std::current_exception());
        }
      } else {
        call_t* c = std::get<call_t*>(m.op);
        if (!start_call(*c)) continue;  // cancelled at its deadline
        if (c->run != nullptr) c->run(*c, *this);
        complete(*c);
      }
    }
  }

  const std::uint32_t id;
  const Hash hasher;
  map_type map;  // owned by the actor thread
  cast_error_log cast_errors;
  linger_count lingering;        // flush() callers, who read cast_errors after their reply
  owner_thread<message> thread;  // last: started after everything it uses exists
};

}  // namespace detail

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class actor {
  using engine = detail::actor_engine<K, V, Hash, Eq>;
  static_assert(std::is_nothrow_move_constructible_v<K> && std::is_nothrow_move_constructible_v<V>,
                "warden::actor needs nothrow-movable keys and values: the map relocates them "
                "when it grows, and a throw there cannot be undone");

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
      auto it = map_->find(detail::prehashed_key<K>{&key, map_->hash_function().hash(key)});
      return it == map_->end() ? std::nullopt : std::optional<V>(it->second);
    }
    bool contains(const K& key) const {
      return map_->contains(detail::prehashed_key<K>{&key, map_->hash_function().hash(key)});
    }
    std::size_t size() const { return map_->size(); }
    template <class F>
    void for_each(F&& f) const {
      for (const auto& [k, v] : *map_) f(k, v);
    }

   private:
    friend class actor;
    explicit view(const typename engine::map_type* map) : map_(map) {}
    view(const view&) = delete;
    view& operator=(const view&) = delete;
    const typename engine::map_type* map_;
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

  // Reads are calls too: that is the actor's shape. Hash runs here, in the caller.
  std::optional<V> get(const K& key) const {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) -> std::optional<V> {
      const V* v = e.find(key, h);
      return v ? std::optional<V>(*v) : std::nullopt;
    });
  }
  bool contains(const K& key) const {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) { return e.find(key, h) != nullptr; });
  }
  std::size_t size() const {
    return call_owner([](engine& e) { return e.map.size(); });
  }

  // Casts. As on the table, Hash runs here so its exceptions reach the caller.
  void put(K key, V value) {
    const std::size_t h = checked().hasher(key);
    cast(typename engine::put_op{std::move(key), std::move(value), h}, false);
  }
  bool try_put(K key, V value) {
    const std::size_t h = checked().hasher(key);
    return cast(typename engine::put_op{std::move(key), std::move(value), h}, true);
  }
  void erase(K key) {
    const std::size_t h = checked().hasher(key);
    cast(typename engine::erase_op{std::move(key), h}, false);
  }
  bool try_erase(K key) {
    const std::size_t h = checked().hasher(key);
    return cast(typename engine::erase_op{std::move(key), h}, true);
  }

  // Returns once every cast this thread sent before is applied; rethrows the first error of
  // those casts since this thread's last flush, if any.
  void flush() {
    engine& e = checked();
    detail::linger_count::scope stay(e.lingering, true);
    call_owner([](engine&) {});
    if (auto err = e.cast_errors.take(detail::current_record())) std::rethrow_exception(err);
  }

  V update_counter(const K& key,
                   V delta) requires(std::is_arithmetic_v<V> && !std::is_same_v<V, bool>) {
    const std::size_t h = checked().hasher(key);
    return call_owner([&](engine& e) {
      auto it = e.map.find(detail::prehashed_key<K>{&key, h});
      if (it == e.map.end()) {
        K copy(key);  // copied outside the map: see commit()
        const V next = static_cast<V>(V{} + delta);
        detail::upsert(e.map, h, std::move(copy), V(next));
        return next;
      }
      it->second = static_cast<V>(it->second + delta);
      return it->second;
    });
  }

  template <class F>
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return call_owner(transaction_body(fn), std::nullopt);
  }

  // As transact, with a deadline: if the actor has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it).
  template <class Rep, class Period, class F>
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact_for(
      std::chrono::duration<Rep, Period> timeout, F&& fn) {
    return call_owner(transaction_body(fn),
                      std::chrono::steady_clock::now() +
                          std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
  }

  // Runs fn(view) on the actor's thread: one instant, since nothing else runs meanwhile.
  template <class F>
  requires std::invocable<F&, view&> std::invoke_result_t<F&, view&> snapshot(F&& fn)
  const {
    using R = std::invoke_result_t<F&, view&>;
    static_assert(!std::is_reference_v<R>, "a snapshot function must return by value");
    return call_owner([&](engine& e) -> R {
      view v(&e.map);
      return std::invoke(fn, v);
    });
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

  // The owner-side body of a transaction: run fn over a staged tx, then commit it.
  template <class F>
  static auto transaction_body(F& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    return [&fn](engine& e) -> R {
      tx_type tx(&engine::find_thunk, &e, e.hasher, e.map.key_eq().eq);
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn, tx);
        e.commit(tx);
      } else {
        R result = std::invoke(fn, tx);
        e.commit(tx);
        return result;
      }
    };
  }

  static detail::thread_record& not_on_owner(const engine& e) {
    detail::thread_record& rec = detail::current_record();
    if (rec.owner_of == e.id) throw reentrancy_error("an actor operation from its own thread");
    return rec;
  }

  // Runs fn(engine&) on the actor's thread and returns its result (or rethrows); with a
  // deadline, cancels it (timeout_error) if the actor has not started it by then.
  template <class Fn>
  std::invoke_result_t<Fn&, engine&> call_owner(
      Fn&& fn, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) const {
    using R = std::invoke_result_t<Fn&, engine&>;
    engine& e = checked();
    detail::thread_record& rec = not_on_owner(e);
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
      e.thread.box().push_call(typename engine::message{&c, &rec, 0});
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

  bool cast(typename engine::put_op&& op, bool try_only) {
    return cast_message(std::move(op), try_only);
  }
  bool cast(typename engine::erase_op&& op, bool try_only) {
    return cast_message(std::move(op), try_only);
  }

  template <class Op>
  bool cast_message(Op&& op, bool try_only) {
    engine& e = checked();
    detail::thread_record& rec = not_on_owner(e);
    typename engine::message m{std::forward<Op>(op), &rec, rec.generation};
    if (try_only) return e.thread.box().try_push_cast(std::move(m));
    e.thread.box().push_cast(std::move(m), [] {});
    return true;
  }

  std::unique_ptr<engine> e_;
};

}  // namespace warden
