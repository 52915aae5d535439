// Benchmark peer: boost::concurrent_flat_map (Boost.Unordered >= 1.83: open addressing with
// per-group metadata, reads that take a group's spin lock in shared mode), adapted to warden's
// cache calls. Include it through peers.hpp, which includes it only when CMake found Boost
// >= 1.83 headers (WARDEN_HAVE_BOOST_CFM; see peers/CMakeLists.txt).
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>

#include <absl/hash/hash.h>
#include <boost/unordered/concurrent_flat_map.hpp>

namespace warden_bench {

template <class K, class V>
class boost_cfm {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "boost::concurrent_flat_map";
  static constexpr bool thread_safe = true;

  std::optional<V> get(const K& key) const {
    std::optional<V> out;
    map_.cvisit(key, [&out](const auto& kv) { out = kv.second; });
    return out;
  }
  bool contains(const K& key) const { return map_.contains(key); }
  std::size_t size() const { return map_.size(); }

  void put(const K& key, const V& value) { map_.insert_or_assign(key, value); }
  void erase(const K& key) { map_.erase(key); }
  void flush() {}  // writes are applied before put/erase return

  V update_counter(const K& key, V delta)
    requires std::is_arithmetic_v<V>
  {
    // Runs the functor under the key's group lock when the key exists, and otherwise
    // inserts {key, delta}, so `result` is right in both cases.
    V result = delta;
    map_.emplace_or_visit(key, delta, [&](auto& kv) {
      kv.second += delta;
      result = kv.second;
    });
    return result;
  }

 private:
  // absl::Hash as for the other peers (Boost's default hash of integers is the identity, which
  // its mixing post-processes; absl's is already well mixed).
  boost::concurrent_flat_map<K, V, absl::Hash<K>> map_;
};

}  // namespace warden_bench
