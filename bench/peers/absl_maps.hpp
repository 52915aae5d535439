// Benchmark peers built on absl::flat_hash_map: the unsynchronized single-thread reference and
// the two classic lock-based designs (reader/writer lock, plain mutex). They expose warden's
// cache calls so that benchmarks are written once, as templates over the cache type.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <type_traits>

#include <absl/container/flat_hash_map.h>

namespace warden_bench {

// The single-thread reference: no synchronization at all, so NOT thread-safe. Benchmarks use it
// to show what a hash map costs before any concurrency control is added.
template <class K, class V>
class unsync_map {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "absl_flat_hash_map (unsync)";
  static constexpr bool thread_safe = false;

  std::optional<V> get(const K& key) const {
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(const K& key) const { return map_.contains(key); }
  std::size_t size() const { return map_.size(); }

  void put(const K& key, const V& value) { map_.insert_or_assign(key, value); }
  void erase(const K& key) { map_.erase(key); }
  void flush() {}  // writes are applied in place, so there is nothing to wait for

  V update_counter(const K& key, V delta)
    requires std::is_arithmetic_v<V>
  {
    // operator[] value-initializes a missing entry, so a new key counts from 0.
    return map_[key] += delta;
  }

 private:
  absl::flat_hash_map<K, V> map_;
};

// Reader/writer lock: lookups share the lock, so they scale until a writer arrives.
template <class K, class V>
class shared_mutex_map {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "shared_mutex+flat_hash_map";
  static constexpr bool thread_safe = true;

  std::optional<V> get(const K& key) const {
    std::shared_lock lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(const K& key) const {
    std::shared_lock lock(mu_);
    return map_.contains(key);
  }
  std::size_t size() const {
    std::shared_lock lock(mu_);
    return map_.size();
  }

  void put(const K& key, const V& value) {
    std::unique_lock lock(mu_);
    map_.insert_or_assign(key, value);
  }
  void erase(const K& key) {
    std::unique_lock lock(mu_);
    map_.erase(key);
  }
  void flush() {}  // writes finish under the lock before put/erase return

  V update_counter(const K& key, V delta)
    requires std::is_arithmetic_v<V>
  {
    std::unique_lock lock(mu_);
    return map_[key] += delta;
  }

 private:
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<K, V> map_;
};

// One mutex around everything: every call is serialized, like a single server process that
// handles one request at a time ("a GenServer in a lock"), but without any message passing.
template <class K, class V>
class mutex_map {
 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "mutex+flat_hash_map";
  static constexpr bool thread_safe = true;

  std::optional<V> get(const K& key) const {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(const K& key) const {
    std::lock_guard lock(mu_);
    return map_.contains(key);
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return map_.size();
  }

  void put(const K& key, const V& value) {
    std::lock_guard lock(mu_);
    map_.insert_or_assign(key, value);
  }
  void erase(const K& key) {
    std::lock_guard lock(mu_);
    map_.erase(key);
  }
  void flush() {}  // writes finish under the lock before put/erase return

  V update_counter(const K& key, V delta)
    requires std::is_arithmetic_v<V>
  {
    std::lock_guard lock(mu_);
    return map_[key] += delta;
  }

 private:
  mutable std::mutex mu_;
  absl::flat_hash_map<K, V> map_;
};

}  // namespace warden_bench
