// warden::transaction: the `tx` handed to a transact function, on either backend. Writes are
// staged in the transaction and reach the cache only when the function returns normally, so
// a function that throws leaves no trace; reads see the transaction's own writes first.
#pragma once

#include <optional>
#include <utility>

#include <absl/container/flat_hash_map.h>

namespace warden {

template <class K, class V, class Hash, class Eq>
class transaction {
 public:
  // `find(ctx, key)` returns the committed value of `key` or null; the backend owns both.
  using find_fn = const V* (*)(const void* ctx, const K& key);

  transaction(find_fn find, const void* ctx, const Hash& hash, const Eq& eq)
      : find_(find), ctx_(ctx), staged_(0, hash, eq) {}
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  std::optional<V> get(const K& key) const {
    if (auto it = staged_.find(key); it != staged_.end()) return it->second;
    if (const V* v = find_(ctx_, key)) return *v;
    return std::nullopt;
  }

  bool contains(const K& key) const {
    if (auto it = staged_.find(key); it != staged_.end()) return it->second.has_value();
    return find_(ctx_, key) != nullptr;
  }

  void put(const K& key, V value) { staged_.insert_or_assign(key, std::move(value)); }
  void erase(const K& key) { staged_.insert_or_assign(key, std::nullopt); }

  // Backend use: the staged writes (a value, or nullopt for an erase).
  const absl::flat_hash_map<K, std::optional<V>, Hash, Eq>& staged() const { return staged_; }

 private:
  find_fn find_;
  const void* ctx_;
  absl::flat_hash_map<K, std::optional<V>, Hash, Eq> staged_;
};

}  // namespace warden
