// warden::table<K, V>: the owner table. Reads run in the caller's thread with no lock, no
// syscall and no retry; one owner thread (or several, sharded) serializes every write and
// publishes each batch as a whole. The engine and its invariants are described in
// detail/table_engine.hpp; this header is the public handle.
//
// Guarantees (also in README.md):
//  - Any thread may call anything, except that the table must not be destroyed or moved
//    while other threads use it (as with any object).
//  - get/contains/size/snapshot/pin: lock-free, in the caller; see a published state.
//  - put/erase (casts): return once queued; applied by the key's owner in the order each
//    thread sent them (per-producer FIFO); visible to all readers at the owner's next
//    publication, which follows as soon as the owner has drained its mailbox.
//  - flush(): returns once every cast this thread sent before is applied and visible.
//  - update_counter/transact (calls): ordered behind the calling thread's earlier casts;
//    return after their writes are published (read-your-writes).
//  - A published batch or transaction is atomic for snapshot readers, across owners too.
//  - Errors: closed_error on a moved-from table; reentrancy_error for a call or flush made
//    from this table's owner thread (e.g. inside a transact function) or from inside a
//    snapshot/pin of this table; exceptions from user code (the transact function, Hash,
//    copies) reach the caller unchanged. A cast whose application on the owner throws is
//    dropped (the rest of its batch still applies) and its exception is rethrown by the
//    sending thread's next flush().
#pragma once

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <absl/hash/hash.h>

#include "warden/detail/table_engine.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/transaction.hpp"

namespace warden {

template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
class table {
  using engine = detail::table_engine<K, V, Hash, Eq>;
  static_assert(std::is_nothrow_move_constructible_v<K> && std::is_nothrow_move_constructible_v<V>,
                "warden::table needs nothrow-movable keys and values: the maps relocate them "
                "when they grow, and a throw there cannot be undone");

 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;
  using tx_type = transaction<K, V, Hash, Eq>;

  // What a snapshot function receives: every read sees the table at one instant.
  class view {
   public:
    std::optional<V> get(const K& key) const {
      const V* v = e_->find_published(pub_, key, e_->hasher(key));
      return v ? std::optional<V>(*v) : std::nullopt;
    }
    bool contains(const K& key) const {
      return e_->find_published(pub_, key, e_->hasher(key)) != nullptr;
    }
    std::size_t size() const {
      std::size_t n = 0;
      for (std::size_t s = 0; s <= e_->shard_mask; ++s) n += e_->published_map(pub_, s).size();
      return n;
    }
    // Calls f(key, value) for every entry, in no particular order.
    template <class F>
    void for_each(F&& f) const {
      for (std::size_t s = 0; s <= e_->shard_mask; ++s) {
        for (const auto& [k, v] : e_->published_map(pub_, s)) f(k, v);
      }
    }

   protected:
    view(const engine* e, std::uint64_t pub) : e_(e), pub_(pub) {}
    view(const view&) = delete;
    view& operator=(const view&) = delete;
    friend class table;

    const engine* e_;
    std::uint64_t pub_;
  };
  using view_type = view;

  // A pinned read section: announces the reader once, then serves any number of reads at
  // one instant, as a snapshot does. Hold it briefly: while it is open, the owner cannot
  // write the copy it reads (writes queue up and are applied once it closes). Pins and
  // snapshots on one thread must close in reverse order of opening.
  class pinned : public view {
   public:
    ~pinned() { detail::exit_read(depth_); }

   private:
    friend class table;
    pinned(const engine* e, typename engine::opened_section s) : view(e, s.pub), depth_(s.depth) {}
    unsigned depth_;
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
  // destroyed while other threads are still inside its calls, nor by a thread that holds a
  // pin or snapshot of it (the draining owner would wait for that reader).
  ~table() = default;

  // ---- reads: lock-free, in the caller's thread ----------------------------------------
  std::optional<V> get(const K& key) const {
    const engine& e = checked();
    const std::size_t h = e.hasher(key);
    const auto s = e.open_read();
    detail::section_closer close(s.depth);
    const V* v = e.find_published(s.pub, key, h);
    return v ? std::optional<V>(*v) : std::nullopt;
  }

