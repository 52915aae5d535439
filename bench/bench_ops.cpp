// Calls and writes: update_counter on one hot key and on spread keys, a two-key transfer with
// transact, a snapshot reading 64 keys, and put throughput through the owner with the flush
// that makes the puts visible inside the timed region (one producer and four).
#include <optional>
#include <string>

#include "common.hpp"

namespace warden_bench {
namespace {

constexpr std::size_t kCounterKeys = 100000;
constexpr std::size_t kAccounts = 1000;
constexpr std::size_t kSnapshotDataKeys = 100000;
constexpr int kSnapshotKeys = 64;
constexpr std::size_t kPutKeys = 1000000;
constexpr int kPutBatch = 1024;  // puts per iteration, then one flush

// One update_counter per iteration on an initially empty cache (a missing key counts from 0).
template <class C>
void counter(benchmark::State& state, bool hot) {
  C& c = *g_cache<C>;
  const key_set& ks = keys_for(kCounterKeys);
  const u64 hot_key = ks.keys[0];
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  run_loop(state, 1, [&] {
    const u64 k = hot ? hot_key : ks.hits[pos];
    pos = (pos + 1) & kStreamMask;
    sum += c.update_counter(k, 1);
  });
  benchmark::DoNotOptimize(sum);
}

// Moves one unit between two distinct random accounts; all-or-nothing by transact's contract.
template <class C>
void transfer(benchmark::State& state) {
  C& c = *g_cache<C>;
  const key_set& ks = keys_for(kAccounts);
  std::size_t pos = stream_start(state.thread_index());
  run_loop(state, 1, [&] {
    const u64 from = ks.hits[pos];
    u64 to = ks.hits[pos + 1];
    if (to == from) to = from == ks.keys[0] ? ks.keys[1] : ks.keys[0];
    pos = (pos + 2) & kStreamMask;
    c.transact([&](auto& tx) {
      const u64 a = tx.get(from).value_or(0);
      const u64 b = tx.get(to).value_or(0);
      tx.put(from, a - 1);
      tx.put(to, b + 1);
    });
  });
}

// One snapshot per iteration reading 64 random keys (items = snapshots).
template <class C>
void snapshot64(benchmark::State& state) {
  const C& c = *g_cache<C>;
  const key_set& ks = keys_for(kSnapshotDataKeys);
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  run_loop(state, 1, [&] {
    const u64* keys = ks.hits.data() + pos;
    pos = (pos + kSnapshotKeys) & kStreamMask;
    sum += c.snapshot([keys](const auto& view) {
      u64 s = 0;
      for (int j = 0; j < kSnapshotKeys; ++j) s += view.get(keys[j]).value_or(1);
      return s;
    });
  });
  benchmark::DoNotOptimize(sum);
}

// kPutBatch puts of existing keys (values already there: the data set stays the same), then a
// flush, so the time covers applying and publishing the writes, not only queueing them.
template <class C>
void puts(benchmark::State& state) {
  C& c = *g_cache<C>;
  const key_set& ks = keys_for(kPutKeys);
  std::size_t pos = stream_start(state.thread_index());
  run_loop(state, kPutBatch, [&] {
    for (int j = 0; j < kPutBatch; ++j) c.put(ks.writes[pos + j].first, ks.writes[pos + j].second);
    pos = (pos + kPutBatch) & kStreamMask;
    c.flush();
  });
}

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
