// Mixed workloads: reads/writes in fixed proportions (100/0, 99/1, 90/10, 50/50, 0/100) over
// uniform and Zipf(0.99) keys, at 1, 2, 4 and 64 threads. Reads are get, writes are put of an
// existing key (the key set stays fixed). Each thread flushes after every kFlushEvery of its own
// writes, so an asynchronous backend is charged for applying its writes, not only for queueing
// them (for the synchronous peers flush is a no-op).
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"

namespace warden_bench {
namespace {

constexpr int kBatch = 64;             // operations per iteration
constexpr unsigned kFlushEvery = 256;  // a thread's writes between its flushes
constexpr std::size_t kMixKeys = 100000;
constexpr std::size_t kOpsLen = std::size_t{1} << 16;  // pattern of reads/writes, repeated

// Exactly (100 - read_pct)% ones (writes) in kOpsLen slots, shuffled; built before timing.
const std::vector<std::uint8_t>& op_pattern(int read_pct) {
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
  run_loop(state, kBatch, [&] {
    for (int j = 0; j < kBatch; ++j) {
      const std::size_t i = pos + static_cast<std::size_t>(j);
      const u64 k = stream[i];
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
    }
    pos = (pos + kBatch) & kStreamMask;
  });
  if (unflushed != 0) c.flush();  // after timing: leaves nothing queued for the next run
  benchmark::DoNotOptimize(sum);
}

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
              ->Setup(setup_filled<C>)
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
