// Mixed workloads, shared by bench_mix (the full sweep) and bench_headline: reads/writes in a
// fixed proportion over uniform or Zipf(0.99) keys. Reads are get, writes are put of an existing
// key (the key set stays fixed). Each thread flushes after every kFlushEvery of its own writes,
// so an asynchronous backend is charged for applying its writes, not only for queueing them
// (for the synchronous peers flush is a no-op). One operation in kSampleEvery is also timed on
// its own (steady_clock around it, so ~20-40 ns of clock reads are included; a sampled write
// that is a thread's 256th includes its flush); the samples of all threads are merged and
// reported as p50_ns / p99_ns.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common.hpp"

namespace warden_bench {

inline constexpr int kMixBatch = 64;          // operations per iteration
inline constexpr unsigned kFlushEvery = 256;  // a thread's writes between its flushes
inline constexpr std::size_t kMixKeys = 100000;
inline constexpr std::size_t kOpsLen = std::size_t{1} << 16;  // pattern of reads/writes, repeated
// One operation in this many is timed; a prime, so that it never falls in step with the
// flush every kFlushEvery writes.
inline constexpr unsigned kSampleEvery = 127;
inline constexpr std::size_t kMinSamples = 100;  // fewer: no percentiles reported

// The sampled latencies of the current run: every thread adds its own after its loop, then
// thread 0 computes the percentiles. Reset by the run's Setup, before its threads start.
struct sample_pool {
  std::mutex mu;
  std::vector<std::uint32_t> ns;  // guarded by mu
  std::atomic<int> merged{0};
};
inline sample_pool g_samples;

template <class C>
void setup_mix(const benchmark::State& state) {
  setup_filled<C>(state);
  g_samples.ns.clear();
  // relaxed: the run's threads are created after Setup returns, which orders this store.
  g_samples.merged.store(0, std::memory_order_relaxed);
}

// Adds this thread's samples; thread 0 then waits for the others and reports percentiles.
inline void report_samples(benchmark::State& state, const std::vector<std::uint32_t>& mine) {
  {
    std::lock_guard lock(g_samples.mu);
    g_samples.ns.insert(g_samples.ns.end(), mine.begin(), mine.end());
  }
  // release: this thread's insert happens before thread 0's acquire load sees the count.
  g_samples.merged.fetch_add(1, std::memory_order_release);
  if (state.thread_index() != 0) return;
  while (g_samples.merged.load(std::memory_order_acquire) != state.threads()) {
    std::this_thread::yield();
  }
  std::lock_guard lock(g_samples.mu);
  std::vector<std::uint32_t>& v = g_samples.ns;
  if (v.size() < kMinSamples) return;
  auto at = [&](double q) {
    auto it = v.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), it, v.end());
    return static_cast<double>(*it);
  };
  // Only thread 0 sets these, so Google Benchmark's sum over threads leaves them as they are.
  state.counters["p50_ns"] = at(0.50);
  state.counters["p99_ns"] = at(0.99);
}

// Exactly (100 - read_pct)% ones (writes) in kOpsLen slots, shuffled; built before timing.
inline const std::vector<std::uint8_t>& op_pattern(int read_pct) {
  static std::mutex mu;
  static std::map<int, std::vector<std::uint8_t>> patterns;
  std::lock_guard lock(mu);
  auto& p = patterns[read_pct];
  if (p.empty()) {
    p.assign(kOpsLen, 0);
    const std::size_t writes = kOpsLen * static_cast<std::size_t>(100 - read_pct) / 100;
    for (std::size_t i = 0; i < writes; ++i) p[i] = 1;
    rng r{static_cast<u64>(read_pct) + 1};
    for (std::size_t i = kOpsLen - 1; i > 0; --i) std::swap(p[i], p[r.below(i + 1)]);
  }
  return p;
}

template <class C>
void mix(benchmark::State& state, int read_pct, bool zipf) {
  C& c = *g_cache<C>;
  const key_set& ks = keys_for(static_cast<std::size_t>(state.range(0)));
  const u64* stream = zipf ? ks.zipf.data() : ks.hits.data();
  const std::uint8_t* ops = op_pattern(read_pct).data();
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  unsigned unflushed = 0;
  unsigned tick = 0;
  std::vector<std::uint32_t> samples;
  samples.reserve(std::size_t{1} << 16);
  run_loop(state, kMixBatch, [&] {
    for (int j = 0; j < kMixBatch; ++j) {
      const std::size_t i = pos + static_cast<std::size_t>(j);
      const u64 k = stream[i];
      const bool timed = ++tick == kSampleEvery;
      std::int64_t start = 0;
      if (timed) {
        tick = 0;
        start = now_ns();
      }
      if (ops[i & (kOpsLen - 1)] != 0) {
        c.put(k, i);
        if (++unflushed == kFlushEvery) {
          c.flush();
          unflushed = 0;
        }
      } else {
        const std::optional<u64> v = c.get(k);
        sum += v ? *v : 1;
      }
      if (timed) {
        const std::int64_t took = now_ns() - start;
        samples.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(took, UINT32_MAX)));
      }
    }
    pos = (pos + kMixBatch) & kStreamMask;
  });
  if (unflushed != 0) c.flush();  // after timing: leaves nothing queued for the next run
  benchmark::DoNotOptimize(sum);
  report_samples(state, samples);
}

}  // namespace warden_bench
