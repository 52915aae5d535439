// Calls and writes, shared by bench_ops and bench_headline: update_counter on one hot key and
// on spread keys, a two-key transfer with transact, a snapshot reading 64 keys, and put
// throughput through the owner with the flush that makes the puts visible inside the timed
// region.
#pragma once

#include <optional>

#include "common.hpp"

namespace warden_bench {

inline constexpr std::size_t kCounterKeys = 100000;
inline constexpr std::size_t kAccounts = 1000;
inline constexpr std::size_t kSnapshotDataKeys = 100000;
inline constexpr int kSnapshotKeys = 64;
inline constexpr std::size_t kPutKeys = 1000000;
inline constexpr int kPutBatch = 1024;  // puts per iteration, then one flush

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

}  // namespace warden_bench
