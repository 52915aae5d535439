// Mixed workloads: reads/writes in fixed proportions (100/0, 99/1, 90/10, 50/50, 0/100) over
// uniform and Zipf(0.99) keys, at 1, 2, 4 and 64 threads; the workload (flushes, sampled
// latencies) is in mix.hpp.
#include <string>

#include "common.hpp"
#include "mix.hpp"

namespace warden_bench {
namespace {

void register_all() {
  for_each_cache(write_subjects{}, [&]<class C>() {
    const std::string s = subject_name<C>;
    for (const bool zipf : {false, true}) {
      for (const int read_pct : {100, 99, 90, 50, 0}) {
        for (const int t : {1, 2, 4, 64}) {
          if (t > 1 && !thread_safe<C>()) continue;  // the reference only single-threaded
          add("mix/reads:" + std::to_string(read_pct) + "/dist:" + (zipf ? "zipf" : "uniform") +
                  "/subject:" + s,
              [read_pct, zipf](benchmark::State& st) { mix<C>(st, read_pct, zipf); })
              ->Setup(setup_mix<C>)
              ->Arg(static_cast<long>(kMixKeys))
              ->ArgName("n")
              ->Threads(t)
              ->UseRealTime();
        }
      }
    }
  });
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
