// Calls and writes: update_counter on one hot key and on spread keys, a two-key transfer with
// transact, a snapshot reading 64 keys, and put throughput through the owner with the flush
// that makes the puts visible inside the timed region (one producer and four). The workloads
// are in ops.hpp.
#include <string>
#include <type_traits>

#include "common.hpp"
#include "ops.hpp"

namespace warden_bench {
namespace {

template <class C>
constexpr bool is_warden() {
  return std::is_same_v<C, table_t> || std::is_same_v<C, table_sym> ||
         std::is_same_v<C, any_table> || std::is_same_v<C, actor_t>;
}

void register_all() {
  for_each_cache(write_subjects{}, [&]<class C>() {
    const std::string s = subject_name<C>;
    for (const int t : {1, 2, 4}) {
      if (t > 1 && !thread_safe<C>()) continue;
      for (const bool hot : {true, false}) {
        add("counter/keys:" + std::string(hot ? "hot" : "spread") + "/subject:" + s,
            [hot](benchmark::State& st) { counter<C>(st, hot); })
            ->Setup(setup_empty<C>)
            ->Threads(t)
            ->UseRealTime();
      }
    }
    // transact and snapshot are warden's calls; the peers have no equivalent.
    if constexpr (is_warden<C>()) {
      for (const int t : {1, 2, 4}) {
        add("transact/op:transfer/subject:" + s, transfer<C>)
            ->Setup(setup_filled<C>)
            ->Arg(static_cast<long>(kAccounts))
            ->ArgName("n")
            ->Threads(t)
            ->UseRealTime();
      }
      for (const int t : {1, 2, 4}) {
        add("snapshot/keys:64/subject:" + s, snapshot64<C>)
            ->Setup(setup_filled<C>)
            ->Arg(static_cast<long>(kSnapshotDataKeys))
            ->ArgName("n")
            ->Threads(t)
            ->UseRealTime();
      }
    }
    for (const int t : {1, 4}) {
      if (t > 1 && !thread_safe<C>()) continue;
      add("puts/batch:" + std::to_string(kPutBatch) + "/subject:" + s, puts<C>)
          ->Setup(setup_filled<C>)
          ->Arg(static_cast<long>(kPutKeys))
          ->ArgName("n")
          ->Threads(t)
          ->UseRealTime();
    }
  });
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
