// What an owner knows and does beyond its map: versions, the size policy, expiry, loads in
// flight and the changes of the batch in progress. One `owner_state` per owner (the table's
// owners, the actor), used only on that owner's thread (or by a coordinator while the owner
// waits at a barrier). Both backends apply every write through here, so the meanings of the
// contract are written once.
//
// A write goes through three steps, so that a transaction can apply many writes all or
// nothing and a cast that throws leaves no trace:
//   prepare  everything that may throw and changes nothing the cache shows: Eq in lookups,
//            copies of keys and values (for the change feed, the tracking node), allocation;
//   apply    the map operation (Store::upsert / Store::erase), strong guarantee;
//   finish   bookkeeping that cannot fail: policy, timer wheel, change list, loads, stats.
// Evictions and expirations that follow are removals the owner decides itself; they take
// their key from the tracking node and must succeed (hashing.hpp, must_succeed).
//
// Store: the backend's view of the map this owner writes (the table: the owner's idle
// copies, logged for replay; the actor: its map). It provides find(key, h) -> stored<V>*,
// upsert(h, K&&, stored<V>&&), erase(K&&, h), set_deadline(const K&, h, deadline),
// for_each(f(const K&, const stored<V>&)), clear(), size().
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "warden/change_feed.hpp"
#include "warden/clock.hpp"
#include "warden/detail/access_log.hpp"
#include "warden/detail/entry.hpp"
#include "warden/detail/feed.hpp"
#include "warden/detail/hashing.hpp"
#include "warden/detail/loading.hpp"
#include "warden/detail/timer_wheel.hpp"
#include "warden/detail/tracking.hpp"
#include "warden/detail/wtinylfu.hpp"

namespace warden::detail {

// The cache-wide settings an owner needs (from table_options / actor_options).
struct cache_config {
  std::size_t max_size = 0;              // 0: unbounded
  std::int64_t expire_after_write = 0;   // ns; 0: never
  std::int64_t expire_after_access = 0;  // ns; 0: never
  const warden::clock* clock = nullptr;
  bool record_stats = false;

  bool records_reads() const noexcept { return max_size != 0 || expire_after_access != 0; }
};

// Counters an owner keeps; summed by stats(). Relaxed atomics written only by the owner.
struct owner_counters {
  std::atomic<std::uint64_t> evictions{0}, expirations{0}, batches{0}, writes{0}, records{0},
      publish_ns{0};
  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    // relaxed load and store: only the owner writes; stats() needs no order.
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// `a + b` for a counter, wrapping as unsigned arithmetic would instead of overflowing (signed
// overflow is undefined behaviour); floating point adds as usual.
template <class V>
V wrapping_add(V a, V b) noexcept {
  if constexpr (std::is_integral_v<V>) {
    using U = std::make_unsigned_t<V>;
    return static_cast<V>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return static_cast<V>(a + b);
  }
}

template <class K, class V, class Hash, class Eq>
class owner_state {
 public:
  using entry = stored<V>;
  using change_type = change<K, V>;

  // A write between prepare and finish (see the file comment).
  struct prepared {
    std::size_t hash;
    std::optional<K> key;        // moved into the store by apply
    std::optional<entry> value;  // nullopt: an erase
    std::optional<std::uint32_t> node;
    bool new_node = false;
    bool keep_tracking = true;
    std::int64_t write_deadline = kNever;
    bool fixed_ttl = false;
    std::optional<change_type> change;
    load_state<V>* load = nullptr;  // a load in flight for this key, superseded by the write
  };

  owner_state(const cache_config& cfg, unsigned index, std::size_t budget, const Hash& hash,
              const Eq& eq)
      : cfg_(cfg),
        index_(index),
        budget_(budget),
        hasher_(hash),
        tracked_(eq),
        loads_(0, inner_hash<K, Hash>{hash}, inner_eq<K, Eq>{eq}) {
    if (budget_ != 0) policy_.emplace(budget_);
    wheel_.emplace(now());
  }
  owner_state(const owner_state&) = delete;
  owner_state& operator=(const owner_state&) = delete;

