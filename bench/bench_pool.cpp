// Many caches: 1000 small tables with an owner thread each, against the same 1000 tables on a
// warden::owner_pool of 2 threads (and one hot table on each, for the pool's cost to a single
// cache). Measures: building and destroying the 1000 tables; one thread writing round-robin
// to all of them (a put and a flush per table: a round trip to its owner); update_counter back
// to back on one table. Threads of the process are reported beside each figure.
#include <dirent.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <warden/warden.hpp>

namespace {

constexpr int kTables = 1000;

int thread_count() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

using table_t = warden::table<std::uint64_t, std::uint64_t>;

std::vector<std::unique_ptr<table_t>> make_tables(const std::shared_ptr<warden::owner_pool>& pool) {
  warden::table_options o;
  o.pool = pool;
  std::vector<std::unique_ptr<table_t>> tables;
  tables.reserve(kTables);
  for (int i = 0; i < kTables; ++i) tables.push_back(std::make_unique<table_t>(o));
  return tables;
}

std::shared_ptr<warden::owner_pool> pool_for(bool pooled) {
  return pooled ? std::make_shared<warden::owner_pool>(2) : nullptr;
}

void create_and_destroy(benchmark::State& state, bool pooled) {
  int threads = 0;
  for (auto _ : state) {
    auto pool = pool_for(pooled);
    auto tables = make_tables(pool);
    threads = thread_count();
  }
  state.counters["threads"] = threads;
  state.SetItemsProcessed(state.iterations() * kTables);
}

void round_robin_put_flush(benchmark::State& state, bool pooled) {
  auto pool = pool_for(pooled);
  auto tables = make_tables(pool);
  std::uint64_t i = 0;
  for (auto _ : state) {
    for (auto& t : tables) {
      t->put(i, i);
      t->flush();
    }
    ++i;
  }
  state.counters["threads"] = thread_count();
  state.SetItemsProcessed(state.iterations() * kTables);
}

void hot_counter(benchmark::State& state, bool pooled) {
  auto pool = pool_for(pooled);
  warden::table_options o;
  o.pool = pool;
  table_t t(o);
  std::uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(t.update_counter(i++ % 1024, 1));
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  for (const bool pooled : {false, true}) {
    const std::string owners = pooled ? "pool_of_2" : "thread_each";
    benchmark::RegisterBenchmark(("create_destroy_1000_tables/owners:" + owners).c_str(),
                                 [pooled](benchmark::State& s) { create_and_destroy(s, pooled); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(
        ("put_flush_round_robin_1000_tables/owners:" + owners).c_str(),
        [pooled](benchmark::State& s) { round_robin_put_flush(s, pooled); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("update_counter_one_table/owners:" + owners).c_str(),
                                 [pooled](benchmark::State& s) { hot_counter(s, pooled); })
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
