// Self-check for the benchmark peers (not a benchmark): every peer available in this build must
// honour warden's cache calls for uint64_t -> uint64_t, its counters must be atomic under
// concurrent callers, and its footprint is printed as bytes per entry. Any failed check prints
// the peer and condition and aborts. Arguments select peers whose name contains one of them,
// e.g. `peers_check tbb caf`; `--quick` divides the workloads by 10, for slow sanitizer runs.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <vector>

#include "peers/memory.hpp"  // the one TU of this program that replaces operator new
#include "peers/peers.hpp"

namespace {

using u64 = std::uint64_t;

int scale_down = 1;  // 10 with --quick

[[noreturn]] void fail(const char* peer, const char* expr, int line) {
  std::fprintf(stderr, "peers_check: %s: check failed at line %d: %s\n", peer, line, expr);
  std::abort();
}

// Unlike assert(), never compiled out.
#define PEERS_CHECK(cond) ((cond) ? static_cast<void>(0) : fail(Cache::name, #cond, __LINE__))

template <class Cache>
void check_semantics() {
  Cache c;
  PEERS_CHECK(c.size() == 0);
  PEERS_CHECK(!c.get(1).has_value());
  PEERS_CHECK(!c.contains(1));

  c.put(1, 10);
  c.flush();
  PEERS_CHECK(c.get(1) == 10u);
  PEERS_CHECK(c.contains(1));
  PEERS_CHECK(c.size() == 1);

  c.put(1, 11);  // overwrite, not a second entry
  c.put(2, 20);
  c.flush();
  PEERS_CHECK(c.get(1) == 11u);
  PEERS_CHECK(c.get(2) == 20u);
  PEERS_CHECK(c.size() == 2);

  c.erase(1);
  c.erase(99);  // absent key: a no-op
  c.flush();
  PEERS_CHECK(!c.get(1).has_value());
  PEERS_CHECK(!c.contains(1));
  PEERS_CHECK(c.get(2) == 20u);
  PEERS_CHECK(c.size() == 1);

  // A thread reads its own writes even without flush(): trivially for the synchronous peers,
  // and for the actor because one sender's messages are handled in order.
  c.put(3, 30);
  PEERS_CHECK(c.get(3) == 30u);
  c.erase(3);
  PEERS_CHECK(!c.contains(3));

  PEERS_CHECK(c.update_counter(7, 5) == 5u);  // a missing key counts from 0
  PEERS_CHECK(c.update_counter(7, 3) == 8u);
  PEERS_CHECK(c.get(7) == 8u);
  c.put(8, 100);
  PEERS_CHECK(c.update_counter(8, 1) == 101u);
  PEERS_CHECK(c.size() == 3);
}

// 4 threads x 10000 increments of one key must end at 40000, and the values returned must be
// exactly 1..40000: a lost or duplicated update would show as a repeated or missing value.
template <class Cache>
void check_counter() {
  constexpr int kThreads = 4;
  const int kIncrements = 10000 / scale_down;
  constexpr u64 kKey = 42;
  Cache c;
  std::vector<std::vector<u64>> seen(kThreads);
  auto work = [&](int t) {
    seen[t].reserve(kIncrements);
    for (int i = 0; i < kIncrements; ++i) seen[t].push_back(c.update_counter(kKey, 1));
  };
  if constexpr (Cache::thread_safe) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
    for (auto& th : threads) th.join();
  } else {
    for (int t = 0; t < kThreads; ++t) work(t);  // the unsynchronized reference: one thread
  }
  PEERS_CHECK(c.get(kKey) == static_cast<u64>(kThreads * kIncrements));
  std::vector<u64> all;
  for (const auto& s : seen) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) PEERS_CHECK(all[i] == i + 1);
}

// Concurrent writers on disjoint keys, each flushing its own writes, then a reader that joined
// them must see every surviving entry.
template <class Cache>
void check_concurrent_writes() {
  if constexpr (Cache::thread_safe) {
    constexpr u64 kThreads = 4;
    const u64 kKeys = 2000 / scale_down;
    Cache c;
    std::vector<std::thread> threads;
    for (u64 t = 0; t < kThreads; ++t) {
      threads.emplace_back([&c, t, kKeys] {
        for (u64 i = 0; i < kKeys; ++i) c.put(t * kKeys + i, i);
        for (u64 i = 0; i < kKeys; i += 2) c.erase(t * kKeys + i);
        for (u64 i = 1; i < kKeys; i += 2) (void)c.get(t * kKeys + i);
        c.flush();
      });
    }
    for (auto& th : threads) th.join();
    PEERS_CHECK(c.size() == kThreads * kKeys / 2);
    for (u64 k = 0; k < kThreads * kKeys; ++k) {
      if (k % 2 == 0) {
        PEERS_CHECK(!c.contains(k));
      } else {
        PEERS_CHECK(c.get(k) == k % kKeys);
      }
    }
  }
}

bool selected(std::string_view name, const std::vector<std::string_view>& filters) {
  if (filters.empty()) return true;
  for (std::string_view f : filters) {
    if (name.find(f) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> filters;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--quick") {
      scale_down = 10;
    } else {
      filters.push_back(arg);
    }
  }
  const std::size_t kEntries = 100000 / static_cast<std::size_t>(scale_down);
  int checked = 0;
  warden_bench::for_each_cache(warden_bench::u64_peers{}, [&]<class Cache>() {
    if (!selected(Cache::name, filters)) return;
    std::printf("%-32s ", Cache::name);
    std::fflush(stdout);
    check_semantics<Cache>();
    check_counter<Cache>();
    check_concurrent_writes<Cache>();
    std::printf("ok   %7.1f bytes/entry (%zu keys)\n",
                warden_bench::bytes_per_entry<Cache>(kEntries), kEntries);
    ++checked;
  });
  if (checked == 0) {
    std::fprintf(stderr, "peers_check: no peer matched the arguments\n");
    return 1;
  }
  return 0;
}
