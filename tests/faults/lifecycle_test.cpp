// Thread lifecycle: 20,000 short-lived threads (at most 64 alive at once) each put, flush and
// read back through one table; the registry's thread records must be reused (their count stays
// bounded by the peak of live threads) and everything must still work afterwards. Some of the
// threads leave a cast that failed on the owner unreported when they exit: the next thread to
// reuse the record must not receive that error.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "fault_backends.hpp"
#include "fault_types.hpp"

namespace warden_faults {
namespace {

template <class C>
void short_lived_threads(C& c, int total, const char* name) {
  constexpr int kAlive = 64;
  constexpr std::uint64_t kPoison = 7;  // every owner-side write of it fails
  c.put(fkey(kPoison), 0);
  c.flush();
  cfg.poison = kPoison;
  const std::size_t records_before = warden::detail::registry::instance().record_count();
  std::atomic<int> ok{0}, bad{0}, leaked_errors{0};
  for (int first = 0; first < total; first += kAlive) {
    std::vector<std::thread> batch;
    for (int i = first; i < first + kAlive && i < total; ++i) {
      batch.emplace_back([&, i] {
        zone_scope client(zone::client);
        const auto id = static_cast<std::uint64_t>(100 + i);
        c.put(fkey(id), id * 3);
        try {
          c.flush();  // reports only this thread's own casts
        } catch (const injected_fault&) {
          leaked_errors.fetch_add(1);
        }
        if (c.get(fkey(id)) == id * 3 && c.contains(fkey(id))) {
          ok.fetch_add(1);
        } else {
          bad.fetch_add(1);
        }
        if (i % 16 == 0) c.put(fkey(kPoison), 1);  // fails on the owner; exits unreported
      });
    }
    for (auto& t : batch) t.join();
  }
  // The exited threads' casts were queued before this flush's barrier, so the owners have
  // applied (or refused) them all when it returns.
  EXPECT_NO_THROW(c.flush());
  cfg.poison = 0;
  const std::size_t records = warden::detail::registry::instance().record_count();
  std::printf("[%s] %d short-lived threads; thread records %zu before, %zu after\n", name, total,
              records_before, records);
  EXPECT_EQ(ok.load(), total);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(leaked_errors.load(), 0) << "a dead thread's cast error reached a new thread";
  EXPECT_LT(records, 256u) << "records are not reused";
  // Everything still works.
  EXPECT_NO_THROW(c.flush());
  EXPECT_EQ(c.size(), static_cast<std::size_t>(total) + 1);
  for (int i = 0; i < total; i += 97) {
    const auto id = static_cast<std::uint64_t>(100 + i);
    EXPECT_EQ(c.get(fkey(id)), id * 3);
  }
  EXPECT_EQ(c.get(fkey(kPoison)), 0u);
  EXPECT_EQ(c.update_counter(fkey(5), 2), 2u);
  EXPECT_EQ(c.transact([](auto& tx) { return tx.get(fkey(5)).value_or(0); }), 2u);
}

TEST(Lifecycle, TwentyThousandShortLivedThreadsOnATable) {
  reset(run_seed());
  zone_scope as_client(zone::client);
  ftable<std::uint64_t> t({.shards = 16, .owners = 2});
  short_lived_threads(t, 20000, "table");
}

TEST(Lifecycle, ShortLivedThreadsOnAnActor) {
  reset(run_seed());
  zone_scope as_client(zone::client);
  factor<std::uint64_t> a;
  short_lived_threads(a, scaled(5000), "actor");
}

}  // namespace
}  // namespace warden_faults
