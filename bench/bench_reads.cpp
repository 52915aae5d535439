// Read benchmarks: get throughput (independent lookups, 1..64 threads), get latency (a
// dependent chain, one thread), and one reader's CPU time per get while a writer thread puts
// flat out. The workloads are in reads.hpp; `unsync` (absl::flat_hash_map, no synchronization)
// is the reference the design targets are ratios of.
#include <string>

#include "common.hpp"
#include "reads.hpp"

namespace warden_bench {
namespace {

// The design targets are ratios measured in one run. To keep drift on a shared, noisy VM out of
// them, the benchmarks they need run first, in rounds that alternate the subjects (their
// caches stay alive between rounds); the report takes each ratio within a round, then the
// median over rounds.
constexpr int kTargetRounds = 5;
using target_subjects =
    peers_detail::concat<type_list<unsync_map<u64, u64>, sharded16_map, table_t, table_sym,
                                   table_pinned, shared_mutex_map<u64, u64>>,
                         peers_detail::tbb_peers>::type;

void register_targets() {
  constexpr long n = 1000000;
  for (int round = 0; round < kTargetRounds; ++round) {
    const std::string r = "/round:" + std::to_string(round);
    for_each_cache(target_subjects{}, [&]<class C>() {
      for (const int t : {1, 2}) {
        add("target" + r + "/op:hit/subject:" + subject_name<C>,
            [](benchmark::State& st) { read_throughput<C>(st, true); })
            ->Setup(setup_filled_shared<C>)
            ->Arg(n)
            ->ArgName("n")
            ->Threads(t)
            ->UseRealTime();
      }
    });
    for_each_cache(type_list<table_t, table_pinned, table_sym>{}, [&]<class C>() {
      for (const bool writer : {false, true}) {
        add("target_cpu" + r + "/writer:" + std::to_string(writer ? 1 : 0) +
                "/subject:" + subject_name<C>,
            [writer](benchmark::State& st) { reader_cpu<C>(st, writer); })
            ->Setup(setup_filled_shared<C>)
            ->Arg(n)
            ->ArgName("n")
            ->Threads(1)
            ->UseRealTime();
      }
    });
  }
}

void register_all() {
  register_targets();
  const int threads[] = {1, 2, 4, 64};  // 64: oversubscribed on purpose (2 cores here)
  for (const long n : {100000L, 1000000L}) {
    // Grouped by (n, subject) so that each prefilled cache is built once.
    for_each_cache(all_subjects{}, [&]<class C>() {
      const std::string s = subject_name<C>;
      for (const bool hits : {true, false}) {
        for (const int t : threads) {
          add("reads/mode:tput/op:" + std::string(hits ? "hit" : "miss") + "/subject:" + s,
              [hits](benchmark::State& st) { read_throughput<C>(st, hits); })
              ->Setup(setup_filled<C>)
              ->Arg(n)
              ->ArgName("n")
              ->Threads(t)
              ->UseRealTime();
        }
      }
      add("reads/mode:chain/op:hit/subject:" + s, read_chain<C>)
          ->Setup(setup_filled<C>)
          ->Arg(n)
          ->ArgName("n")
          ->Threads(1)
          ->UseRealTime();
      if (n != 1000000) return;
      for (const bool writer : {false, true}) {
        if (writer && !thread_safe<C>()) continue;  // the reference cannot take a writer
        add("reader_cpu/writer:" + std::to_string(writer ? 1 : 0) + "/subject:" + s,
            [writer](benchmark::State& st) { reader_cpu<C>(st, writer); })
            ->Setup(setup_filled<C>)
            ->Arg(n)
            ->ArgName("n")
            ->Threads(1)
            ->UseRealTime();
      }
    });
  }
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
