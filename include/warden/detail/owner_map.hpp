// The hash map an owner keeps (the table's shard copies, the actor's state, a transaction's
// staged writes), and the one way owners insert into it. Both choices exist to keep a map
// consistent when user code (a key's copy, Eq) throws.
#pragma once

#include <cstddef>
#include <cstdio>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include <absl/container/flat_hash_map.h>
#include <absl/container/node_hash_map.h>

#include "warden/detail/hashing.hpp"
#include "warden/detail/map_growth.hpp"

namespace warden::detail {

// absl's flat map relocates its slots when it grows. It moves a slot's key only when
// pair<K, V> and pair<const K, V> share one standard layout; otherwise it moves the
// pair<const K, V>, which *copies* the key, and a copy that throws half-way through a rehash
// leaves the map losing and leaking entries. Such keys get a node map, whose nodes never
// move. The condition is absl's own (container_memory.h, IsLayoutCompatible), or stricter.
// How many queued writes ahead an owner prefetches the slots a write will probe: enough to
// keep several cache misses in flight, few enough that the lines are still there when used.
inline constexpr std::size_t kPrefetchDistance = 8;

template <class K, class V>
inline constexpr bool flat_relocation_cannot_throw =
    std::is_nothrow_copy_constructible_v<K> ||
    (std::is_standard_layout_v<K> && std::is_standard_layout_v<V> &&
     std::is_standard_layout_v<std::pair<K, V>> &&
     std::is_standard_layout_v<std::pair<const K, V>>);

template <class K, class V, class Hash, class Eq>
using owner_map =
    std::conditional_t<flat_relocation_cannot_throw<K, V>,
                       absl::flat_hash_map<K, V, inner_hash<K, Hash>, inner_eq<K, Eq>>,
                       absl::node_hash_map<K, V, inner_hash<K, Hash>, inner_eq<K, Eq>>>;

// Starts loading the control bytes and slot a later probe for `key` (hash `h`) reads.
// Through this wrapper because GCC 12's mod-ref analysis finds absl's prefetch() free of side
// effects and deletes the call outright (a -DNDEBUG build then prefetches nothing); the
// wrapper is opaque to that analysis (noipa) and takes absl's body inline (flatten), so the
// prefetch instructions survive. Clang keeps the call as written.
#if defined(__GNUC__) && !defined(__clang__)
#define WARDEN_PREFETCH_WRAPPER __attribute__((noipa, flatten))
#else
#define WARDEN_PREFETCH_WRAPPER inline
#endif
template <class Map, class Q>
WARDEN_PREFETCH_WRAPPER void prefetch_probe(const Map& map, const Q& key, std::size_t h) noexcept {
  map.prefetch(prehashed_key<Q>{&key, h});
}

// Inserts or assigns `key` (whose hash is `h`) with one probe, moving key and value in. Unlike
// emplace/insert_or_assign, it calls no Eq once the element is in place (absl's debug builds
// look a new element up again, and an Eq throwing there would report as failed a write that
// was made). Strong guarantee when V's move assignment does not throw: an exception from Eq
// in the probe, or std::bad_alloc from growing (grow_ahead), leaves the map as it was. A node
// map that cannot allocate the node itself is fatal (absl has already claimed the slot):
// terminating with a message beats corrupting the heap or publishing a broken copy.
template <class Map, class K, class V>
void upsert(Map& map, std::size_t h, K&& key, V&& value) {
  grow_ahead(map, 1);
  bool inserted = false;
  auto it = [&] {
    try {
      return map.lazy_emplace(prehashed_key<std::remove_cvref_t<K>>{&key, h},
                              [&](const auto& construct) {
                                inserted = true;
                                construct(std::move(key), std::move(value));
                              });
    } catch (const std::bad_alloc&) {
      std::fputs("warden: out of memory for a node of an owner's map; cannot continue\n", stderr);
      std::terminate();
    }
  }();
  if (!inserted) it->second = std::move(value);
}

// As above, hashing the key with the map's own (retrying, non-throwing) hash.
template <class Map, class K, class V>
void upsert(Map& map, K&& key, V&& value) {
  const std::size_t h = map.hash_function()(std::as_const(key));
  upsert(map, h, std::forward<K>(key), std::forward<V>(value));
}

}  // namespace warden::detail
