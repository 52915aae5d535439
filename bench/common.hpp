// Shared pieces of warden's benchmark suite: the subjects (warden's backends and the peers),
// their short names, the keys and key streams (all generated before timing), the one live
// prefilled cache the benchmarks share, and main().
//
// Every benchmark is a template over the cache type and uses only the calls of the
// warden::cache concept (get/put/flush/update_counter/transact/snapshot), so each subject runs
// exactly the same code. Two subjects are warden's table seen another way:
//   table_pinned  the table read through a pinned section: one pin() per batch of 64 gets
//                 (the guard announces the reader once; every other call is the table's own)
//   table_sym     the table with table_options::asymmetric_fence = false: each get pays the
//                 read-side fence, owners pay no membarrier() per publication
//   any_table     the table behind warden::any_cache, to measure the type erasure
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>

#include "peers/peers.hpp"
#include "warden/warden.hpp"

namespace warden_bench {

using u64 = std::uint64_t;

// ---- subjects -------------------------------------------------------------------------------

using table_t = warden::table<u64, u64>;
using actor_t = warden::actor<u64, u64>;

// The table with default options, read through pin(): see with_reader().
struct table_pinned : table_t {};

// The table with the read-side fence paid by each get instead of by the owner's membarrier()
// per publication (table_options::asymmetric_fence = false).
struct table_sym : table_t {
  table_sym() : table_t(warden::table_options{.asymmetric_fence = false}) {}
};

// The table behind the type-erased handle.
struct any_table : warden::any_cache<u64, u64> {
  any_table() : warden::any_cache<u64, u64>(table_t{}) {}
};

// Not a peer: the unsynchronized reference split into 16 absl maps picked by hash bits 32..35,
// as the table picks its shards, reusing the hash for the probe as the table does. It has no
// warden code at all, so it shows what sharding alone costs a lookup (the report's "anatomy"
// line). Not thread-safe; used read-only.
class sharded16_map {
 public:
  using key_type = u64;
  using mapped_type = u64;
  static constexpr bool thread_safe = false;

  std::optional<u64> get(const u64& key) const {
    const std::size_t h = absl::Hash<u64>{}(key);
    const map_type& m = shards_[(h >> 32) & 15].map;
    auto it = m.find(prehashed{key, h});
    return it == m.end() ? std::nullopt : std::optional<u64>(it->second);
  }
  void put(const u64& key, const u64& value) {
    const std::size_t h = absl::Hash<u64>{}(key);
    shards_[(h >> 32) & 15].map.insert_or_assign(key, value);
  }
  void flush() {}

