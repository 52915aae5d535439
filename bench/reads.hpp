// Read workloads, shared by bench_reads (the full sweep) and bench_headline: get throughput
// (independent lookups), get latency (a dependent chain, one thread), and one reader's CPU time
// per get while a writer thread puts flat out. Every subject runs the same templates; `unsync`
// (absl::flat_hash_map, no synchronization) is the reference the design targets are ratios of.
#pragma once

#include <atomic>
#include <ctime>
#include <optional>
#include <thread>

#include "common.hpp"

namespace warden_bench {

inline constexpr int kGetBatch = 64;  // gets per iteration (and per pin for table_pinned)
// The writer of reader_cpu flushes after this many puts (bounds its queue).
inline constexpr int kWriterBatch = 256;

// One iteration of independent lookups: kGetBatch gets from `stream` at `pos` (then advanced),
// summed into `sum` so that the results stay alive.
template <class C>
void independent_gets(const C& c, const u64* stream, std::size_t& pos, u64& sum) {
  with_reader(c, [&](const auto& r) {
    for (int j = 0; j < kGetBatch; ++j) {
      const std::optional<u64> v = r.get(stream[pos + j]);
      sum += v ? *v : 1;
    }
  });
  pos = (pos + kGetBatch) & kStreamMask;
}

// Independent lookups: the next key does not depend on the previous result, so the core can
// overlap the cache misses of several gets. `sum` keeps the results alive. The cache is
// g_cache<C> holding keys_for(n), n = the benchmark's first argument (setup_filled).
template <class C>
void read_throughput(benchmark::State& state, bool hits) {
  const C& c = *g_cache<C>;
  const key_set& ks = keys_for(static_cast<std::size_t>(state.range(0)));
  const u64* stream = hits ? ks.hits.data() : ks.misses.data();
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  run_loop(state, kGetBatch, [&] { independent_gets(c, stream, pos, sum); });
  benchmark::DoNotOptimize(sum);
}

// Dependent lookups: each value is the next key of one cycle through all keys, so a get cannot
// start before the previous one finished. Time per item is the latency of one get.
template <class C>
void read_chain(benchmark::State& state) {
  const C& c = *g_cache<C>;
  const key_set& ks = keys_for(static_cast<std::size_t>(state.range(0)));
  const u64 first = ks.keys[0];
  u64 k = first;
  run_loop(state, kGetBatch, [&] {
    with_reader(c, [&](const auto& r) {
      for (int j = 0; j < kGetBatch; ++j) k = r.get(k).value_or(first);  // always a hit
    });
  });
  benchmark::DoNotOptimize(k);
}

inline double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// One reader doing independent hits; with `writer`, a background thread (not a benchmark
// thread) rewrites random keys as fast as it can, flushing every kWriterBatch puts so that an
// asynchronous backend's queue stays bounded. The rewrites store the values already there, so
// the data set does not change. Reported: the reader's own CPU time per get (CPU time, since on
// 2 cores the writer and the owner also take wall-clock time from the reader) and the puts/s
// the writer achieved meanwhile.
template <class C>
void reader_cpu(benchmark::State& state, bool writer) {
  C& c = *g_cache<C>;
  const key_set& ks = keys_for(static_cast<std::size_t>(state.range(0)));
  std::atomic<bool> stop{false};
  std::atomic<u64> written{0};
  std::thread w;
  if (writer) {
    w = std::thread([&] {
      std::size_t pos = 0;
      // relaxed: a stop flag and a statistic; neither publishes other data.
      while (!stop.load(std::memory_order_relaxed)) {
        for (int j = 0; j < kWriterBatch; ++j)
          c.put(ks.writes[pos + j].first, ks.writes[pos + j].second);
        pos = (pos + kWriterBatch) & kStreamMask;
        c.flush();
        written.fetch_add(kWriterBatch, std::memory_order_relaxed);
      }
    });
    // Measure only once the writer is actually writing.
    while (written.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  }
  const u64* stream = ks.hits.data();
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  const u64 written_before = written.load(std::memory_order_relaxed);
  const double cpu_before = thread_cpu_ns();
  run_loop(state, kGetBatch, [&] { independent_gets(c, stream, pos, sum); });
  const double cpu_after = thread_cpu_ns();
  const u64 written_during = written.load(std::memory_order_relaxed) - written_before;
  stop.store(true, std::memory_order_relaxed);
  if (w.joinable()) w.join();
  benchmark::DoNotOptimize(sum);
  const auto gets = static_cast<double>(state.iterations() * kGetBatch);
  state.counters["cpu_ns_per_get"] = (cpu_after - cpu_before) / gets;
  state.counters["writer_puts_per_s"] =
      benchmark::Counter(static_cast<double>(written_during), benchmark::Counter::kIsRate);
}

}  // namespace warden_bench
