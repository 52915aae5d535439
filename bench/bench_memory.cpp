// Memory: bytes per entry after 1,000,000 uint64 -> uint64 puts (and a flush), for each
// backend and each peer, counted by peers/memory.hpp's replacement operator new (this is the
// one translation unit of this program that includes it). Not a timing: one iteration each.
// Two fills: `burst` puts all keys and flushes once (asynchronous backends may keep queue and
// log buffers sized by that burst); `batched` flushes every 1000 puts, which shows the
// steady footprint of the data structure itself.
#include <string>

#include "common.hpp"
#include "peers/memory.hpp"

namespace warden_bench {
namespace {

constexpr std::size_t kEntries = 1000000;

constexpr std::size_t kBatchedFlush = 1000;

template <class C>
void memory(benchmark::State& state, std::size_t flush_every) {
  double bytes = 0;
  for (auto _ : state) bytes = bytes_per_entry<C>(kEntries, flush_every);
  state.counters["bytes_per_entry"] = bytes;
}

void register_all() {
  for_each_cache(write_subjects{}, [&]<class C>() {
    for (const std::size_t flush_every : {std::size_t{0}, kBatchedFlush}) {
      add(std::string("memory/fill:") + (flush_every == 0 ? "burst" : "batched") +
              "/n:1000000/subject:" + subject_name<C>,
          [flush_every](benchmark::State& st) { memory<C>(st, flush_every); })
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  });
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
