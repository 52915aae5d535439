// Write latency under busy readers, as a user sees it: one thread does put + flush in a loop
// while N threads call get flat out on the same table (1e5 keys). Each put + flush is timed on
// its own; p50 / p99 (us) and flushes per second are reported. With more reader threads than
// cores, a reader preempted inside a get holds the owner's next write back until it runs
// again; the owner waits for the set of sections it saw open, not for one after another.
//
// Uses only the table's oldest calls (get, put, flush), so the same file builds against
// earlier versions of warden for before/after comparisons.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include <warden/table.hpp>

namespace {

using table = warden::table<std::uint64_t, std::uint64_t>;
constexpr std::uint64_t kKeys = 100'000;

void flush_under_readers(benchmark::State& state) {
  const int readers = static_cast<int>(state.range(0));
  table t;
  for (std::uint64_t k = 0; k < kKeys; ++k) t.put(k, k);
  t.flush();
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  for (int r = 0; r < readers; ++r) {
    pool.emplace_back([&, r] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(r + 1), sum = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a stop flag
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum += t.get(x % kKeys).value_or(0);
      }
      benchmark::DoNotOptimize(sum);
    });
  }
  std::vector<double> us;
  std::uint64_t i = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    t.put(i % kKeys, i);
    t.flush();
    const auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    ++i;
  }
  stop = true;
  for (auto& th : pool) th.join();
  std::sort(us.begin(), us.end());
  const auto at = [&](double p) { return us[static_cast<std::size_t>(p * (us.size() - 1))]; };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["flushes_per_s"] =
      benchmark::Counter(static_cast<double>(us.size()), benchmark::Counter::kIsRate);
}

BENCHMARK(flush_under_readers)
    ->Arg(2)
    ->Arg(64)
    ->UseRealTime()
    ->MinTime(2.0)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
