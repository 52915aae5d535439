// warden::any_cache<K, V>: any warden::cache with key K and value V behind one type, so a
// choice made at run time (a flag, a config file) picks the backend. Move-only; built from a
// cache by move. Every call costs one virtual dispatch more than the backend's own (the
// README's benchmark table gives the measured cost on get); transact and snapshot hand their
// function an erased tx/view whose calls each go through one more indirect call.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <functional>
#include <istream>
#include <ostream>

#include <absl/functional/function_ref.h>

#include "warden/cache.hpp"
#include "warden/change_feed.hpp"
#include "warden/clock.hpp"
#include "warden/codec.hpp"
#include "warden/error.hpp"
#include "warden/stats.hpp"
#include "warden/versioned.hpp"

namespace warden {

template <class K, class V>
class any_cache {
  static_assert(std::is_copy_constructible_v<K> && std::is_copy_constructible_v<V> &&
                    std::is_nothrow_move_constructible_v<K> &&
                    std::is_nothrow_move_constructible_v<V>,
                "warden::any_cache needs copyable, nothrow-movable keys and values");

 public:
  using key_type = K;
  using mapped_type = V;

  // The erased tx: forwards to the backend's transaction handle.
  class tx_type {
   public:
    std::optional<V> get(const K& k) const { return vt_->get(obj_, k); }
    bool contains(const K& k) const { return vt_->contains(obj_, k); }
    void put(const K& k, V v) { vt_->put(obj_, k, std::move(v)); }
    void erase(const K& k) { vt_->erase(obj_, k); }

   private:
    friend class any_cache;
    struct vtable {
      std::optional<V> (*get)(void*, const K&);
      bool (*contains)(void*, const K&);
      void (*put)(void*, const K&, V);
      void (*erase)(void*, const K&);
    };
    template <class Tx>
    static constexpr vtable vtable_for = {
        [](void* t, const K& k) { return static_cast<Tx*>(t)->get(k); },
        [](void* t, const K& k) { return static_cast<Tx*>(t)->contains(k); },
        [](void* t, const K& k, V v) { static_cast<Tx*>(t)->put(k, std::move(v)); },
        [](void* t, const K& k) { static_cast<Tx*>(t)->erase(k); },
    };
    template <class Tx>
    explicit tx_type(Tx& tx) : obj_(&tx), vt_(&vtable_for<Tx>) {}
    tx_type(const tx_type&) = delete;
    tx_type& operator=(const tx_type&) = delete;
    void* obj_;
    const vtable* vt_;
  };

  // The erased view: forwards to the backend's snapshot view.
  class view_type {
   public:
    std::optional<V> get(const K& k) const { return vt_->get(obj_, k); }
    bool contains(const K& k) const { return vt_->contains(obj_, k); }
    // In place, valid while the view lives.
    const V* find(const K& k) const { return vt_->find(obj_, k); }
    template <class F>
    void for_each(F&& f) const {
      vt_->for_each(obj_, absl::FunctionRef<void(const K&, const V&)>(f));
    }

   private:
    friend class any_cache;
    struct vtable {
      std::optional<V> (*get)(const void*, const K&);
      bool (*contains)(const void*, const K&);
      const V* (*find)(const void*, const K&);
      void (*for_each)(const void*, absl::FunctionRef<void(const K&, const V&)>);
    };
    template <class View>
    static constexpr vtable vtable_for = {
        [](const void* v, const K& k) { return static_cast<const View*>(v)->get(k); },
        [](const void* v, const K& k) { return static_cast<const View*>(v)->contains(k); },
        [](const void* v, const K& k) { return static_cast<const View*>(v)->find(k); },
        [](const void* v, absl::FunctionRef<void(const K&, const V&)> f) {
          static_cast<const View*>(v)->for_each(f);
        },
    };
    template <class View>
    explicit view_type(const View& v) : obj_(&v), vt_(&vtable_for<View>) {}
    view_type(const view_type&) = delete;
    view_type& operator=(const view_type&) = delete;
    const void* obj_;
    const vtable* vt_;
  };

