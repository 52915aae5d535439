// Benchmark peer: oneTBB's tbb::concurrent_hash_map (fine-grained per-bucket and per-item locks),
// adapted to warden's cache calls. Include it through peers.hpp, which includes it only when CMake
// found TBB (WARDEN_HAVE_TBB).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <absl/hash/hash.h>
#include <tbb/concurrent_hash_map.h>

namespace warden_bench {

// TBB's HashCompare concept: hash() and equal(). absl::Hash keeps hashing identical to the
// absl-based peers, so the comparison measures the table, not the hash function.
template <class K>
struct absl_hash_compare {
  static std::size_t hash(const K& key) { return absl::Hash<K>{}(key); }
  static bool equal(const K& a, const K& b) { return a == b; }
};

template <class K, class V>
class tbb_map {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "tbb::concurrent_hash_map";
  static constexpr bool thread_safe = true;

  std::optional<V> get(const K& key) const {
    typename map_type::const_accessor acc;  // read lock on the item while it is held
    if (!map_.find(acc, key)) return std::nullopt;
    return acc->second;
  }
  bool contains(const K& key) const { return map_.count(key) != 0; }
  std::size_t size() const { return map_.size(); }

  void put(const K& key, const V& value) {
    typename map_type::accessor acc;  // write lock on the item while it is held
    if (!map_.insert(acc, typename map_type::value_type(key, value))) acc->second = value;
  }
  void erase(const K& key) { map_.erase(key); }
  void flush() {}  // writes are applied before put/erase return

  V update_counter(const K& key, V delta)
    requires std::is_arithmetic_v<V>
  {
    typename map_type::accessor acc;
    map_.insert(acc, key);  // a new item's value is value-initialized, so it counts from 0
    return acc->second += delta;
  }

 private:
  // std::allocator rather than TBB's default tbb_allocator, which may route to tbbmalloc: the
  // memory benchmark counts bytes through the global operator new, and must see this table's.
  using map_type =
      tbb::concurrent_hash_map<K, V, absl_hash_compare<K>, std::allocator<std::pair<const K, V>>>;
  map_type map_;
};

}  // namespace warden_bench