  std::int64_t now() const noexcept { return now_ns(cfg_.clock); }
  const cache_config& config() const noexcept { return cfg_; }
  owner_counters& counters() noexcept { return counters_; }
  const owner_counters& counters() const noexcept { return counters_; }

  // Never 0; unique across owners (index in the low bits) and per key.
  std::uint64_t next_version() noexcept { return (++version_counter_ << kOwnerBits) | index_; }

  // ---- change collection -------------------------------------------------------------------
  bool collecting() const noexcept { return collecting_; }
  void set_collecting(bool on) noexcept { collecting_ = on; }
  std::vector<change_type>& changes() noexcept { return changes_; }

  // ---- reads on the owner --------------------------------------------------------------------
  template <class Store>
  const entry* find_live(Store& s, const K& key, std::size_t h, std::int64_t t) const {
    const entry* e = s.find(key, h);
    return e != nullptr && e->live_at(t) ? e : nullptr;
  }

  // ---- the three steps ---------------------------------------------------------------------
  template <class Store>
  prepared prepare_put(Store& /*s*/, std::size_t h, K&& key, V&& value, std::int64_t ttl,
                       std::int64_t t) {
    prepared p;
    p.hash = h;
    std::int64_t deadline = kNever;
    if (ttl != kNoTtl) {
      deadline = add_saturating(t, ttl);
      p.write_deadline = deadline;
      p.fixed_ttl = true;
    } else {
      if (cfg_.expire_after_write != 0) {
        p.write_deadline = add_saturating(t, cfg_.expire_after_write);
        deadline = p.write_deadline;
      }
      if (cfg_.expire_after_access != 0) {
        deadline = std::min(deadline, add_saturating(t, cfg_.expire_after_access));
      }
    }
    p.keep_tracking = policy_.has_value() || deadline != kNever;
    if (tracked_.size() != 0) p.node = tracked_.find(key, h);  // Eq may throw
    if (p.keep_tracking && !p.node) {
      p.node = tracked_.add(key, h);  // copy, allocation may throw
      p.new_node = true;
    }
    try {
      if (collecting_) p.change.emplace(change_type{K(key), V(value), change_cause::write});
      p.load = find_load(key, h);
    } catch (...) {
      abort(p);
      throw;
    }
    p.key.emplace(std::move(key));
    p.value.emplace(entry{std::move(value), next_version(), deadline});
    return p;
  }

  // nullopt when the key is absent (an erase of nothing changes nothing, but it still wins
  // over a load in flight).
  template <class Store>
  std::optional<prepared> prepare_erase(Store& s, std::size_t h, K&& key) {
    const entry* cur = s.find(key, h);  // Eq may throw
    if (cur == nullptr) {
      if (load_state<V>* l = find_load(key, h)) l->superseded = true;
      return std::nullopt;
    }
    prepared p;
    p.hash = h;
    p.keep_tracking = false;
    if (tracked_.size() != 0) p.node = tracked_.find(key, h);
    if (collecting_) {
      p.change.emplace(change_type{K(key), std::optional<V>(cur->value), change_cause::erase});
    }
    p.load = find_load(key, h);
    p.key.emplace(std::move(key));
    return p;
  }

  template <class Store>
  void apply(Store& s, prepared& p) {
    if (p.value) {
      s.upsert(p.hash, std::move(*p.key), std::move(*p.value));
    } else {
      s.erase(std::move(*p.key), p.hash);
    }
  }

  // Undoes what prepare did (the tracking node it added); for a write never applied.
  void abort(prepared& p) noexcept {
    if (p.new_node) {
      tracked_.remove(*p.node);
      p.new_node = false;
      p.node.reset();
    }
  }

  void finish(prepared& p) noexcept {
    if (p.node) {
      const std::uint32_t n = *p.node;
      if (!p.keep_tracking) {
        untrack(n);
      } else {
        auto& nd = tracked_.at(n);
        nd.write_deadline = p.write_deadline;
        nd.fixed_ttl = p.fixed_ttl;
        const std::int64_t deadline = p.value ? p.value->deadline : kNever;
        nd.deadline = deadline;
        if (policy_) {
          if (p.new_node) {
            must_succeed([&] { policy_->add(n, p.hash); }, "growing the eviction policy");
          } else {
            policy_->record_hit(n);
          }
        }
        if (deadline != kNever) {
          must_succeed([&] { wheel_->schedule(n, deadline); }, "growing the timer wheel");
        } else {
          wheel_->cancel(n);
        }
      }
    }
    if (p.change) changes_.push_back(std::move(*p.change));
    if (p.load != nullptr) p.load->superseded = true;
    owner_counters::add(counters_.writes, 1);
  }

