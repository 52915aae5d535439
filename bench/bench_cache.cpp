// The cache features, measured against the same cache without them, in one run:
//  - get on 1e6 keys, all hits, 1 and 2 threads: plain table, bounded (max_size above n, so
//    nothing is evicted but every get records its access), expiring (expire_after_write of an
//    hour, so every get reads the clock), and get_or_load on the same hits;
//  - the clock reads the expiry check may cost (steady_clock, a manual_clock, the TSC);
//  - get_or_load misses with a trivial loader (loads per second, each a call to the owner);
//  - puts + flush of new keys: unbounded, and bounded to 1e5 entries (evicting all along);
//  - the owner sweeping 1e6 expired entries (manual clock advanced past them, then flush);
//  - puts + flush with a change-feed subscriber attached and without, and the delivery lag;
//  - feed latency: one put + flush at a time, from just before the put to the subscriber's
//    call for that batch (p50 and p99 over every batch);
//  - dump and restore of 1e6 uint64 entries (bytes per second).
// Names are key:value parts, as in the other binaries, so bench/report.py can read them.
#include <sstream>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "common.hpp"

namespace warden_bench {
namespace {

constexpr std::size_t kKeys = 1000000;
constexpr int kBatch = 64;

enum class feature { none, bounded, expiring };
const char* name_of(feature f) {
  return f == feature::none ? "none" : f == feature::bounded ? "bounded" : "expiring";
}

warden::table_options options_for(feature f) {
  warden::table_options o;
  if (f == feature::bounded) o.max_size = 2 * kKeys;
  if (f == feature::expiring) o.expire_after_write = std::chrono::hours(1);
  return o;
}

// One filled table per feature, kept for the whole run (filling takes longer than measuring).
table_t& filled(feature f) {
  static std::unique_ptr<table_t> tables[3];
  auto& t = tables[static_cast<int>(f)];
  if (!t) {
    t = std::make_unique<table_t>(options_for(f));
    const key_set& ks = keys_for(kKeys);
    for (std::size_t i = 0; i < kKeys; ++i) {
      t->put(ks.keys[i], ks.chain_value[i]);
      if (i % 4096 == 4095) t->flush();
    }
    t->flush();
  }
  return *t;
}

void gets(benchmark::State& state, feature f, bool via_loader) {
  table_t& t = filled(f);
  const key_set& ks = keys_for(kKeys);
  std::size_t pos = stream_start(state.thread_index());
  u64 sum = 0;
  run_loop(state, kBatch, [&] {
    for (int j = 0; j < kBatch; ++j) {
      const u64 k = ks.hits[pos + j];
      if (via_loader) {
        sum += t.get_or_load(k, [](const u64& key) { return key; });
      } else {
        sum += t.get(k).value_or(1);
      }
    }
    pos = (pos + kBatch) & kStreamMask;
  });
  benchmark::DoNotOptimize(sum);
}

void clock_reads(benchmark::State& state, int kind) {
  warden::manual_clock manual(std::chrono::seconds(1));
  const warden::clock* c = kind == 1 ? &manual : nullptr;
  std::int64_t sum = 0;
  for (auto _ : state) {
    if (kind == 2) {
#if defined(__x86_64__)
      sum += static_cast<std::int64_t>(__rdtsc());
#endif
    } else {
      sum += warden::detail::now_ns(c);
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

void loads(benchmark::State& state) {
  table_t t;
  u64 next = 0, sum = 0;
  for (auto _ : state) sum += t.get_or_load(key_of(next++), [](const u64& k) { return k; });
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

constexpr int kPutBatch = 256;

void new_key_puts(benchmark::State& state, bool bounded) {
  warden::table_options o;
  if (bounded) o.max_size = 100000;
  o.record_stats = true;
  table_t t(o);
  u64 next = 0;
  run_loop(state, kPutBatch, [&] {
    for (int j = 0; j < kPutBatch; ++j, ++next) t.put(key_of(next), next);
    t.flush();
  });
  state.counters["evictions"] = static_cast<double>(t.stats().evictions);
}

void sweep(benchmark::State& state, bool actor) {
  for (auto _ : state) {
    state.PauseTiming();
    warden::manual_clock clock(std::chrono::seconds(1));
    auto run = [&](auto& c) {
      for (std::size_t i = 0; i < kKeys; ++i) {
        c.put(key_of(i), i, std::chrono::seconds(10));
        if (i % 4096 == 4095) c.flush();
      }
      c.flush();
      clock.advance(std::chrono::seconds(10));
      state.ResumeTiming();
      c.flush();  // the owner removes every expired entry before replying
      state.PauseTiming();
      if (c.size() != 0) state.SkipWithError("expired entries left after flush");
    };
    if (actor) {
      actor_t c(warden::actor_options{.clock = &clock});
      run(c);
    } else {
      table_t c(warden::table_options{.clock = &clock});
      run(c);
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kKeys));
}

void feed_puts(benchmark::State& state, bool subscribed) {
  table_t t;
  std::vector<std::uint64_t> lag_ns;
  warden::subscription sub;
  if (subscribed) sub = t.subscribe([](const warden::change_batch<u64, u64>&) {});
  const key_set& ks = keys_for(kKeys);
  std::size_t pos = 0;
  run_loop(state, kPutBatch, [&] {
    for (int j = 0; j < kPutBatch; ++j) t.put(ks.writes[pos + j].first, ks.writes[pos + j].second);
    pos = (pos + kPutBatch) & kStreamMask;
    t.flush();
  });
  sub.sync();
  const auto st = t.stats();
  state.counters["feed_max_lag_us"] = static_cast<double>(st.feed_max_lag_ns) / 1e3;
  state.counters["batches"] = static_cast<double>(st.feed_delivered);
}

// One put + flush per iteration, so each flush publishes exactly one batch (sequence i + 1):
// the subscriber stamps its arrival, the producer the instant before its put.
void feed_latency(benchmark::State& state) {
  table_t t;
  std::vector<std::chrono::steady_clock::time_point> sent, arrived;
  sent.reserve(1 << 20);
  arrived.resize(1 << 20);
  std::atomic<std::uint64_t> batches{0};  // relaxed: read after sync(), which orders it
  warden::subscription sub = t.subscribe([&](const warden::change_batch<u64, u64>& b) {
    if (b.sequence() <= arrived.size())
      arrived[b.sequence() - 1] = std::chrono::steady_clock::now();
    batches.fetch_add(1, std::memory_order_relaxed);
  });
  u64 next = 0;
  for (auto _ : state) {
    if (sent.size() == arrived.size()) break;
    sent.push_back(std::chrono::steady_clock::now());
    t.put(key_of(next), next);
    ++next;
    t.flush();
  }
  sub.sync();
  if (batches.load(std::memory_order_relaxed) != sent.size()) {
    state.SkipWithError("a flush published other than one batch");
    return;
  }
  std::vector<double> us(sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    us[i] = std::chrono::duration<double, std::micro>(arrived[i] - sent[i]).count();
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[(us.size() - 1) * 99 / 100];
  state.SetItemsProcessed(static_cast<std::int64_t>(sent.size()));
}

void dump_restore(benchmark::State& state, bool restore) {
  table_t& t = filled(feature::none);
  std::string bytes;
  {
    std::ostringstream os;
    t.dump(os);
    bytes = std::move(os).str();
  }
  for (auto _ : state) {
    if (restore) {
      state.PauseTiming();
      table_t target;
      std::istringstream is(bytes);
      state.ResumeTiming();
      target.restore(is);
      state.PauseTiming();
      if (target.size() != kKeys) state.SkipWithError("restore lost entries");
      state.ResumeTiming();
    } else {
      std::ostringstream os;
      t.dump(os);
      benchmark::DoNotOptimize(os);
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
  state.counters["bytes_per_entry"] = static_cast<double>(bytes.size()) / kKeys;
}

void register_all() {
  for (const feature f : {feature::none, feature::bounded, feature::expiring}) {
    for (const int threads : {1, 2}) {
      add(std::string("cache_get/features:") + name_of(f) + "/subject:table",
          [f](benchmark::State& st) { gets(st, f, false); })
          ->Setup([](const benchmark::State&) { g_clock.reset(); })
          ->Threads(threads)
          ->UseRealTime();
    }
  }
  for (const int threads : {1, 2}) {
    add("cache_get/features:none/subject:table_get_or_load",
        [](benchmark::State& st) { gets(st, feature::none, true); })
        ->Setup([](const benchmark::State&) { g_clock.reset(); })
        ->Threads(threads)
        ->UseRealTime();
  }
  for (const int kind : {0, 1, 2}) {
    add(std::string("clock_read/kind:") + (kind == 0   ? "steady"
                                           : kind == 1 ? "manual"
                                                       : "tsc"),
        [kind](benchmark::State& st) { clock_reads(st, kind); });
  }
  add("get_or_load/op:miss/subject:table", loads)->UseRealTime();
  for (const bool bounded : {false, true}) {
    add(std::string("new_key_puts/bounded:") + (bounded ? "100000" : "no") + "/subject:table",
        [bounded](benchmark::State& st) { new_key_puts(st, bounded); })
        ->Setup([](const benchmark::State&) { g_clock.reset(); })
        ->UseRealTime();
  }
  for (const bool actor : {false, true}) {
    add(std::string("sweep/n:1000000/subject:") + (actor ? "actor" : "table"),
        [actor](benchmark::State& st) { sweep(st, actor); })
        ->Iterations(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const bool subscribed : {false, true}) {
    add(std::string("feed_puts/subscribers:") + (subscribed ? "1" : "0") + "/subject:table",
        [subscribed](benchmark::State& st) { feed_puts(st, subscribed); })
        ->Setup([](const benchmark::State&) { g_clock.reset(); })
        ->UseRealTime();
  }
  add("feed_latency/op:put_to_delivery/subject:table", feed_latency)->UseRealTime();
  for (const bool restore : {false, true}) {
    add(std::string(restore ? "restore" : "dump") + "/n:1000000/subject:table",
        [restore](benchmark::State& st) { dump_restore(st, restore); })
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