 private:
  struct prehashed {
    u64 key;
    std::size_t hash;
  };
  struct hash {
    using is_transparent = void;
    std::size_t operator()(u64 k) const { return absl::Hash<u64>{}(k); }
    std::size_t operator()(const prehashed& p) const { return p.hash; }
  };
  struct eq {
    using is_transparent = void;
    bool operator()(u64 a, u64 b) const { return a == b; }
    bool operator()(u64 a, const prehashed& b) const { return a == b.key; }
    bool operator()(const prehashed& a, u64 b) const { return a.key == b; }
  };
  using map_type = absl::flat_hash_map<u64, u64, hash, eq>;
  struct alignas(128) shard {  // the table keeps each map header on lines of its own too
    map_type map;
  };
  shard shards_[16];
};

// Short names, used in benchmark names and in the report's columns.
template <class C>
inline constexpr const char* subject_name = nullptr;
template <>
inline constexpr const char* subject_name<table_t> = "table";
template <>
inline constexpr const char* subject_name<table_pinned> = "table_pinned";
template <>
inline constexpr const char* subject_name<table_sym> = "table_sym";
template <>
inline constexpr const char* subject_name<any_table> = "any_table";
template <>
inline constexpr const char* subject_name<actor_t> = "actor";
template <>
inline constexpr const char* subject_name<unsync_map<u64, u64>> = "unsync";
template <>
inline constexpr const char* subject_name<sharded16_map> = "sharded16";
template <>
inline constexpr const char* subject_name<shared_mutex_map<u64, u64>> = "shared_mutex";
template <>
inline constexpr const char* subject_name<mutex_map<u64, u64>> = "mutex";
#if defined(WARDEN_HAVE_TBB) && WARDEN_HAVE_TBB
template <>
inline constexpr const char* subject_name<tbb_map<u64, u64>> = "tbb";
#endif
#if defined(WARDEN_HAVE_LIBCUCKOO) && WARDEN_HAVE_LIBCUCKOO
template <>
inline constexpr const char* subject_name<cuckoo_map<u64, u64>> = "cuckoo";
#endif
#if defined(WARDEN_HAVE_BOOST_CFM) && WARDEN_HAVE_BOOST_CFM
template <>
inline constexpr const char* subject_name<boost_cfm<u64, u64>> = "boost_cfm";
#endif
#if defined(WARDEN_HAVE_CAF) && WARDEN_HAVE_CAF
template <>
inline constexpr const char* subject_name<caf_actor<u64, u64>> = "caf";
#endif

// Whether several threads may call the subject at once with writes among them. The
// unsynchronized reference may still be *read* by several threads at once (read-only
// concurrent lookups of absl::flat_hash_map are safe), which the read benchmarks use.
template <class C>
constexpr bool thread_safe() {
  if constexpr (requires { C::thread_safe; }) {
    return C::thread_safe;
  } else {
    return true;  // warden's backends
  }
}

// Subject lists. warden's own first; the peers in peers.hpp's order (unsync first).
using warden_subjects = type_list<table_t, table_pinned, table_sym, any_table, actor_t>;
using all_subjects = peers_detail::concat<warden_subjects, u64_peers>::type;
// For workloads where the pinned view adds nothing (writes, calls): one table row is enough.
using write_subjects =
    peers_detail::concat<type_list<table_t, table_sym, any_table, actor_t>, u64_peers>::type;

// Runs f(reader) where reader.get(k) is a lookup: the cache itself, or for table_pinned a pinned
// section opened once for the whole batch (which is what the pinned guard is for).
template <class C, class F>
inline void with_reader(const C& c, F&& f) {
  if constexpr (std::is_same_v<C, table_pinned>) {
    const auto p = c.pin();
    f(p);
  } else {
    f(c);
  }
}

// ---- keys -----------------------------------------------------------------------------------

inline u64 mix64(u64 x) {
  // splitmix64's finalizer: a bijection, so distinct inputs give distinct keys.
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline u64 key_of(u64 i) { return mix64((i + 1) * 0x9e3779b97f4a7c15ULL); }

// A small, fast, deterministic generator for building streams (never called while timing).
struct rng {
  u64 s;
  u64 next() { return mix64(s += 0x9e3779b97f4a7c15ULL); }
  u64 below(u64 n) { return next() % n; }  // bias is irrelevant at these sizes
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

inline constexpr std::size_t kStreamLen = std::size_t{1} << 20;  // 8 MiB of keys per stream
inline constexpr std::size_t kStreamMask = kStreamLen - 1;

// The keys of an n-key data set and the streams drawn from it, all built before timing.
struct key_set {
  std::size_t n = 0;
  std::vector<u64> keys;         // key_of(0..n-1): present
  std::vector<u64> chain_value;  // value stored under keys[i]: the next key of one big cycle
  std::vector<u64> hits;         // uniform draws from keys
  std::vector<u64> misses;       // uniform draws from key_of(n..2n-1): absent
  std::vector<u64> zipf;         // Zipf(0.99) draws from keys (hot keys spread at random)
  std::vector<std::pair<u64, u64>> writes;  // uniform (key, chain value): rewrites change nothing
};

inline key_set build_key_set(std::size_t n) {
  key_set ks;
  ks.n = n;
  rng r{n * 7919 + 17};
  ks.keys.resize(n);
  for (std::size_t i = 0; i < n; ++i) ks.keys[i] = key_of(i);
  // Sattolo's algorithm: a random permutation that is a single cycle, so a dependent chain of
  // lookups (value = next key) visits every key before it repeats.
  std::vector<std::size_t> perm(n);
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  for (std::size_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[r.below(i)]);
  ks.chain_value.resize(n);
  for (std::size_t i = 0; i < n; ++i) ks.chain_value[i] = ks.keys[perm[i]];

  ks.hits.resize(kStreamLen);
  ks.misses.resize(kStreamLen);
  ks.writes.resize(kStreamLen);
  for (std::size_t i = 0; i < kStreamLen; ++i) {
    ks.hits[i] = ks.keys[r.below(n)];
    ks.misses[i] = key_of(n + r.below(n));
    const std::size_t w = r.below(n);
    ks.writes[i] = {ks.keys[w], ks.chain_value[w]};
  }

  // Zipf(0.99) by inverse CDF over ranks; rank -> key through a random permutation so that the
  // hot keys land in random shards rather than in key order.
  std::vector<double> cdf(n);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) cdf[i] = (sum += 1.0 / std::pow(double(i + 1), 0.99));
  std::vector<std::size_t> rank_to_key(n);
  std::iota(rank_to_key.begin(), rank_to_key.end(), std::size_t{0});
  for (std::size_t i = n - 1; i > 0; --i) std::swap(rank_to_key[i], rank_to_key[r.below(i + 1)]);
  ks.zipf.resize(kStreamLen);
  for (std::size_t i = 0; i < kStreamLen; ++i) {
    const double u = r.unit() * sum;
    const auto rank =
        static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    ks.zipf[i] = ks.keys[rank_to_key[std::min(rank, n - 1)]];
  }
  return ks;
}

// Built once per n, on first use, and kept: benchmarks only read them.
inline const key_set& keys_for(std::size_t n) {
  static std::mutex mu;
  static std::map<std::size_t, std::unique_ptr<key_set>> sets;
  std::lock_guard lock(mu);
  auto& slot = sets[n];
  if (!slot) slot = std::make_unique<key_set>(build_key_set(n));
  return *slot;
}

// Where thread t starts in a stream: far apart, so threads do not walk the same keys in step.
inline std::size_t stream_start(int thread_index) {
  return (static_cast<std::size_t>(thread_index) * 104729 * 64) & kStreamMask;
}

// ---- the shared prefilled caches ------------------------------------------------------------
//
// Filling a cache with a million keys takes longer than measuring it, so prefilled caches are
// kept alive and reused by later benchmarks that ask for the same (subject, n). Normally only
// one is alive at a time (another request destroys it first, so idle owner threads or an idle
// CAF scheduler cannot disturb other subjects' runs), and benchmarks are registered grouped by
// subject and n. The interleaved target rounds (bench_reads) keep a few alive at once instead,
// so that they can alternate subjects without refilling. Caches are built in a Setup callback,
// which Google Benchmark runs before it starts the benchmark's threads, so every thread sees
// the result.

struct live_fixture {
  const std::type_info* type = nullptr;
  std::size_t n = 0;
  std::shared_ptr<void> cache;
};
inline std::vector<live_fixture> g_fixtures;  // oldest first

template <class C>
inline C* g_cache = nullptr;  // what the running benchmark uses; set by a Setup callback

inline void release_fixture() {
  while (!g_fixtures.empty()) g_fixtures.erase(g_fixtures.begin());  // oldest first
}
// ---- wall-clock throughput ------------------------------------------------------------------
//
// Google Benchmark times each thread on its own and averages the threads' times. With more
// threads than cores that overstates throughput: a thread that waits for a core does not start
// its timer until it runs, then often finishes within one time slice, so the average thread
// time is far below the run's wall time (64 threads on 2 cores reported 737 M gets/s). So every
// benchmark here also measures the whole run, from the first thread leaving the start barrier
// to the end barrier, and reports total operations / that time as the counter `ops_per_s`; the
// report uses it. With one thread it equals items_per_second.

struct run_clock {
  std::atomic<std::int64_t> start{INT64_MAX};
  std::atomic<std::int64_t> end{INT64_MAX};
  std::atomic<int> finished{0};
  void reset() {
    // relaxed: Setup runs before the run's threads are created, which orders these stores.
    start.store(INT64_MAX, std::memory_order_relaxed);
    end.store(INT64_MAX, std::memory_order_relaxed);
    finished.store(0, std::memory_order_relaxed);
  }
};
inline run_clock g_clock;

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline void store_min(std::atomic<std::int64_t>& a, std::int64_t v) {
  // relaxed: the values are published to thread 0 by the release/acquire pair on `finished`.
  std::int64_t cur = a.load(std::memory_order_relaxed);
  while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

// The benchmark loop: runs body() once per iteration, sets items processed, and on thread 0
// the `ops_per_s` counter (see above). Same as `for (auto _ : state) body();` plus two
// timestamps outside the timed iterations.
template <class Body>
void run_loop(benchmark::State& state, std::int64_t items_per_iteration, Body&& body) {
  auto it = state.begin();
  const auto last = state.end();  // the start barrier: every thread of the run is ready
  store_min(g_clock.start, now_ns());
  for (; it != last; ++it) body();
  // Leaving the loop passed the stop barrier: every thread has finished its iterations.
  store_min(g_clock.end, now_ns());
  state.SetItemsProcessed(state.iterations() * items_per_iteration);
  // release: this thread's store_min calls happen before thread 0's acquire load below (all
  // RMWs on `finished` form one release sequence).
  g_clock.finished.fetch_add(1, std::memory_order_release);
  if (state.thread_index() != 0) return;
  while (g_clock.finished.load(std::memory_order_acquire) != state.threads()) {
    std::this_thread::yield();
  }
  const double wall_s = static_cast<double>(g_clock.end.load(std::memory_order_relaxed) -
                                            g_clock.start.load(std::memory_order_relaxed)) *
                        1e-9;
  const double ops = static_cast<double>(state.iterations()) *
                     static_cast<double>(items_per_iteration) * state.threads();
  // Counters are summed over threads; only thread 0 sets this one, so it comes out as is.
  state.counters["ops_per_s"] = wall_s > 0 ? ops / wall_s : 0.0;
}

// A cache of type C holding keys_for(n), each key mapped to its chain value and flushed so that
// everything is visible; reused if alive, else built after destroying the oldest caches until
// fewer than `keep` remain.
template <class C>
C& filled_cache(std::size_t n, std::size_t keep) {
  for (const live_fixture& f : g_fixtures) {
    if (f.type == &typeid(C) && f.n == n) return *static_cast<C*>(f.cache.get());
  }
  while (!g_fixtures.empty() && g_fixtures.size() >= keep) g_fixtures.erase(g_fixtures.begin());
  const key_set& ks = keys_for(n);
  auto c = std::make_shared<C>();
  for (std::size_t i = 0; i < n; ++i) c->put(ks.keys[i], ks.chain_value[i]);
  c->flush();
  g_fixtures.push_back(live_fixture{&typeid(C), n, c});
  return *c;
}

// One put of a key's own value and a flush. The table applies a batch to its second copy
// lazily, when the next batch starts, so without this the first timed write would also replay
// the whole fill (about 0.1 s for 1e6 entries), and Google Benchmark would size the run from
// that one slow iteration. The peers have nothing to settle; they get the same put and flush.
template <class C>
void settle(C& c, std::size_t n) {
  const key_set& ks = keys_for(n);
  c.put(ks.keys[0], ks.chain_value[0]);
  c.flush();
}

// Setup callback: filled_cache(n) with n = the benchmark's first argument, alone, settled.
template <class C>
void setup_filled(const benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  g_cache<C> = &filled_cache<C>(n, 1);
  settle(*g_cache<C>, n);
  g_clock.reset();
}

// Setup callback for interleaved runs: as setup_filled, keeping up to 6 caches alive.
template <class C>
void setup_filled_shared(const benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  g_cache<C> = &filled_cache<C>(n, 6);
  settle(*g_cache<C>, n);
  g_clock.reset();
}

// Setup callback: a new empty cache for every run (counters start from nothing).
template <class C>
void setup_empty(const benchmark::State&) {
  release_fixture();
  auto c = std::make_shared<C>();
  g_fixtures.push_back(live_fixture{&typeid(C), 0, c});
  g_cache<C> = c.get();
  g_clock.reset();
}

// Registers a benchmark whose name is built from key:value parts, so the report can parse it.
template <class Fn>
benchmark::internal::Benchmark* add(const std::string& name, Fn&& fn) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn));
}

}  // namespace warden_bench

// main() for every benchmark binary: registration happens at run time (the subject lists are
// templates), and the live fixture is destroyed before static destructors run, because a CAF
// actor system must not be torn down that late.
#define WARDEN_BENCH_MAIN(register_fn)                        \
  int main(int argc, char** argv) {                           \
    benchmark::Initialize(&argc, argv);                       \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) { \
      return 1;                                               \
    }                                                         \
    register_fn();                                            \
    benchmark::RunSpecifiedBenchmarks();                      \
    warden_bench::release_fixture();                          \
    benchmark::Shutdown();                                    \
    return 0;                                                 \
  }