  // ---- whole operations ----------------------------------------------------------------------
  template <class Store>
  void put(Store& s, std::size_t h, K&& key, V&& value, std::int64_t ttl, std::int64_t t) {
    prepared p = prepare_put(s, h, std::move(key), std::move(value), ttl, t);
    try {
      apply(s, p);
    } catch (...) {
      abort(p);
      throw;
    }
    finish(p);
    evict_excess(s);
  }

  template <class Store>
  bool erase(Store& s, std::size_t h, K&& key) {
    std::optional<prepared> p = prepare_erase(s, h, std::move(key));
    if (!p) return false;
    apply(s, *p);  // erases cannot fail (Store::erase retries)
    finish(*p);
    return true;
  }

  // Evicts while the policy is over budget: the owner's bound holds before it publishes.
  template <class Store>
  void evict_excess(Store& s) noexcept {
    if (!policy_) return;
    policy_->evict_excess([&](std::uint32_t n) {
      wheel_->cancel(n);
      remove_tracked(s, n, change_cause::evict);
      owner_counters::add(counters_.evictions, 1);
    });
  }

  // Removes every entry whose deadline has passed by `t`.
  template <class Store>
  void expire(Store& s, std::int64_t t) noexcept {
    wheel_->advance(t, [&](std::uint32_t n) {
      if (policy_) policy_->remove(n);
      remove_tracked(s, n, change_cause::expire);
      owner_counters::add(counters_.expirations, 1);
    });
  }

  // When the next entry expires (kNever: none), on the cache's clock.
  std::int64_t next_expiry() const noexcept { return wheel_->next_deadline(); }

  // A reader's access record: teaches the policy and extends an access deadline.
  template <class Store>
  void on_access(Store& s, std::uint64_t h, std::int64_t t) noexcept {
    owner_counters::add(counters_.records, 1);
    if (t == kMissRecord) {
      if (policy_) policy_->record_miss(h);
      return;
    }
    if (tracked_.size() == 0) return;
    const std::optional<std::uint32_t> n = tracked_.find_hash(h);
    if (!n) return;
    if (policy_) policy_->record_hit(*n);
    extend_access(s, *n, t);
  }

  // A read served on the owner (actor gets, owner-side calls that read).
  template <class Store>
  // `key`: the stored key of the live entry read, or null for a miss.
  void on_owner_read(Store& s, const K* key, std::size_t h, std::int64_t t) {
    if (!cfg_.records_reads()) return;
    if (key == nullptr) {
      if (policy_) policy_->record_miss(h);
      return;
    }
    if (tracked_.size() == 0) return;
    const std::optional<std::uint32_t> n = tracked_.find(*key, h);  // Eq may throw
    if (!n) return;
    if (policy_) policy_->record_hit(*n);
    extend_access(s, *n, t);
  }

  // Removes everything (one batch): each entry is an erase in the change list.
  template <class Store>
  void clear(Store& s) noexcept {
    if (collecting_) {
      s.for_each([&](const K& k, const entry& e) {
        must_succeed(
            [&] {
              changes_.push_back(change_type{K(k), std::optional<V>(e.value), change_cause::erase});
            },
            "copying an entry for the change feed");
      });
    }
    for (auto& [k, l] : loads_) l->superseded = true;
    s.clear();
    tracked_.clear();
    if (policy_) policy_.emplace(budget_);
    wheel_.emplace(now());
  }

