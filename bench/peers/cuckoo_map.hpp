// Benchmark peer: libcuckoo's cuckoohash_map (striped spinlocks, cuckoo hashing), adapted to
// warden's cache calls. Include it through peers.hpp, which includes it only when CMake found
// libcuckoo (WARDEN_HAVE_LIBCUCKOO).
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>

#include <absl/hash/hash.h>
#include <libcuckoo/cuckoohash_map.hh>

namespace warden_bench {

template <class K, class V>
class cuckoo_map {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "libcuckoo::cuckoohash_map";
  static constexpr bool thread_safe = true;

  std::optional<V> get(const K& key) const {
    std::optional<V> out;
    map_.find_fn(key, [&out](const V& value) { out = value; });
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
    // upsert runs the functor under the bucket locks when the key exists, and otherwise
    // inserts `delta` itself (0 + delta), so `result` is right in both cases.
    V result = delta;
    map_.upsert(
        key,
        [&](V& value) {
          value += delta;
          result = value;
        },
        delta);
    return result;
  }

 private:
  // std::allocator is libcuckoo's default, so the counting operator new sees this table's memory.
  libcuckoo::cuckoohash_map<K, V, absl::Hash<K>> map_;
};

}  // namespace warden_bench
