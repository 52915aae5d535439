// What a cache's maps hold for each key, in every copy: the value, its version and its
// deadline. Readers check the deadline themselves (no owner involved), so an entry whose time
// has come is never returned even before the owner removes it.
//
// Invariants
//  - `version` is never 0 and differs after every write of the key: an owner draws versions
//    from its own counter (owner_state::next_version) with its index in the low bits, and a
//    key always belongs to one owner.
//  - `deadline` is nanoseconds on the cache's clock; kNever means the entry does not expire,
//    even once the clock itself saturates at the int64 limit. Otherwise an entry is live at
//    time `now` iff now < deadline.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>

#include "warden/detail/config.hpp"

namespace warden::detail {

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
// A put without its own time to live (the options decide).
inline constexpr std::int64_t kNoTtl = -1;

template <class V>
struct stored {
  V value;
  std::uint64_t version;
  std::int64_t deadline;

  WARDEN_ALWAYS_INLINE bool live_at(std::int64_t now) const noexcept {
    return deadline == kNever || now < deadline;
  }
};

// Deadline arithmetic that saturates instead of overflowing (a ttl of years on a clock that
// already reads large values).
inline std::int64_t add_saturating(std::int64_t t, std::int64_t d) noexcept {
  if (d >= kNever - t) return kNever;
  return t + d;
}

}  // namespace warden::detail
