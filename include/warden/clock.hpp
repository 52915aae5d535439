// warden::clock: the time source for expiry (options.clock). The default (a null clock in the
// options) is std::chrono::steady_clock; warden::manual_clock makes expiry deterministic in
// tests: time moves only when advance() is called, and reads check it at once, with no owner
// involved.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>

namespace warden {

class clock {
 public:
  virtual ~clock() = default;
  // Time on a monotonic scale. Called by readers on many threads at once: must be
  // thread-safe and must never go backwards.
  virtual std::chrono::nanoseconds now() const noexcept = 0;
};

class manual_clock final : public clock {
 public:
  explicit manual_clock(std::chrono::nanoseconds start = std::chrono::nanoseconds(0))
      : ns_(start.count()) {}

  std::chrono::nanoseconds now() const noexcept override {
    // acquire: pairs with advance(), so a reader that sees the new time also sees what the
    // advancing thread did before (a put it made, say).
    return std::chrono::nanoseconds(ns_.load(std::memory_order_acquire));
  }

  // Moves time forward by `d` (>= 0; std::invalid_argument otherwise).
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    const auto step = std::chrono::ceil<std::chrono::nanoseconds>(d).count();
    if (step < 0) throw std::invalid_argument("warden::manual_clock::advance: negative duration");
    // release: pairs with now().
    ns_.fetch_add(step, std::memory_order_release);
  }

 private:
  std::atomic<std::int64_t> ns_;
};

namespace detail {

// Nanoseconds on `c`'s scale (steady_clock when null).
inline std::int64_t now_ns(const clock* c) noexcept {
  if (c != nullptr) return c->now().count();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace detail
}  // namespace warden
