// counters: the read-modify-write race, shown honestly, and the two ways warden closes it.
//
// The Elixir pattern: a page-view counter in ETS. Doing `:ets.lookup` then `:ets.insert(v+1)`
// from many processes loses updates (two processes read 41, both write 42); the fix is
// `:ets.update_counter/3`, one atomic step in the table. A GenServer holding the count has
// the same race as soon as clients do `get` then `put` as two separate messages.
//
// N threads each add 1 to one key, `iterations` times, three ways, on both backends (the code
// is written once against warden::any_cache<std::string, std::int64_t>):
//   1. get + put      two operations: other threads' increments between them are overwritten.
//                     On the table it loses even with a single thread: put is a cast, and the
//                     thread's next get may run before the owner has applied it (there is no
//                     read-your-writes without flush()).
//   2. update_counter one call that the owner applies atomically: never loses an increment,
//                     and every call returns a distinct new value.
//   3. transact       get and put inside one transaction, which runs on the owner: also exact.
//
// What to look at in the output: the "lost" column. Row 1 usually loses many increments (how
// many depends on the scheduling; a run may lose none, so it is not asserted). Rows 2 and 3
// must end exactly at threads * iterations; the program checks that, and that the values
// update_counter returned are exactly 1..threads*iterations, each once.
//
// Usage: counters [threads=4] [iterations=100000]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::parse_args;

using counter_cache = warden::any_cache<std::string, std::int64_t>;

struct config {
  std::size_t threads = 4;
  std::size_t iterations = 100000;
};

// Runs body(thread_index) on `threads` threads started together; returns the seconds taken.
double run_threads(std::size_t threads, const std::function<void(std::size_t)>& body) {
  std::latch start(static_cast<std::ptrdiff_t>(threads + 1));
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      body(t);
    });
  }
  start.arrive_and_wait();
  const auto begin = std::chrono::steady_clock::now();
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
}

void print_row(const char* backend, const char* method, std::int64_t expected, std::int64_t actual,
               double seconds) {
  std::printf("%-7s %-28s %10lld %10lld %10lld %12.0f\n", backend, method,
              static_cast<long long>(expected), static_cast<long long>(actual),
              static_cast<long long>(expected - actual), static_cast<double>(expected) / seconds);
}

// Returns false if an exact method came out wrong.
bool run_backend(const char* name, counter_cache& c, const config& cfg) {
  const auto expected = static_cast<std::int64_t>(cfg.threads * cfg.iterations);
  bool ok = true;

  // 1. get + put: the race.
  double secs = run_threads(cfg.threads, [&](std::size_t) {
    for (std::size_t i = 0; i < cfg.iterations; ++i) {
      const std::int64_t v = c.get("views.racy").value_or(0);
      c.put("views.racy", v + 1);
    }
    c.flush();  // so the final value is not read before this thread's last put lands
  });
  print_row(name, "get + put (racy)", expected, c.get("views.racy").value_or(0), secs);

  // 2. update_counter: one atomic call. Each thread keeps the values it got back.
  std::vector<std::vector<std::int64_t>> returned(cfg.threads);
  secs = run_threads(cfg.threads, [&](std::size_t t) {
    returned[t].reserve(cfg.iterations);
    for (std::size_t i = 0; i < cfg.iterations; ++i) {
      returned[t].push_back(c.update_counter("views.counter", 1));
    }
  });
  const std::int64_t counted = c.get("views.counter").value_or(0);
  print_row(name, "update_counter", expected, counted, secs);
  std::vector<std::int64_t> all;
  for (const auto& r : returned) all.insert(all.end(), r.begin(), r.end());
  std::sort(all.begin(), all.end());
  bool distinct = all.size() == static_cast<std::size_t>(expected);
  for (std::size_t i = 0; distinct && i < all.size(); ++i) {
    distinct = all[i] == static_cast<std::int64_t>(i + 1);
  }
  if (counted != expected || !distinct) {
    std::printf("FAILED: %s: update_counter ended at %lld (want %lld)%s\n", name,
                static_cast<long long>(counted), static_cast<long long>(expected),
                distinct ? "" : ", and its return values are not 1..N each once");
    ok = false;
  }

  // 3. transact: the same get + put, but inside one transaction on the owner.
  secs = run_threads(cfg.threads, [&](std::size_t) {
    for (std::size_t i = 0; i < cfg.iterations; ++i) {
      c.transact([](auto& tx) { tx.put("views.tx", tx.get("views.tx").value_or(0) + 1); });
    }
  });
  const std::int64_t transacted = c.get("views.tx").value_or(0);
  print_row(name, "transact (get + put inside)", expected, transacted, secs);
  if (transacted != expected) {
    std::printf("FAILED: %s: transact ended at %lld (want %lld)\n", name,
                static_cast<long long>(transacted), static_cast<long long>(expected));
    ok = false;
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv, {{"threads", &cfg.threads}, {"iterations", &cfg.iterations}})) {
    return 2;
  }
  std::printf("counters: %zu threads x %zu increments of one key\n\n", cfg.threads, cfg.iterations);
  std::printf("%-7s %-28s %10s %10s %10s %12s\n", "backend", "method", "expected", "actual", "lost",
              "incr/s");

  bool ok = true;
  {
    counter_cache c = warden::actor<std::string, std::int64_t>();
    ok = run_backend("actor", c, cfg) && ok;
  }
  {
    counter_cache c = warden::table<std::string, std::int64_t>();
    ok = run_backend("table", c, cfg) && ok;
  }
  if (!ok) return 1;
  std::printf("\ncounters: OK (update_counter and transact never lost an increment)\n");
  return 0;
}
