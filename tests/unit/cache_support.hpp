// What the cache contract tests share (cache_bound_test.cpp, cache_calls_test.cpp,
// cache_feed_test.cpp): the contract of shared/DESIGN.md "A real cache", run on the backends
// in `cache_backends`. Each test can fail if its promise breaks. Expiry runs on
// warden::manual_clock, so it is exact and needs no sleeping. The concurrent tests print their
// seed (WARDEN_TEST_SEED replays it) and scale their work by WARDEN_TEST_SCALE (default 1).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../support/backends.hpp"

namespace warden_test {

using namespace std::chrono_literals;
using u64 = std::uint64_t;
using i64 = std::int64_t;

struct test_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline double work_scale() {
  static const double s = [] {
    const char* e = std::getenv("WARDEN_TEST_SCALE");
    const double v = e ? std::atof(e) : 1.0;
    return v > 0 ? v : 1.0;
  }();
  return s;
}
inline int scaled(int n) { return std::max(1, static_cast<int>(n * work_scale())); }

// The seed of the concurrent tests: printed once, replayable with WARDEN_TEST_SEED.
inline u64 test_seed() {
  static const u64 seed = [] {
    const char* e = std::getenv("WARDEN_TEST_SEED");
    const u64 v = e ? std::strtoull(e, nullptr, 10) : std::random_device{}();
    std::printf("cache_test seed: %llu (replay with WARDEN_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(v), static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

// Spins (yielding) until pred() or the timeout; returns pred().
template <class P>
bool wait_until(P pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Every live entry, as a snapshot sees it.
template <class C>
auto contents(const C& c) {
  using K = typename C::key_type;
  using V = typename C::mapped_type;
  return c.snapshot([](auto& view) {
    std::map<K, V> m;
    view.for_each([&](const K& k, const V& v) { m.emplace(k, v); });
    return m;
  });
}

// Applies a change batch to a mirror of the cache.
template <class K, class V>
void apply_batch(std::map<K, V>& m, const warden::change_batch<K, V>& b) {
  for (const auto& ch : b) {
    if (ch.cause == warden::change_cause::write) {
      if (!ch.value) throw test_failure("a write change without its value");
      m.insert_or_assign(ch.key, *ch.value);
    } else {
      m.erase(ch.key);
    }
  }
}

template <class Maker>
class CacheContract : public ::testing::Test {
 protected:
  template <class K, class V>
  static auto make(const cache_opts& o = {}) {
    return Maker::template make<K, V>(o);
  }
};

}  // namespace warden_test
