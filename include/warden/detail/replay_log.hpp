// The replay log of the table's two copies: the map operations an owner applied to the copy
// readers do not see, kept to apply them again to the other copy once its readers have left
// (left-right's "absorb" step). Operations are types; a log entry holds one of them, with the
// shard and hash it applies to.
//
// Invariants:
//  L1 Determinism. Replaying the entries, in order, onto a copy equal to the one they were
//     applied to yields a copy equal to the result. So an operation is a pure function of the
//     map's contents and of its own payload: no clock, no policy, no iteration order. Owners
//     decide (versions, evictions, expiry) before they log, and log what they did, never what
//     to decide. The tests' WARDEN_CHECK_COPIES build checks L1 after every replay.
//  L2 `replay` moves the payload into the map and may throw only what owner_map.hpp's upsert
//     may (Eq in a probe, std::bad_alloc from growth), leaving the map as it was (the owner
//     then rebuilds that shard from its published copy).
//  L3 The key an operation probes stays in the entry until the log is cleared (prefetching
//     and rolling back read it through key()).
//
// An operation type provides
//   template <class Map> void replay(Map&, std::size_t hash);
//   const K* probed_key() const;  (nullptr: it probes no key)
// and joins the list of operations the engine's log_entry names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <variant>

#include "warden/detail/hashing.hpp"
#include "warden/detail/map_growth.hpp"
#include "warden/detail/owner_map.hpp"

namespace warden::detail {

// Inserts or overwrites an entry.
template <class K, class Entry>
struct logged_upsert {
  K key;
  Entry value;
  template <class Map>
  void replay(Map& m, std::size_t h) {
    upsert(m, h, std::move(key), std::move(value));
  }
  const K* probed_key() const noexcept { return &key; }
};

// Removes an entry (if present); gives memory back when the map empties out.
template <class K>
struct logged_erase {
  K key;
  template <class Map>
  void replay(Map& m, std::size_t h) {
    m.erase(prehashed_key<K>{&key, h});
    shrink_if_sparse(m);
  }
  const K* probed_key() const noexcept { return &key; }
};

// Moves an entry's deadline (access expiry); nothing if the entry is gone.
template <class K>
struct logged_deadline {
  K key;
  std::int64_t deadline;
  template <class Map>
  void replay(Map& m, std::size_t h) {
    if (auto it = m.find(prehashed_key<K>{&key, h}); it != m.end()) it->second.deadline = deadline;
  }
  const K* probed_key() const noexcept { return &key; }
};

// Empties the shard.
struct logged_clear {
  template <class Map>
  void replay(Map& m, std::size_t) {
    m.clear();
  }
  const void* probed_key() const noexcept { return nullptr; }
};

// One logged operation: which shard, the key's hash (0 for logged_clear), and the operation.
template <class K, class... Ops>
struct log_entry {
  std::uint32_t shard;
  std::size_t hash;
  std::variant<Ops...> op;

  template <class Map>
  void replay(Map& m) {
    std::visit([&](auto& o) { o.replay(m, hash); }, op);
  }
  const K* key() const noexcept {
    return std::visit([](const auto& o) { return static_cast<const K*>(o.probed_key()); }, op);
  }
  K* key() noexcept { return const_cast<K*>(std::as_const(*this).key()); }
};

}  // namespace warden::detail
