// warden::clock: the time source for expiry (options.clock). The default (a null clock in the
// options) is std::chrono::steady_clock; warden::manual_clock makes expiry deterministic in
// tests: time moves only when advance() is called, and reads check it at once, with no owner
// involved.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace warden {
namespace detail {

// `d` in whole nanoseconds, rounded up, saturating at the int64 limits instead of
// overflowing (a ttl of hours::max() means "never", not a negative number).
template <class Rep, class Period>
std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
  const long double ns = std::chrono::duration<long double, std::nano>(d).count();
  if (ns >= static_cast<long double>(kMax)) return kMax;
  if (ns <= static_cast<long double>(kMin)) return kMin;
  return std::chrono::ceil<std::chrono::nanoseconds>(d).count();
}

// A put's ttl in nanoseconds (saturating_ns); `where` names the call in the
// std::invalid_argument a negative ttl gets.
template <class Rep, class Period>
std::int64_t checked_ttl_ns(std::chrono::duration<Rep, Period> ttl, const char* where) {
  const std::int64_t ns = saturating_ns(ttl);
  if (ns < 0) throw std::invalid_argument(std::string(where) + ": negative ttl");
  return ns;
}

// A deadline `timeout` from now on steady_clock, saturating.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
  using clock_t = std::chrono::steady_clock;
  const auto now = clock_t::now();
  const std::int64_t ns = saturating_ns(timeout);
  const std::int64_t left =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_t::time_point::max() - now)
          .count();
  if (ns >= left) return clock_t::time_point::max();
  return now + std::chrono::duration_cast<clock_t::duration>(std::chrono::nanoseconds(ns));
}

}  // namespace detail

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
    const std::int64_t step = detail::saturating_ns(d);
    if (step < 0) throw std::invalid_argument("warden::manual_clock::advance: negative duration");
    // release: pairs with now(). A CAS loop, so time saturates instead of wrapping.
    std::int64_t now = ns_.load(std::memory_order_relaxed);  // relaxed: the CAS rechecks
    while (!ns_.compare_exchange_weak(now,
                                      step >= std::numeric_limits<std::int64_t>::max() - now
                                          ? std::numeric_limits<std::int64_t>::max()
                                          : now + step,
                                      std::memory_order_release, std::memory_order_relaxed)) {
    }
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
