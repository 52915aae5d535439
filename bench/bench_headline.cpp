// The headline: the few workloads `scripts/bench` runs by default (about two minutes on 2
// cores, build included), each for warden::table, warden::actor, the unsynchronized
// absl::flat_hash_map (the reference) and every thread-safe peer found (absl map behind
// std::shared_mutex and behind std::mutex, tbb::concurrent_hash_map, libcuckoo):
//
//   get_throughput               independent gets of 1e6 uint64 keys (uniform hits) at 1, 2
//                                and 64 threads; ops_per_s is wall-clock (common.hpp)
//   get_latency_with_64_clients  64 threads each timing every get of one of 8 flag keys while
//                                one flag is toggled every ~100 us; p50/p99/p99.9 of the
//                                merged per-get samples (latency.hpp)
//   puts_with_flush_throughput   1 producer, batches of 1024 puts of existing keys each ending
//                                with flush(), so applying them is timed too (ops.hpp)
//   update_counter_throughput    update_counter calls back to back, 1 thread, 1e5 keys
//                                drawn uniformly, from an empty cache (ops.hpp)
//   mix_throughput               90% gets / 10% puts over the 1e6 keys, 1 thread, a flush
//                                every 256 puts (mix.hpp)
//   bytes_per_entry              heap bytes per entry after 1e6 puts, a flush every 1000,
//                                counted by peers/memory.hpp's operator new (as bench_memory)
//
// The workloads are the full suite's own (reads.hpp, latency.hpp, ops.hpp, mix.hpp); only the
// selection and the names are this file's. scripts/bench runs one workload per process
// (--benchmark_filter=^<name>/) to print progress and the CPU other processes took per step.
//
// Left out: the CAF actor peer. It is warden::actor's counterpart, it is the best peer in no
// row of the full suite's last published run (docs/bench-latest.md; 0.01 M gets/s against
// millions for the others), and its headers and instantiation add about 8 s to a one-file
// compile on 2 cores. `scripts/bench --quick` and `--full` still compare against it.
#undef WARDEN_HAVE_CAF
#define WARDEN_HAVE_CAF 0

#include <string>

#include "common.hpp"
#include "latency.hpp"
#include "mix.hpp"
#include "ops.hpp"
#include "peers/memory.hpp"  // the one TU of this program: it replaces operator new
#include "reads.hpp"

namespace warden_bench {
namespace {

using headline_subjects = peers_detail::concat<type_list<table_t, actor_t>, u64_peers>::type;

constexpr long kKeys = 1000000;
constexpr std::size_t kMemoryEntries = 1000000;
constexpr std::size_t kMemoryFlushEvery = 1000;
constexpr int kMixReadPct = 90;

// Memory runs first, while peers/memory.hpp counts every allocation. Every timed benchmark's
// Setup stops the counting for good (stop_counting_allocations), so that no timed operation
// pays for the shared counter; a footprint asked for after that is refused, not misreported.
template <void (*Setup)(const benchmark::State&)>
void uncounted(const benchmark::State& state) {
  stop_counting_allocations();
  Setup(state);
}

template <class C>
void memory(benchmark::State& state) {
  if (!counting_allocations()) {
    state.SkipWithError("allocations are no longer counted: run bytes_per_entry before timings");
    return;
  }
  double bytes = 0;
  for (auto _ : state) bytes = bytes_per_entry<C>(kMemoryEntries, kMemoryFlushEvery);
  state.counters["bytes_per_entry"] = bytes;
}

void register_all() {
  for_each_cache(headline_subjects{}, [&]<class C>() {
    add("bytes_per_entry/entries:" + std::to_string(kMemoryEntries) +
            "/flush_every:" + std::to_string(kMemoryFlushEvery) + "/subject:" + subject_name<C>,
        memory<C>)
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  });
  // Grouped by subject, so that each prefilled cache is built once and is the only one alive.
  for_each_cache(headline_subjects{}, [&]<class C>() {
    const std::string s = subject_name<C>;
    for (const int t : {1, 2, 64}) {  // 64: oversubscribed on purpose (2 cores here)
      // The unsynchronized map is only read here: concurrent lookups of it are safe.
      add("get_throughput/subject:" + s,
          [](benchmark::State& st) { read_throughput<C>(st, /*hits=*/true); })
          ->Setup(uncounted<setup_filled<C>>)
          ->Arg(kKeys)
          ->ArgName("keys")
          ->Threads(t)
          ->UseRealTime();
    }
    add("puts_with_flush_throughput/batch:" + std::to_string(kPutBatch) + "/subject:" + s, puts<C>)
        ->Setup(uncounted<setup_filled<C>>)
        ->Arg(static_cast<long>(kPutKeys))
        ->ArgName("keys")
        ->Threads(1)
        ->UseRealTime();
    add("mix_throughput/gets:" + std::to_string(kMixReadPct) +
            "/puts:" + std::to_string(100 - kMixReadPct) +
            "/flush_every:" + std::to_string(kFlushEvery) + "/subject:" + s,
        [](benchmark::State& st) { mix<C>(st, kMixReadPct, /*zipf=*/false); })
        ->Setup(uncounted<setup_mix<C>>)
        ->Arg(kKeys)
        ->ArgName("keys")
        ->Threads(1)
        ->UseRealTime();
    if constexpr (thread_safe<C>()) {  // the toggler writes while the clients read
      add("get_latency_with_64_clients/subject:" + s, clients<C>)
          ->Setup(uncounted<setup_clients<C>>)
          ->Teardown(teardown_clients)
          ->Arg(static_cast<long>(kFlags))
          ->ArgName("flag_keys")
          ->Threads(kClients)
          ->UseRealTime();
    }
    add("update_counter_throughput/distinct_keys:" + std::to_string(kCounterKeys) + "/subject:" + s,
        [](benchmark::State& st) { counter<C>(st, /*hot=*/false); })
        ->Setup(uncounted<setup_empty<C>>)
        ->Threads(1)
        ->UseRealTime();
  });
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
