// Many clients, shared by bench_latency and bench_headline: kClients threads (64, on a 2-core
// machine) check feature flags (get of one of kFlags flag keys) while a background thread
// toggles a flag every ~100 us. Each get is timed on its own (steady_clock around the call,
// which is what a client waits); the per-thread samples are merged after the run and reported
// as p50 / p99 / p99.9 / max counters (ns), with throughput (ops_per_s).
#pragma once

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common.hpp"

namespace warden_bench {

inline constexpr int kClients = 64;
inline constexpr std::size_t kFlags = 8;
inline constexpr auto kTogglePeriod = std::chrono::microseconds(100);

// State of the current run, shared by its threads. Replaced by the next run's Setup only after
// Google Benchmark has joined every thread of this one.
struct clients_run {
  std::mutex mu;
  std::vector<std::uint32_t> samples;  // every client's latencies, merged (ns)
  std::unique_ptr<std::barrier<>> merged;
  std::jthread toggler;
};
inline clients_run g_clients;

template <class C>
void setup_clients(const benchmark::State& state) {
  setup_filled<C>(state);  // the kFlags flags
  g_clients.samples.clear();
  g_clients.merged = std::make_unique<std::barrier<>>(state.threads());
  C* c = g_cache<C>;
  g_clients.toggler = std::jthread([c](std::stop_token stop) {
    const key_set& ks = keys_for(kFlags);
    for (u64 i = 0; !stop.stop_requested(); ++i) {
      c->put(ks.keys[i % kFlags], i);
      std::this_thread::sleep_for(kTogglePeriod);
    }
  });
}

inline void teardown_clients(const benchmark::State&) {
  g_clients.toggler = std::jthread();  // requests stop and joins
}

inline double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

template <class C>
void clients(benchmark::State& state) {
  using clock = std::chrono::steady_clock;
  const C& c = *g_cache<C>;
  const key_set& ks = keys_for(kFlags);
  std::vector<std::uint32_t> lat;
  lat.reserve(static_cast<std::size_t>(state.max_iterations));
  std::size_t i = static_cast<std::size_t>(state.thread_index());
  u64 sum = 0;
  run_loop(state, 1, [&] {
    const u64 k = ks.keys[i++ % kFlags];
    const auto t0 = clock::now();
    const std::optional<u64> v = c.get(k);
    const auto t1 = clock::now();
    sum += v ? *v : 1;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    lat.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(ns, UINT32_MAX)));
  });
  benchmark::DoNotOptimize(sum);
  {
    std::lock_guard lock(g_clients.mu);
    g_clients.samples.insert(g_clients.samples.end(), lat.begin(), lat.end());
  }
  g_clients.merged->arrive_and_wait();  // every thread's samples are in
  if (state.thread_index() == 0) {
    // Counters are summed over threads; only thread 0 sets these, so they come out as is.
    auto& s = g_clients.samples;
    state.counters["p50_ns"] = percentile(s, 0.50);
    state.counters["p99_ns"] = percentile(s, 0.99);
    state.counters["p999_ns"] = percentile(s, 0.999);
    state.counters["max_ns"] = *std::max_element(s.begin(), s.end());
  }
}

}  // namespace warden_bench
