// warden::cache<C>: the one interface both backends satisfy (and any_cache, and any future
// backend). Generic code and the benchmarks are written against it. The calls and their
// meanings are the contract in README.md ("The one interface").
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
