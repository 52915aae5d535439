// The table's two copies stay identical: built with WARDEN_CHECK_COPIES=1 (its own executable,
// the macro must be the same in every TU), every owner compares each idle copy with the
// published one after replaying its log and aborts on any difference in keys, versions or
// deadlines. These workloads drive every path that removes or rewrites entries on the owner
// alone (evictions, expirations, access-extended deadlines, transactions, erase_if, clear),
// so a removal applied to one copy and not logged for the other kills the test.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>

#include <warden/warden.hpp>

#if !WARDEN_CHECK_COPIES
#error "build this test with WARDEN_CHECK_COPIES=1"
#endif

namespace {

using namespace std::chrono_literals;

void churn(warden::table<std::uint64_t, std::uint64_t>& t, warden::manual_clock& clock,
           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 64; ++i) {
      const std::uint64_t k = rng() % 1000;
      switch (rng() % 8) {
        case 0:
          t.put(k, k, std::chrono::milliseconds(1 + rng() % 50));
          break;
        case 1:
          t.erase(k);
          break;
        case 2:
          (void)t.get(k);
          break;
        case 3:
          (void)t.update_counter(k, 1);
          break;
        default:
          t.put(k, rng());
          break;
      }
    }
    if (round % 10 == 0) {
      t.transact([&](auto& tx) {
        tx.put(rng() % 1000, 1);
        tx.erase(rng() % 1000);
      });
    }
    if (round % 50 == 25)
      (void)t.erase_if([](std::uint64_t k, std::uint64_t) { return k % 7 == 0; });
    if (round == 150) t.clear();
    clock.advance(std::chrono::milliseconds(rng() % 5));
    t.flush();
  }
}

TEST(CopiesCheck, BoundedExpiringShardedTableKeepsItsCopiesIdentical) {
  warden::manual_clock clock(1s);
  warden::table<std::uint64_t, std::uint64_t> t(
      {.shards = 8, .owners = 3, .max_size = 300, .expire_after_access = 20ms, .clock = &clock});
  const std::uint64_t before = warden::detail::copies_checked_total.load();
  churn(t, clock, 1);
  EXPECT_LE(t.size(), 300u);
  EXPECT_GT(warden::detail::copies_checked_total.load(), before + 100);
}

TEST(CopiesCheck, UnboundedTableWithTtlsKeepsItsCopiesIdentical) {
  warden::manual_clock clock(1s);
  warden::table<std::uint64_t, std::uint64_t> t({.expire_after_write = 30ms, .clock = &clock});
  const std::uint64_t before = warden::detail::copies_checked_total.load();
  churn(t, clock, 2);
  EXPECT_GT(warden::detail::copies_checked_total.load(), before + 100);
}

}  // namespace
