// warden::versioned<V>: a value with its version, as get_versioned returns it. Versions are
// never 0 and change with every write of the key, so put_if_version(k, v, version) writes only
// if nobody wrote k since the versioned read (0: only if k is absent).
#pragma once

#include <cstdint>

namespace warden {

template <class V>
struct versioned {
  V value;
  std::uint64_t version;
};

}  // namespace warden
