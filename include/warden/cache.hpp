// warden::cache<C>: the one interface both backends satisfy (and any_cache, and any future
// backend). Generic code and the benchmarks are written against it. The calls and their
// meanings are the contract in README.md ("The one interface").
//
// Requirements on the types, for every backend (table<K, V, Hash, Eq>, actor<...>,
// any_cache<K, V>):
//  - K and V: copy-constructible (each write is kept twice on the table, reads return
//    copies) and nothrow-move-constructible (the maps relocate entries when they grow; a throw
//    there cannot be undone); both are static_asserts with a message. Copies may throw and
//    then change nothing: a call gets the exception, a cast's sender at its next flush().
//    Copying from a const object must be safe from many threads at once (readers copy the
//    same value concurrently).
//  - Hash: `const Hash&` callable on `const K&`, returning std::size_t; called from many
//    threads at once (readers hash in their own thread, owners in theirs) and deterministic:
//    one key hashes to the same value for the cache's whole life (it picks the key's shard and
//    owner, and both left-right copies replay the same logged operations). It may throw: in
//    the caller the exception reaches the call; on an owner (a map growing) it is retried,
//    and one that keeps throwing for a stored key terminates the process (hashing.hpp).
//  - Eq: `const Eq&` callable on two `const K&`, from many threads at once, deterministic, an
//    equivalence consistent with Hash (equal keys hash equally). Throwing is handled as for
//    Hash.
//  - Lookups by another type Q (get(string_view) and the like): Hash and Eq both declare
//    `is_transparent` and accept Q, hashing it as the K it equals (std::string keys with the
//    default Hash and Eq get string_view lookups without that).
//  - Counters (update_counter): V arithmetic and not bool; integers wrap around as unsigned
//    arithmetic does.
//  - transact and snapshot functions return by value (a static_assert). Owner-side callbacks
//    (the functions of transact and update, erase_if's predicate, anything an actor runs) may
//    throw, but must not use the same cache: every call, cast and read there throws
//    reentrancy_error.
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <type_traits>

namespace warden {
namespace detail {

// What a transact function may do with its `tx`.
template <class Tx, class K, class V>
concept transaction_handle = requires(Tx& tx, const K& k, const V& v) {
  { tx.get(k) } -> std::same_as<std::optional<V>>;
  { tx.contains(k) } -> std::same_as<bool>;
  tx.put(k, v);
  tx.erase(k);
};

// What a snapshot function may do with its `view`.
template <class View, class K, class V>
concept snapshot_view = requires(const View& view, const K& k) {
  { view.get(k) } -> std::same_as<std::optional<V>>;
  { view.contains(k) } -> std::same_as<bool>;
  view.for_each([](const K&, const V&) {});
};

// Callables accepted only with a conforming tx/view: `c.transact(probe)` is well-formed
// exactly when the backend hands its function a tx that satisfies transaction_handle.
template <class K, class V>
struct transaction_probe {
  template <class Tx>
    requires transaction_handle<Tx, K, V>
  int operator()(Tx&) const {
    return 0;
  }
};
template <class K, class V>
struct snapshot_probe {
  template <class View>
    requires snapshot_view<View, K, V>
  int operator()(View&) const {
    return 0;
  }
};

template <class V>
inline constexpr bool counter_value = std::is_arithmetic_v<V> && !std::is_same_v<V, bool>;

}  // namespace detail

template <class C>
concept cache =
    requires {
      typename C::key_type;
      typename C::mapped_type;
    } &&
    requires(C& c, const C& cc, const typename C::key_type& k, const typename C::mapped_type& v) {
      { cc.get(k) } -> std::same_as<std::optional<typename C::mapped_type>>;
      { cc.contains(k) } -> std::same_as<bool>;
      { cc.size() } -> std::convertible_to<std::size_t>;
      c.put(k, v);
      c.erase(k);
      c.flush();
      {
        c.transact(detail::transaction_probe<typename C::key_type, typename C::mapped_type>{})
      } -> std::same_as<int>;
      {
        cc.snapshot(detail::snapshot_probe<typename C::key_type, typename C::mapped_type>{})
      } -> std::same_as<int>;
    } &&
    (!detail::counter_value<typename C::mapped_type> ||
     requires(C& c, const typename C::key_type& k, typename C::mapped_type d) {
       { c.update_counter(k, d) } -> std::same_as<typename C::mapped_type>;
     });

}  // namespace warden
