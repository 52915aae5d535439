// Many clients: 64 threads on a 2-core machine check feature flags while a background thread
// toggles one; p50 / p99 / p99.9 of one get and throughput. The workload is in latency.hpp.
#include <string>

#include "common.hpp"
#include "latency.hpp"

namespace warden_bench {
namespace {

void register_all() {
  for_each_cache(write_subjects{}, [&]<class C>() {
    if constexpr (thread_safe<C>()) {
      add(std::string("clients/flags:8/subject:") + subject_name<C>, clients<C>)
          ->Setup(setup_clients<C>)
          ->Teardown(teardown_clients)
          ->Arg(static_cast<long>(kFlags))
          ->ArgName("n")
          ->Threads(kClients)
          ->UseRealTime();
    }
  });
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
