// warden::any_cache<K, V>: any warden::cache with key K and value V behind one type, so a
// choice made at run time (a flag, a config file) picks the backend. Move-only; built from a
// cache by move. Every call costs one virtual dispatch more than the backend's own (the
// README's benchmark table gives the measured cost on get); transact and snapshot hand their
// function an erased tx/view whose calls each go through one more indirect call.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <absl/functional/function_ref.h>

#include "warden/cache.hpp"
#include "warden/error.hpp"

namespace warden {

template <class K, class V>
class any_cache {
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
    template <class F>
    void for_each(F&& f) const {
      vt_->for_each(obj_, absl::FunctionRef<void(const K&, const V&)>(f));
    }

   private:
    friend class any_cache;
    struct vtable {
      std::optional<V> (*get)(const void*, const K&);
      bool (*contains)(const void*, const K&);
      void (*for_each)(const void*, absl::FunctionRef<void(const K&, const V&)>);
    };
    template <class View>
    static constexpr vtable vtable_for = {
        [](const void* v, const K& k) { return static_cast<const View*>(v)->get(k); },
        [](const void* v, const K& k) { return static_cast<const View*>(v)->contains(k); },
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

  template <cache C>
  requires(!std::is_same_v<std::remove_cvref_t<C>, any_cache> &&
           std::is_same_v<typename std::remove_cvref_t<C>::key_type, K> &&
           std::is_same_v<typename std::remove_cvref_t<C>::mapped_type, V> &&
           !std::is_lvalue_reference_v<C>)
      any_cache(C&& backend)  // NOLINT(google-explicit-constructor): a backend *is* a cache
      : impl_(std::make_unique<model<std::remove_cvref_t<C>>>(std::move(backend))) {}

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

  V update_counter(const K& k, V delta) requires detail::counter_value<V> {
    return checked().update_counter(k, delta);
  }

  template <class F>
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact(F&& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
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
  requires std::invocable<F&, tx_type&> std::invoke_result_t<F&, tx_type&> transact_for(
      std::chrono::duration<Rep, Period> timeout, F&& fn) {
    using R = std::invoke_result_t<F&, tx_type&>;
    const auto limit = std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    if constexpr (std::is_void_v<R>) {
      checked().transact_for(limit, [&](tx_type& tx) { std::invoke(fn, tx); });
    } else {
      std::optional<R> result;
      checked().transact_for(limit, [&](tx_type& tx) { result.emplace(std::invoke(fn, tx)); });
      return std::move(*result);
    }
  }

  template <class F>
  requires std::invocable<F&, view_type&> std::invoke_result_t<F&, view_type&> snapshot(F&& fn)
  const {
    using R = std::invoke_result_t<F&, view_type&>;
    if constexpr (std::is_void_v<R>) {
      checked().snapshot([&](view_type& v) { std::invoke(fn, v); });
    } else {
      std::optional<R> result;
      checked().snapshot([&](view_type& v) { result.emplace(std::invoke(fn, v)); });
      return std::move(*result);
    }
  }

 private:
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
    C backend;
  };

  interface& checked() const {
    if (!impl_) throw closed_error();
    return *impl_;
  }

  std::unique_ptr<interface> impl_;
};

}  // namespace warden
