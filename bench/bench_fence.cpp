// get right after a burst of calls, and once the owner has had time to clear its fence bit.
// A burst of calls (update_counter back to back) makes the owner ask its readers to fence
// their announcements (publication.hpp, fence modes); it clears the request `quiet_wait`
// (2 ms) after its last scan, on a timed wake-up even if nothing else happens. Each iteration
// runs a burst of `calls` calls (64, or 0 for the control), waits `wait_us` (untimed), then
// times 4096 gets of 1e5 keys. `switches` is the owners' fence-mode switches per iteration: 2
// when the bit was set by the burst and cleared before the gets, which then run light; about
// 0 when the bursts come too close together for the owner ever to clear it. Compare each
// burst with its control at the same wait: a sleep alone makes the next gets slower (cold
// caches, an idle vCPU).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include <warden/table.hpp>

namespace {

using table = warden::table<std::uint64_t, std::uint64_t>;
constexpr std::uint64_t kKeys = 100'000;
constexpr int kGets = 4096;

void get_after_calls(benchmark::State& state) {
  const auto wait = std::chrono::microseconds(state.range(0));
  const int calls = static_cast<int>(state.range(1));
  table t;
  for (std::uint64_t k = 0; k < kKeys; ++k) t.put(k, k);
  t.flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::uint64_t switches_before = t.fence_mode_switches();
  std::uint64_t k = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < calls; ++i) t.update_counter(i, 1);
    std::this_thread::sleep_for(wait);
    state.ResumeTiming();
    for (int i = 0; i < kGets; ++i) {
      sum += t.get(k).value_or(0);
      k = (k + 7919) % kKeys;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kGets);
  state.counters["switches"] = static_cast<double>(t.fence_mode_switches() - switches_before) /
                               static_cast<double>(state.iterations());
}

}  // namespace

// wait 0: the gets start as the burst ends (fenced); 5000: 2.5x quiet_wait later (light).
BENCHMARK(get_after_calls)
    ->ArgsProduct({{0, 5000}, {0, 64}})
    ->ArgNames({"wait_us", "calls"})
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Iterations(200);

BENCHMARK_MAIN();
