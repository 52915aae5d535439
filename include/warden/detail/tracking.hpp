// The owner's record of the entries it must act on by itself (evict or expire): one node per
// tracked key, in an arena indexed by a dense 32-bit number that the eviction policy and the
// timer wheel use as their handle. Owner-private; no synchronization.
//
// Invariants
//  - A key is tracked iff the cache is bounded or its entry has a deadline; a tracked key has
//    exactly one node, holding a copy of the key (to remove the entry later) and its hash.
//  - `index` holds exactly the live nodes; it hashes a node by the stored hash, and finds a
//    node either by key (hash, then Eq) or by hash alone, for readers' access records, which
//    carry only the hash (two live keys of one owner with the same 64-bit hash: the first
//    found is credited).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_set.h>

#include "warden/detail/entry.hpp"
#include "warden/detail/hashing.hpp"
#include "warden/detail/map_growth.hpp"

namespace warden::detail {

template <class K, class Eq>
class tracking {
 public:
  struct node {
    std::optional<K> key;  // empty while the node is free
    std::uint64_t hash = 0;
    std::int64_t deadline = kNever;        // the entry's deadline in the maps
    std::int64_t write_deadline = kNever;  // from expire_after_write or a put's own ttl
    bool fixed_ttl = false;                // a put's own ttl: reads do not extend it
    std::uint32_t next_free = 0;
  };

  explicit tracking(const Eq& eq) : index_(0, node_hash{this}, node_eq{this, eq}) {}
  tracking(const tracking&) = delete;
  tracking& operator=(const tracking&) = delete;

  std::size_t size() const noexcept { return index_.size(); }
  node& at(std::uint32_t n) noexcept { return nodes_[n]; }
  const node& at(std::uint32_t n) const noexcept { return nodes_[n]; }

  // The node of `key`, if tracked. Eq may throw.
  std::optional<std::uint32_t> find(const K& key, std::size_t h) const {
    auto it = index_.find(prehashed_key<K>{&key, h});
    if (it == index_.end()) return std::nullopt;
    return *it;
  }
  std::optional<std::uint32_t> find_hash(std::uint64_t h) const noexcept {
    auto it = index_.find(hash_only{h});
    if (it == index_.end()) return std::nullopt;
    return *it;
  }

  // Tracks a copy of `key`; the copy and the index's growth may throw, leaving nothing.
  std::uint32_t add(const K& key, std::size_t h) {
    std::uint32_t n;
    if (free_ != kNone) {
      n = free_;
      nodes_[n].key.emplace(key);
      free_ = nodes_[n].next_free;
    } else {
      nodes_.emplace_back();
      n = static_cast<std::uint32_t>(nodes_.size() - 1);
      try {
        nodes_[n].key.emplace(key);
      } catch (...) {
        nodes_.pop_back();
        throw;
      }
    }
    nodes_[n].hash = h;
    nodes_[n].deadline = kNever;
    nodes_[n].write_deadline = kNever;
    nodes_[n].fixed_ttl = false;
    try {
      grow_ahead(index_, 1);  // a growth that fails must fail outside the set (map_growth.hpp)
      index_.insert(n);
    } catch (...) {
      release(n);
      throw;
    }
    return n;
  }

  // Untracks `n`, handing its key back (for the log that removes it from the maps).
  K remove(std::uint32_t n) noexcept {
    index_.erase(n);
    K key = std::move(*nodes_[n].key);
    release(n);
    return key;
  }

  template <class F>
  void for_each(F&& f) const {
    for (std::uint32_t n : index_) f(n);
  }

  void clear() noexcept {
    index_.clear();
    nodes_.clear();
    free_ = kNone;
  }

 private:
  static constexpr std::uint32_t kNone = ~std::uint32_t{0};
  struct hash_only {
    std::uint64_t hash;
  };
  struct node_hash {
    using is_transparent = void;
    const tracking* self;
    std::size_t operator()(std::uint32_t n) const noexcept { return self->nodes_[n].hash; }
    std::size_t operator()(const prehashed_key<K>& p) const noexcept { return p.hash; }
    std::size_t operator()(const hash_only& p) const noexcept { return p.hash; }
  };
  struct node_eq {
    using is_transparent = void;
    const tracking* self;
    Eq eq;
    bool operator()(std::uint32_t a, std::uint32_t b) const noexcept { return a == b; }
    bool operator()(std::uint32_t a, const prehashed_key<K>& b) const {
      return self->nodes_[a].hash == b.hash && eq(*self->nodes_[a].key, *b.key);
    }
    bool operator()(std::uint32_t a, const hash_only& b) const noexcept {
      return self->nodes_[a].hash == b.hash;
    }
  };

  void release(std::uint32_t n) noexcept {
    nodes_[n].key.reset();
    nodes_[n].next_free = free_;
    free_ = n;
  }

  std::vector<node> nodes_;
  std::uint32_t free_ = kNone;
  absl::flat_hash_set<std::uint32_t, node_hash, node_eq> index_;
};

}  // namespace warden::detail
