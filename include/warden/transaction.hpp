// warden::transaction: the `tx` handed to a transact function, on either backend. Writes are
// staged in the transaction and reach the cache only when the function returns normally, so
// a function that throws leaves no trace; reads see the transaction's own writes first.
#pragma once

#include <optional>
#include <utility>

#include "warden/detail/hashing.hpp"
#include "warden/detail/owner_map.hpp"

namespace warden {

template <class K, class V, class Hash, class Eq>
class transaction {
 public:
  // `find(ctx, key, hash)` returns the committed value of `key` or null; the backend owns
  // both. Hash runs here, in the transaction, so its exceptions reach the transact function.
  using find_fn = const V* (*)(const void* ctx, const K& key, std::size_t hash);

  transaction(find_fn find, const void* ctx, const Hash& hash, const Eq& eq)
      : find_(find),
        ctx_(ctx),
        hash_(hash),
        staged_(0, detail::inner_hash<K, Hash>{hash}, detail::inner_eq<K, Eq>{eq}) {}
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  std::optional<V> get(const K& key) const {
    const std::size_t h = hash_(key);
    if (auto it = staged_.find(detail::prehashed_key<K>{&key, h}); it != staged_.end()) {
      return it->second;
    }
    if (const V* v = find_(ctx_, key, h)) return *v;
    return std::nullopt;
  }

  bool contains(const K& key) const {
    const std::size_t h = hash_(key);
    if (auto it = staged_.find(detail::prehashed_key<K>{&key, h}); it != staged_.end()) {
      return it->second.has_value();
    }
    return find_(ctx_, key, h) != nullptr;
  }

  // Hash and the key's copy run here, before the staging map is touched: a throwing Hash
  // or copy reaches the transact function and stages nothing.
  void put(const K& key, V value) {
    const std::size_t h = hash_(key);
    K copy(key);
    detail::upsert(staged_, h, std::move(copy), std::optional<V>(std::move(value)));
  }
  void erase(const K& key) {
    const std::size_t h = hash_(key);
    K copy(key);
    detail::upsert(staged_, h, std::move(copy), std::optional<V>());
  }

  // Backend use: the staged writes (a value, or nullopt for an erase).
  using staged_map = detail::owner_map<K, std::optional<V>, Hash, Eq>;
  const staged_map& staged() const { return staged_; }

 private:
  find_fn find_;
  const void* ctx_;
  Hash hash_;
  staged_map staged_;
};

}  // namespace warden
