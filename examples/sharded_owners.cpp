// sharded_owners: the `owners` option, i.e. several owner threads splitting one table's writes.
//
// The Elixir pattern: one GenServer owning an ETS table serializes every write through its
// mailbox; when writes outgrow one process, the table is split among several owners (a
// PartitionSupervisor, or one table per partition), each key's writes going to the owner of
// its partition. warden::table does this inside one table: `{.shards = 16, .owners = N}`
// gives the 16 shards to N owner threads, a key's owner is fixed by its hash, and reads stay
// lock-free across all of them.
//
// Several producer threads put disjoint key ranges as fast as they can, then flush; the time
// runs from the start until every producer's flush has returned, so it counts the owners'
// work, not just the enqueueing. Each configuration runs `rounds` times and the best is
// printed.
//
// What to look at in the output: puts/s for 1, 2 and 4 owners. More owners help only when
// there are cores for them: on a 2-core machine the producers and the owners share two cores,
// so 2 or 4 owners may well be no faster (or slower) than 1. The numbers are printed as
// measured, with no claim about speed. The program checks only that every key landed with
// the right value.
//
// Usage: sharded_owners [producers=4] [keys=250000] [rounds=3] [shards=16]
//   keys: per producer.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <thread>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::parse_args;

struct config {
  std::size_t producers = 4;
  std::size_t keys = 250000;
  std::size_t rounds = 3;
  std::size_t shards = 16;
};

std::uint64_t value_of(std::uint64_t key) { return key * 2 + 1; }

struct round_result {
  double seconds = 0;
  std::size_t missing = 0;  // keys absent or with a wrong value after the flushes
};

round_result one_round(const config& cfg, std::size_t owners) {
  warden::table<std::uint64_t, std::uint64_t> t({.shards = cfg.shards, .owners = owners});
  std::latch start(static_cast<std::ptrdiff_t>(cfg.producers + 1));
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < cfg.producers; ++p) {
    producers.emplace_back([&, p] {
      const std::uint64_t first = p * cfg.keys;
      start.arrive_and_wait();
      for (std::uint64_t k = first; k < first + cfg.keys; ++k) t.put(k, value_of(k));
      t.flush();  // returns once this producer's puts are applied and visible
    });
  }
  start.arrive_and_wait();
  const auto begin = std::chrono::steady_clock::now();
  for (auto& th : producers) th.join();
  round_result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();

  // Did every key land? One snapshot: a consistent view of all owners' shards at once.
  const std::size_t n = cfg.producers * cfg.keys;
  r.missing = t.snapshot([&](const auto& view) {
    std::size_t missing = 0;
    for (std::uint64_t k = 0; k < n; ++k) {
      const auto v = view.get(k);
      if (!v || *v != value_of(k)) ++missing;
    }
    return missing + (view.size() > n ? view.size() - n : 0);
  });
  return r;  // the table drains and stops its owners here, outside the timed region
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv,
                  {{"producers", &cfg.producers},
                   {"keys", &cfg.keys},
                   {"rounds", &cfg.rounds},
                   {"shards", &cfg.shards}})) {
    return 2;
  }
  std::printf(
      "sharded_owners: %zu producer threads x %zu puts, %zu shards, best of %zu rounds, "
      "%u hardware threads\n\n",
      cfg.producers, cfg.keys, cfg.shards, cfg.rounds, std::thread::hardware_concurrency());
  std::printf("%7s %10s %10s %14s\n", "owners", "puts", "seconds", "puts/s");

  bool ok = true;
  for (const std::size_t owners : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    if (owners > cfg.shards) break;
    double best = 0;
    for (std::size_t round = 0; round < cfg.rounds; ++round) {
      const round_result r = one_round(cfg, owners);
      if (r.missing != 0) {
        std::printf("FAILED: %zu owners: %zu keys missing or wrong after flush\n", owners,
                    r.missing);
        ok = false;
      }
      best = round == 0 ? r.seconds : std::min(best, r.seconds);
    }
    const double puts = static_cast<double>(cfg.producers * cfg.keys);
    std::printf("%7zu %10.0f %10.3f %14.0f\n", owners, puts, best, puts / best);
  }
  if (!ok) return 1;
  std::printf("\nsharded_owners: OK (every key landed, with every owner count)\n");
  return 0;
}
