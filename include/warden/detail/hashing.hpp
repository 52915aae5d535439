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
#include <string>
#include <string_view>
#include <type_traits>

#include <absl/hash/hash.h>
#include <absl/strings/string_view.h>

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
  template <class Q>
  std::size_t operator()(const prehashed_key<Q>& p) const noexcept {
    return p.hash;
  }
};

// Heterogeneous lookup: reads may look a key up by another type Q without building a K, when
// Hash and Eq are transparent (they declare is_transparent and accept Q), or, with the
// default absl::Hash<std::string> and std::equal_to<std::string>, by anything convertible to
// std::string_view (absl hashes a std::string and an absl::string_view of the same characters
// alike, and std::string == std::string_view compares without a temporary).
template <class T>
concept transparent = requires { typename T::is_transparent; };

template <class K, class Hash, class Eq, class Q>
inline constexpr bool default_string_lookup =
    std::is_same_v<K, std::string> && std::is_same_v<Hash, absl::Hash<std::string>> &&
    std::is_same_v<Eq, std::equal_to<std::string>> &&
    std::is_convertible_v<const Q&, std::string_view>;

template <class K, class Hash, class Eq, class Q>
concept lookup_key_for = !std::is_same_v<std::remove_cvref_t<Q>, K> &&
                         (default_string_lookup<K, Hash, Eq, Q> ||
                          (transparent<Hash> && transparent<Eq> &&
                           std::is_invocable_r_v<std::size_t, const Hash&, const Q&> &&
                           std::is_invocable_r_v<bool, const Eq&, const K&, const Q&>));

// The hash of a lookup key, equal to Hash's for the K it stands for.
template <class K, class Hash, class Eq, class Q>
std::size_t lookup_hash(const Hash& hash, const Q& q) {
  if constexpr (std::is_same_v<Q, K>) {
    return hash(q);
  } else if constexpr (default_string_lookup<K, Hash, Eq, Q>) {
    // absl::string_view, not std::string_view: in builds where the two differ (Debian's),
    // only absl's hashes like std::string.
    const std::string_view v(q);
    return absl::Hash<absl::string_view>{}(absl::string_view(v.data(), v.size()));
  } else {
    return hash(q);
  }
}

template <class K, class Eq>
struct inner_eq {
  using is_transparent = void;
  Eq eq;
  bool operator()(const K& a, const K& b) const { return eq(a, b); }
  bool operator()(const K& a, const prehashed_key<K>& b) const { return eq(a, *b.key); }
  bool operator()(const prehashed_key<K>& a, const K& b) const { return eq(*a.key, b); }
  template <class Q>
    requires(!std::is_same_v<Q, K>)
  bool operator()(const K& a, const prehashed_key<Q>& b) const {
    if constexpr (std::is_same_v<K, std::string> &&
                  std::is_same_v<Eq, std::equal_to<std::string>>) {
      return a == std::string_view(*b.key);
    } else {
      return eq(a, *b.key);
    }
  }
};

}  // namespace warden::detail