  // Keys (with hashes) of the live entries for which pred(key, value) holds. User code runs
  // here and may throw; nothing is changed.
  template <class Store, class Pred>
  std::vector<std::pair<K, std::size_t>> select(Store& s, Pred& pred, std::int64_t t) const {
    std::vector<std::pair<K, std::size_t>> keys;
    s.for_each([&](const K& k, const entry& e) {
      if (e.live_at(t) && pred(k, static_cast<const V&>(e.value))) {
        keys.emplace_back(K(k), hash_retrying(hasher_, k));
      }
    });
    return keys;
  }

  // ---- loads ---------------------------------------------------------------------------------
  // The load in flight for `key`, registering one for `loader` if there is none (then `*mine`
  // is true). Allocation may throw.
  std::shared_ptr<load_state<V>> claim_load(const K& key, std::size_t h,
                                            const thread_record* loader, bool* mine) {
    auto it = loads_.find(prehashed_key<K>{&key, h});
    if (it != loads_.end()) {
      *mine = false;
      return it->second;
    }
    auto st = std::make_shared<load_state<V>>(loader);
    K copy(key);
    upsert(loads_, h, std::move(copy), std::shared_ptr<load_state<V>>(st));
    *mine = true;
    return st;
  }
  void end_load(const K& key, std::size_t h, const load_state<V>* st) {
    auto it = loads_.find(prehashed_key<K>{&key, h});
    if (it != loads_.end() && it->second.get() == st) loads_.erase(it);
  }

  std::size_t tracked_count() const noexcept { return tracked_.size(); }
  std::size_t budget() const noexcept { return budget_; }
  const wtinylfu* policy() const noexcept { return policy_ ? &*policy_ : nullptr; }

 private:
  static constexpr unsigned kOwnerBits = 5;  // 32 owners at most (publication.hpp)
  // Reads within this of the deadline last set by the owner are not worth a new one.
  static constexpr std::int64_t kAccessResolution = 1'000'000;  // 1 ms

  load_state<V>* find_load(const K& key, std::size_t h) const {
    if (loads_.empty()) return nullptr;
    auto it = loads_.find(prehashed_key<K>{&key, h});  // Eq may throw
    return it == loads_.end() ? nullptr : it->second.get();
  }

  template <class Store>
  void extend_access(Store& s, std::uint32_t n, std::int64_t t) noexcept {
    if (cfg_.expire_after_access == 0) return;
    auto& nd = tracked_.at(n);
    if (nd.fixed_ttl || nd.deadline == kNever) return;
    const std::int64_t d = std::min(nd.write_deadline, add_saturating(t, cfg_.expire_after_access));
    if (d <= nd.deadline || (d - nd.deadline < kAccessResolution && nd.deadline > t)) return;
    nd.deadline = d;
    s.set_deadline(*nd.key, nd.hash, d);
    must_succeed([&] { wheel_->schedule(n, d); }, "growing the timer wheel");
  }

  void untrack(std::uint32_t n) noexcept {
    if (policy_) policy_->remove(n);
    wheel_->cancel(n);
    tracked_.remove(n);
  }

  // Removes tracked node `n`'s entry from the map (an eviction or expiry); the policy and the
  // wheel have already let go of `n`.
  template <class Store>
  void remove_tracked(Store& s, std::uint32_t n, change_cause cause) noexcept {
    const std::uint64_t h = tracked_.at(n).hash;
    if (collecting_) {
      const K& key = *tracked_.at(n).key;
      must_succeed(
          [&] {
            const entry* e = s.find(key, h);
            changes_.push_back(
                change_type{K(key), e ? std::optional<V>(e->value) : std::optional<V>(), cause});
          },
          "copying an entry for the change feed");
    }
    s.erase(tracked_.remove(n), h);
  }

  const cache_config cfg_;
  const unsigned index_;
  const std::size_t budget_;
  const Hash hasher_;
  std::uint64_t version_counter_ = 0;
  tracking<K, Eq> tracked_;
  std::optional<wtinylfu> policy_;
  std::optional<timer_wheel> wheel_;
  absl::flat_hash_map<K, std::shared_ptr<load_state<V>>, inner_hash<K, Hash>, inner_eq<K, Eq>>
      loads_;
  bool collecting_ = false;
  std::vector<change_type> changes_;
  owner_counters counters_;
};

}  // namespace warden::detail