  bool contains(const K& key) const {
    const engine& e = checked();
    const std::size_t h = e.hasher(key);
    const auto s = e.open_read();
    detail::section_closer close(s.depth);
    return e.find_published(s.pub, key, h) != nullptr;
  }

  // Entries visible now (O(shards)).
  std::size_t size() const {
    return snapshot([](const view& v) { return v.size(); });
  }

  // Runs fn(view) in the caller's thread over one instant of the whole table (all owners).
  template <class F>
  requires std::invocable<F&, view&>
  decltype(auto) snapshot(F&& fn) const {
    const engine& e = checked();
    const auto s = e.open_read();
    detail::section_closer close(s.depth);
    view v(&e, s.pub);
    return std::invoke(fn, v);
  }

  // Diagnostics: how many times the owners have switched their readers between light and
  // fenced announcements (table_options::asymmetric_fence).
  std::uint64_t fence_mode_switches() const noexcept {
    // relaxed: a statistic.
    return e_ ? e_->fence_mode_switches.load(std::memory_order_relaxed) : 0;
  }

  [[nodiscard]] pinned pin() const {
    const engine& e = checked();
    return pinned(&e, e.open_read());
  }

  // ---- casts ------------------------------------------------------------------------------
  // Queues a write and returns. Bounded mailbox: waits for room when full (reentrancy_error
  // instead if waiting could deadlock). Hash and the copies of key and value run here, so
  // their exceptions reach the caller and nothing is queued.
  void put(K key, V value) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    cast(e, h, typename engine::put_op{std::move(key), std::move(value), h}, /*try_only=*/false);
  }
  // As put, but returns false instead of waiting when the mailbox is full.
  bool try_put(K key, V value) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return cast(e, h, typename engine::put_op{std::move(key), std::move(value), h}, true);
  }
  void erase(K key) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    cast(e, h, typename engine::erase_op{std::move(key), h}, false);
  }
  bool try_erase(K key) {
    engine& e = checked();
    const std::size_t h = e.hasher(key);
    return cast(e, h, typename engine::erase_op{std::move(key), h}, true);
  }

  // ---- calls ------------------------------------------------------------------------------
  // Returns once every cast this thread sent before is applied and visible to all readers.
  // Rethrows the first error of this thread's casts since its last flush, if any.
  void flush() {
    engine& e = checked();
    detail::thread_record& rec = calling_record(e, "flush");
    detail::linger_count::scope stay(e.lingering, true);
    typename engine::call_t c;
    post_to_all(e, rec, c);
    detail::await(c);
    forget_dirty_owners(e, rec);
    if (auto err = e.cast_errors.take(rec)) std::rethrow_exception(err);
  }

  // Atomically adds `delta` to the value of `key` (absent: 0) and returns the new value.
  V update_counter(const K& key,
                   V delta) requires(std::is_arithmetic_v<V> && !std::is_same_v<V, bool>) {
    engine& e = checked();
    detail::thread_record& rec = calling_record(e, "update_counter");
    detail::linger_count::scope stay(e.lingering, e.owners.size() > 1);
    struct counter_call : engine::call_t {
      const K* key;
      std::size_t hash;
      V delta;
      V result{};
    };
    counter_call c;
    c.key = &key;
    c.hash = e.hasher(key);
    c.delta = delta;
    c.run = [](typename engine::call_t& base, typename engine::owner& o) {
      auto& self = static_cast<counter_call&>(base);
      try {
        engine& en = *o.engine;
        en.ensure_idle_ready(o);
        const V* cur = en.find_current(*self.key, self.hash);
        const V next = static_cast<V>((cur ? *cur : V{}) + self.delta);
        en.write(o, self.hash, K(*self.key), std::optional<V>(next));
        self.result = next;
      } catch (...) {
        self.error = std::current_exception();
      }
    };
    const std::uint8_t target = e.shard_owner[e.shard_of(c.hash)];
    flush_other_dirty_owners(e, rec, target);
    post_one(e, rec, c, target);
    return c.result;
  }

  // Runs fn(tx) on the owner; all of its writes become visible at once or, if fn throws,
  // not at all (the exception reaches the caller unchanged). tx.get/contains see the
  // transaction's own writes. With several owners the transaction briefly stops them all,
  // and is atomic across them.
  template <class F>
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    return run_transaction(fn, std::nullopt);
  }

  // As transact, with a deadline: if the owner has not started fn when `timeout` has passed,
  // the transaction is cancelled, leaves no trace, and timeout_error is thrown. One already
  // running completes (and this call waits for it), as a gen_server call would.
  template <class Rep, class Period, class F>
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact_for(
      std::chrono::duration<Rep, Period> timeout, F&& fn) {
    return run_transaction(fn, std::chrono::steady_clock::now() +
                                   std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
  }

 private:
  template <class F>
  std::invoke_result_t<F&, tx_type&> run_transaction(
      F& fn, std::optional<std::chrono::steady_clock::time_point> deadline) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    engine& e = checked();
    detail::thread_record& rec = calling_record(e, "transact");
    detail::linger_count::scope stay(e.lingering, e.owners.size() > 1);
    struct tx_call : engine::call_t {
      F* fn;
      std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
      // Cross-owner barrier (owners > 1).
      std::atomic<std::uint32_t> arrived{0};
      std::atomic<std::uint32_t> released{0};
      std::uint32_t owner_count = 1;
    };
    const int parts = static_cast<int>(e.owners.size());
    tx_call local;
    tx_call* call = deadline ? detail::new_timed_call<tx_call>(parts) : &local;
    std::optional<detail::claim_ref> timed;
    if (deadline) timed.emplace(call->claim);
    tx_call& c = *call;
    c.fn = &fn;
    c.owner_count = static_cast<std::uint32_t>(parts);
    c.run = [](typename engine::call_t& base, typename engine::owner& o) {
      auto& self = static_cast<tx_call&>(base);
      engine& en = *o.engine;
      if (self.owner_count > 1) {
        // Publish what came before, ready the idle copies, then meet the other owners.
        en.publish_and_reply(o);
        en.ensure_idle_ready(o);
        // acq_rel: releases this owner's state to the coordinator; the last arrival
        // acquires every other owner's (all RMWs on one atomic form a release sequence).
        if (self.arrived.fetch_add(1, std::memory_order_acq_rel) + 1 != self.owner_count) {
          detail::wait_for_change(self.released, 0);  // acquire: the coordinator's writes
          return;
        }
      } else {
        en.ensure_idle_ready(o);
      }
      try {
        tx_type tx(&engine::find_current_thunk, &en, en.hasher, en.equal);
        if constexpr (std::is_void_v<R>) {
          std::invoke(*self.fn, tx);
        } else {
          self.result.emplace(std::invoke(*self.fn, tx));
        }
        const std::uint64_t touched = en.commit(tx);
        if (self.owner_count > 1 && touched != 0) {
          // One flip for every owner written: the transaction appears whole.
          // seq_cst: as in publish_and_reply.
          en.published.fetch_xor(touched, std::memory_order_seq_cst);
          for (auto& other : en.owners) {
            if (touched & (std::uint64_t{1} << other->index)) {
              other->dirty = false;
              other->idle_ready = false;
            }
          }
        }
      } catch (...) {
        self.error = std::current_exception();
      }
      if (self.owner_count > 1) {
        // release: the other owners read their updated state after waking.
        self.released.store(1, std::memory_order_release);
        self.released.notify_all();
      }
    };
    detail::begin_call<typename engine::owner>(c, rec, parts);
    if (parts == 1) {
      post_parts(e, c, 1);
    } else {
      std::lock_guard lock(e.cross_post_mutex);
      post_parts(e, c, parts);
    }
    if (deadline) {
      detail::await_until(c, *deadline);
    } else {
      detail::await(c);
    }
    if (parts > 1) forget_dirty_owners(e, rec);
    if constexpr (!std::is_void_v<R>) return std::move(*c.result);
  }

  static std::unique_ptr<engine> make_engine(const table_options& options, Hash hash, Eq eq) {
    detail::validate(options);
    return std::make_unique<engine>(options, std::move(hash), std::move(eq));
  }

  engine& checked() const {
    if (WARDEN_UNLIKELY(!e_)) throw closed_error();
    return *e_;
  }

  // The calling thread's record, after refusing calls that would deadlock.
  static detail::thread_record& calling_record(const engine& e, const char* what) {
    detail::thread_record& rec = detail::current_record();
    if (rec.owner_of == e.id) {
      throw reentrancy_error(std::string(what) + " from the table's own owner thread");
    }
    if (detail::in_read_section(e.id)) {
      throw reentrancy_error(std::string(what) + " inside a snapshot or pin of the same table");
    }
    return rec;
  }

  template <class Op>
  bool cast(engine& e, std::size_t h, Op&& op, bool try_only) {
    detail::thread_record& rec = detail::current_record();
    const std::uint8_t target = e.shard_owner[e.shard_of(h)];
    typename engine::message m{std::forward<Op>(op), &rec, rec.generation};
    auto& box = e.owners[target]->thread.box();
    if (try_only) {
      if (!box.try_push_cast(std::move(m))) return false;
    } else {
      box.push_cast(std::move(m), [&] {
        if (rec.owner_of == e.id || detail::in_read_section(e.id)) {
          throw reentrancy_error(
              "a cast waiting for room in a full mailbox from the owner thread or inside a "
              "snapshot of the same table");
        }
      });
    }
    if (e.owners.size() > 1) {
      if (rec.dirty_table != e.id) {
        // Tracking covers one table per thread; losing another table's set is safe because
        // a missing entry means "assume every owner is dirty".
        rec.dirty_table = e.id;
        rec.dirty_owners = ~std::uint64_t{0};
      }
      rec.dirty_owners |= std::uint64_t{1} << target;
    }
    return true;
  }

  // A call is ordered behind this thread's earlier casts to every owner: flush the owners
  // (other than the call's target, whose mailbox orders it anyway) it may have cast to.
  void flush_other_dirty_owners(engine& e, detail::thread_record& rec, std::uint8_t target) {
    if (e.owners.size() == 1) return;
    std::uint64_t dirty = rec.dirty_table == e.id ? rec.dirty_owners : ~std::uint64_t{0};
    dirty &= ~(std::uint64_t{1} << target);
    for (std::size_t i = 0; i < e.owners.size(); ++i) {
      if ((dirty >> i) & 1) {
        typename engine::call_t c;
        post_one(e, rec, c, static_cast<std::uint8_t>(i));
      }
    }
    forget_dirty_owners(e, rec);
  }

  // After a call that flushed every owner, this thread has no unflushed casts to `e`.
  static void forget_dirty_owners(const engine& e, detail::thread_record& rec) {
    rec.dirty_table = e.id;
    rec.dirty_owners = 0;
  }

  static void post_one(engine& e, detail::thread_record& rec, typename engine::call_t& c,
                       std::uint8_t target) {
    detail::begin_call<typename engine::owner>(c, rec, 1);
    e.owners[target]->thread.box().push_call(typename engine::message{&c, &rec, 0});
    detail::await(c);
  }

  static void post_parts(engine& e, typename engine::call_t& c, int parts) {
    int posted = 0;
    try {
      for (; posted < parts; ++posted) {
        e.owners[static_cast<std::size_t>(posted)]->thread.box().push_call(
            typename engine::message{&c, c.caller, 0});
      }
    } catch (...) {
      detail::abandon_after_partial_post(c, posted, parts);
    }
  }

  static void post_to_all(engine& e, detail::thread_record& rec, typename engine::call_t& c) {
    const int parts = static_cast<int>(e.owners.size());
    detail::begin_call<typename engine::owner>(c, rec, parts);
    post_parts(e, c, parts);
  }

  std::unique_ptr<engine> e_;
};

}  // namespace warden