  template <class C>
    requires(cache<std::remove_cvref_t<C>> && !std::is_same_v<std::remove_cvref_t<C>, any_cache> &&
             std::is_same_v<typename std::remove_cvref_t<C>::key_type, K> &&
             std::is_same_v<typename std::remove_cvref_t<C>::mapped_type, V>)
  any_cache(C&& backend)  // NOLINT(google-explicit-constructor): a backend *is* a cache
      : impl_(make(std::forward<C>(backend))) {}

  any_cache(any_cache&&) noexcept = default;
  any_cache& operator=(any_cache&&) noexcept = default;
  any_cache(const any_cache&) = delete;
  any_cache& operator=(const any_cache&) = delete;

  std::optional<V> get(const K& k) const { return checked().get(k); }
  bool contains(const K& k) const { return checked().contains(k); }
  std::size_t size() const { return checked().size(); }
  void put(const K& k, V v) { checked().put(k, std::move(v)); }
  void erase(const K& k) { checked().erase(k); }
  // Backends without try_ variants never refuse: these then wait like put/erase.
  bool try_put(const K& k, V v) { return checked().try_put(k, std::move(v)); }
  bool try_erase(const K& k) { return checked().try_erase(k); }
  void flush() { checked().flush(); }

  V update_counter(const K& k, V delta)
    requires detail::counter_value<V>
  {
    return checked().update_counter(k, delta);
  }

  template <class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    if constexpr (std::is_void_v<R>) {
      checked().transact([&](tx_type& tx) { std::invoke(fn, tx); });
    } else {
      std::optional<R> result;
      checked().transact([&](tx_type& tx) { result.emplace(std::invoke(fn, tx)); });
      return std::move(*result);
    }
  }

