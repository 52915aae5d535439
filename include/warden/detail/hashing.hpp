// The hash the owners' maps use. A map calls Hash again for every stored key when it grows,
// and an exception in the middle of that would leave it half moved. Every stored key was
// hashed once already (in the caller, or on the owner when first inserted), so a Hash that
// throws only now and then succeeds when retried. One that keeps throwing for a stored key
// is not a function of the key; the owner cannot continue correctly and terminates with a
// message instead of corrupting the map.
#pragma once

#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>

namespace warden::detail {

inline constexpr int kRetries = 1000;

// Runs `f` until it returns without throwing. For owner-side repairs that must not fail
// half-way: user code that throws now and then (Hash, Eq, a copy) succeeds on a retry; code
// that always throws there leaves no correct way on, and the owner terminates saying `what`.
template <class F>
auto must_succeed(F&& f, const char* what) noexcept -> decltype(f()) {
  for (int attempt = 0;; ++attempt) {
    try {
      return f();
    } catch (...) {
      if (attempt == kRetries) {
        std::fprintf(stderr, "warden: %s keeps throwing; cannot continue\n", what);
        std::terminate();
      }
    }
  }
}

template <class K, class Hash>
std::size_t hash_retrying(const Hash& hash, const K& key) noexcept {
  return must_succeed([&] { return hash(key); }, "Hash of a key already in a map");
}

template <class K>
struct prehashed_key {
  const K* key;
  std::size_t hash;
};

// Transparent hash/eq for the owners' maps: a lookup passes the hash its caller computed (so a
// throwing Hash throws there, to the caller), and the map's own hashing (inserts, growth)
// retries as explained above.
template <class K, class Hash>
struct inner_hash {
  using is_transparent = void;
  Hash hash;
  // Owner side (inserts, growth): see hashing.hpp. Readers never get here: they pass the
  // caller's hash in a prehashed_key.
  std::size_t operator()(const K& k) const noexcept { return hash_retrying(hash, k); }
  std::size_t operator()(const prehashed_key<K>& p) const noexcept { return p.hash; }
};

template <class K, class Eq>
struct inner_eq {
  using is_transparent = void;
  Eq eq;
  bool operator()(const K& a, const K& b) const { return eq(a, b); }
  bool operator()(const K& a, const prehashed_key<K>& b) const { return eq(a, *b.key); }
  bool operator()(const prehashed_key<K>& a, const K& b) const { return eq(*a.key, b); }
};

}  // namespace warden::detail
