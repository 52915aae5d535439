// Growth of absl's hash maps that fails cleanly, for every map warden's owners (and its
// reader registry) insert into, and shrinking after mass erasure.
//
// The abseil that Debian 12 ships (LTS 2022-06-23) records a growth's new capacity before it
// allocates, so a growth that runs out of memory leaves a map that cannot even be destroyed (it
// would free memory it never owned; found by a failing-allocator test). Owners therefore never let
// absl grow a map on its own: before an insert, grow_ahead makes room in a fresh map first (the
// only allocation), moves the elements over as node handles (no copies, no allocation: its capacity
// is reserved) and swaps it in. absl reallocates on insert only when the map is over 25/32 full
// (below that it reuses tombstones in place), so keeping every map at or under 25/32 full after the
// insert means absl never reallocates. Maps therefore grow at 78% full rather than absl's 87.5%.
// Throws std::bad_alloc having changed nothing (a fresh map whose growth failed is leaked,
// not destroyed: see above). Node maps still allocate a node per insert (owner_map.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>

#include "warden/detail/hashing.hpp"

namespace warden::detail {

template <class Map>
bool needs_growth(const Map& map, std::size_t extra) noexcept {
  return (map.size() + extra) * 32 > map.capacity() * 25;
}

// A capacity (a map constructor's bucket count) that holds `n` elements at or under 25/32
// full: inserting them never grows the map.
constexpr std::size_t capacity_for(std::size_t n) noexcept { return n * 32 / 25 + 1; }

// Moves every element of `map` into a fresh map reserved for `elements`, and swaps it in.
// Throws std::bad_alloc before moving anything (the half-grown fresh map is leaked, not
// destroyed: see above); node handles move without copies and, with the room reserved,
// without allocating.
// A flat map's node handle holds its slot inline, on the stack of whoever moves it: past this
// size rebuild() leaves growth to absl (whose growth is not safe against running out of
// memory on the Debian version) and shrink_if_sparse leaves the map as it is.
inline constexpr std::size_t kMaxSlotMovedByHandle = 4096;

template <class Map>
void rebuild(Map& map, std::size_t elements) {
  if constexpr (sizeof(typename Map::value_type) > kMaxSlotMovedByHandle) {
    if (elements > map.size()) map.reserve(elements);
    return;
  }
  auto fresh = std::make_unique<Map>(0, map.hash_function(), map.key_eq(), map.get_allocator());
  try {
    fresh->reserve(elements);
  } catch (...) {
    (void)fresh.release();
    throw;
  }
  for (auto it = map.begin(); it != map.end();) {
    auto node = map.extract(it++);
    // Hash: retried inside; Eq (called on a 7-bit hash collision) may throw, with the node
    // still held: retried.
    must_succeed([&] { fresh->insert(std::move(node)); }, "moving an entry to a rebuilt map (Eq)");
  }
  map = std::move(*fresh);
}

template <class Map>
void grow_ahead(Map& map, std::size_t extra) {
  if (!needs_growth(map, extra)) return;
  const std::size_t cap = map.capacity();
  const std::size_t want = map.size() + extra;
  // Room for `want` at 25/32 full, and at least a doubling (absl's own step), so growth stays
  // amortized O(1) per insert.
  rebuild(map, std::max(want + want / 7 + 1, cap - cap / 8 + 1));
}

// Gives memory back after mass erasure (absl never shrinks on erase): a map of at least
// kShrinkMinCapacity slots that is under 1/8 full is rebuilt at about 1/4 to 1/2 full. The gap
// between 1/8 and the rebuilt load keeps a map that hovers at one size from shrinking and
// growing in turn; the cost, O(size) once the map has lost 7/8 of its capacity in erasures, is
// amortized over those erasures. Best effort: out of memory leaves the map as it was. Never
// call it while a rollback may still need the room (undo).
inline constexpr std::size_t kShrinkMinCapacity = 128;

template <class Map>
void shrink_if_sparse(Map& map) noexcept {
  const std::size_t cap = map.capacity();
  if (cap < kShrinkMinCapacity || map.size() * 8 >= cap) return;
  try {
    rebuild(map, map.size() * 2);
  } catch (...) {  // std::bad_alloc, nothing moved: keep the larger map
  }
}

}  // namespace warden::detail