  // As the backend's transact_for (timeout_error if not started in time); backends without
  // it refuse with warden::error.
  template <class Rep, class Period, class F>
    requires std::invocable<F&, tx_type&>
  std::invoke_result_t<F&, tx_type&> transact_for(std::chrono::duration<Rep, Period> timeout,
                                                  F&& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
    static_assert(!std::is_reference_v<R>, "a transact function must return by value");
    const auto limit = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::nanoseconds(detail::saturating_ns(timeout)));
    if constexpr (std::is_void_v<R>) {
      checked().transact_for(limit, [&](tx_type& tx) { std::invoke(fn, tx); });
    } else {
      std::optional<R> result;
      checked().transact_for(limit, [&](tx_type& tx) { result.emplace(std::invoke(fn, tx)); });
      return std::move(*result);
    }
  }

  template <class F>
    requires std::invocable<F&, view_type&>
  std::invoke_result_t<F&, view_type&> snapshot(F&& fn) const {
    using R = std::invoke_result_t<F&, view_type&>;
    static_assert(!std::is_reference_v<R>, "a snapshot function must return by value");
    if constexpr (std::is_void_v<R>) {
      checked().snapshot([&](view_type& v) { std::invoke(fn, v); });
    } else {
      std::optional<R> result;
      checked().snapshot([&](view_type& v) { result.emplace(std::invoke(fn, v)); });
      return std::move(*result);
    }
  }

  // ---- the cache calls (see table.hpp for their meanings) -------------------------------
  template <class Rep, class Period>
  void put(const K& k, V v, std::chrono::duration<Rep, Period> ttl) {
    const std::int64_t ns = detail::saturating_ns(ttl);
    if (ns < 0) throw std::invalid_argument("warden::any_cache::put: negative ttl");
    checked().put_ttl(k, std::move(v), std::chrono::nanoseconds(ns));
  }
  void clear() { checked().clear(); }
  std::optional<versioned<V>> get_versioned(const K& k) const { return checked().get_versioned(k); }
  bool put_if_version(const K& k, V v, std::uint64_t version) {
    return checked().put_if_version(k, std::move(v), version);
  }
  bool insert_new(const K& k, V v) { return checked().insert_new(k, std::move(v)); }
  std::optional<V> take(const K& k) { return checked().take(k); }
  template <class F>
    requires std::is_invocable_r_v<std::optional<V>, F&, const std::optional<V>&>
  std::optional<V> update(const K& k, F&& fn) {
    return checked().update(
        k, [&](const std::optional<V>& v) -> std::optional<V> { return std::invoke(fn, v); });
  }
  template <class Pred>
    requires std::is_invocable_r_v<bool, Pred&, const K&, const V&>
  std::size_t erase_if(Pred&& pred) {
    return checked().erase_if(
        [&](const K& k, const V& v) -> bool { return std::invoke(pred, k, v); });
  }
  template <class F>
    requires std::invocable<F&, const V&>
  bool visit(const K& k, F&& fn) const {
    return checked().visit(k, [&](const V& v) { std::invoke(fn, v); });
  }
  template <class Loader>
    requires std::is_invocable_r_v<V, Loader&, const K&>
  V get_or_load(const K& k, Loader&& loader) {
    return checked().get_or_load(k, [&](const K& key) -> V { return std::invoke(loader, key); });
  }
  cache_stats stats() const { return checked().stats(); }
  void dump(std::ostream& os) const { checked().dump(os); }
  void restore(std::istream& is) { checked().restore(is); }
  template <class F>
    requires std::invocable<F&, const change_batch<K, V>&>
  [[nodiscard]] subscription subscribe(F fn) {
    return checked().subscribe(std::function<void(const change_batch<K, V>&)>(std::move(fn)));
  }

 private:
  template <class C>
  static auto make(C&& backend) {
    static_assert(!std::is_lvalue_reference_v<C>,
                  "warden::any_cache takes the cache over: pass it as std::move(cache)");
    static_assert(!std::is_const_v<std::remove_reference_t<C>>,
                  "warden::any_cache takes the cache over: it cannot be const");
    using B = std::remove_cvref_t<C>;
    return std::unique_ptr<interface>(std::make_unique<model<B>>(std::move(backend)));
  }

  struct interface {
    virtual ~interface() = default;
    virtual std::optional<V> get(const K&) const = 0;
    virtual bool contains(const K&) const = 0;
    virtual std::size_t size() const = 0;
    virtual void put(const K&, V) = 0;
    virtual void erase(const K&) = 0;
    virtual bool try_put(const K&, V) = 0;
    virtual bool try_erase(const K&) = 0;
    virtual void flush() = 0;
    virtual V update_counter(const K&, V) = 0;
    virtual void transact(absl::FunctionRef<void(tx_type&)>) = 0;
    virtual void transact_for(std::chrono::steady_clock::duration,
                              absl::FunctionRef<void(tx_type&)>) = 0;
    virtual void snapshot(absl::FunctionRef<void(view_type&)>) const = 0;
    virtual void put_ttl(const K&, V, std::chrono::nanoseconds) = 0;
    virtual void clear() = 0;
    virtual std::optional<versioned<V>> get_versioned(const K&) const = 0;
    virtual bool put_if_version(const K&, V, std::uint64_t) = 0;
    virtual bool insert_new(const K&, V) = 0;
    virtual std::optional<V> take(const K&) = 0;
    virtual std::optional<V> update(
        const K&, absl::FunctionRef<std::optional<V>(const std::optional<V>&)>) = 0;
    virtual std::size_t erase_if(absl::FunctionRef<bool(const K&, const V&)>) = 0;
    virtual bool visit(const K&, absl::FunctionRef<void(const V&)>) const = 0;
    virtual V get_or_load(const K&, absl::FunctionRef<V(const K&)>) = 0;
    virtual cache_stats stats() const = 0;
    virtual void dump(std::ostream&) const = 0;
    virtual void restore(std::istream&) = 0;
    virtual subscription subscribe(std::function<void(const change_batch<K, V>&)>) = 0;
  };

  template <class C>
  struct model final : interface {
    explicit model(C&& c) : backend(std::move(c)) {}
    std::optional<V> get(const K& k) const override { return backend.get(k); }
    bool contains(const K& k) const override { return backend.contains(k); }
    std::size_t size() const override { return backend.size(); }
    void put(const K& k, V v) override { backend.put(k, std::move(v)); }
    void erase(const K& k) override { backend.erase(k); }
    bool try_put(const K& k, V v) override {
      if constexpr (requires { backend.try_put(k, std::move(v)); }) {
        return backend.try_put(k, std::move(v));
      } else {
        backend.put(k, std::move(v));
        return true;
      }
    }
    bool try_erase(const K& k) override {
      if constexpr (requires { backend.try_erase(k); }) {
        return backend.try_erase(k);
      } else {
        backend.erase(k);
        return true;
      }
    }
    void flush() override { backend.flush(); }
    V update_counter(const K& k, V delta) override {
      if constexpr (detail::counter_value<V>) {
        return backend.update_counter(k, delta);
      } else {
        throw error("warden::any_cache: update_counter needs an arithmetic value type");
      }
    }
    void transact(absl::FunctionRef<void(tx_type&)> fn) override {
      backend.transact([&](auto& tx) {
        tx_type erased(tx);
        fn(erased);
      });
    }
    void transact_for(std::chrono::steady_clock::duration timeout,
                      absl::FunctionRef<void(tx_type&)> fn) override {
      auto body = [&](auto& tx) {
        tx_type erased(tx);
        fn(erased);
      };
      if constexpr (requires { backend.transact_for(timeout, body); }) {
        backend.transact_for(timeout, body);
      } else {
        throw error("warden::any_cache: this backend has no transact_for");
      }
    }
    void snapshot(absl::FunctionRef<void(view_type&)> fn) const override {
      backend.snapshot([&](const auto& view) {
        view_type erased(view);
        fn(erased);
      });
    }
    void put_ttl(const K& k, V v, std::chrono::nanoseconds ttl) override {
      backend.put(k, std::move(v), ttl);
    }
    void clear() override { backend.clear(); }
    std::optional<versioned<V>> get_versioned(const K& k) const override {
      return backend.get_versioned(k);
    }
    bool put_if_version(const K& k, V v, std::uint64_t version) override {
      return backend.put_if_version(k, std::move(v), version);
    }
    bool insert_new(const K& k, V v) override { return backend.insert_new(k, std::move(v)); }
    std::optional<V> take(const K& k) override { return backend.take(k); }
    std::optional<V> update(
        const K& k, absl::FunctionRef<std::optional<V>(const std::optional<V>&)> fn) override {
      return backend.update(k, [&](const std::optional<V>& v) { return fn(v); });
    }
    std::size_t erase_if(absl::FunctionRef<bool(const K&, const V&)> pred) override {
      return backend.erase_if([&](const K& k, const V& v) { return pred(k, v); });
    }
    bool visit(const K& k, absl::FunctionRef<void(const V&)> fn) const override {
      return backend.visit(k, [&](const V& v) { fn(v); });
    }
    V get_or_load(const K& k, absl::FunctionRef<V(const K&)> loader) override {
      return backend.get_or_load(k, [&](const K& key) { return loader(key); });
    }
    cache_stats stats() const override { return backend.stats(); }
    void dump(std::ostream& os) const override {
      if constexpr (detail::has_codec<K> && detail::has_codec<V>) {
        backend.dump(os);
      } else {
        throw error("warden::any_cache::dump: no warden::codec for the key or value type");
      }
    }
    void restore(std::istream& is) override {
      if constexpr (detail::has_codec<K> && detail::has_codec<V>) {
        backend.restore(is);
      } else {
        throw error("warden::any_cache::restore: no warden::codec for the key or value type");
      }
    }
    subscription subscribe(std::function<void(const change_batch<K, V>&)> fn) override {
      return backend.subscribe(std::move(fn));
    }
    C backend;
  };

  interface& checked() const {
    if (!impl_) throw closed_error();
    return *impl_;
  }

  std::unique_ptr<interface> impl_;
};

}  // namespace warden
