// The cache contract, part 2: get_or_load, the ETS-style calls, reentrancy from owner-side
// callbacks and counters, on every cache backend.
// Shared helpers and the backends: cache_support.hpp.
#include "cache_support.hpp"

namespace warden_test {
namespace {

template <class Maker>
class CacheCalls : public CacheContract<Maker> {};
TYPED_TEST_SUITE(CacheCalls, cache_backends, backend_names);

// ---- get_or_load --------------------------------------------------------------------------------

TYPED_TEST(CacheCalls, GetOrLoadRunsOneLoaderForConcurrentCallers) {
  auto c = TestFixture::template make<u64, i64>({.record_stats = true});
  constexpr int kThreads = 8;
  std::atomic<int> entered{0}, runs{0};
  std::vector<i64> got(kThreads, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      entered.fetch_add(1);
      got[static_cast<std::size_t>(t)] = c.get_or_load(42, [&](const u64& k) {
        runs.fetch_add(1);
        // Hold the load until every caller has arrived, and a little longer.
        wait_until([&] { return entered.load() == kThreads; });
        std::this_thread::sleep_for(30ms);
        return static_cast<i64>(k * 2);
      });
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(runs.load(), 1);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[static_cast<std::size_t>(t)], 84) << t;
  EXPECT_EQ(c.get(42), 84);
  const auto st = c.stats();
  EXPECT_EQ(st.loads, 1u);
  EXPECT_EQ(st.load_failures, 0u);
  EXPECT_GE(st.misses, 1u);
  EXPECT_EQ(st.hits + st.misses, static_cast<u64>(kThreads) + 1);  // each caller one read
}

TYPED_TEST(CacheCalls, GetOrLoadFailureReachesEveryWaiterAndStoresNothing) {
  auto c = TestFixture::template make<u64, i64>({.record_stats = true});
  constexpr int kThreads = 8;
  std::atomic<int> entered{0}, runs{0}, failed{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      entered.fetch_add(1);
      try {
        c.get_or_load(7, [&](const u64&) -> i64 {
          runs.fetch_add(1);
          wait_until([&] { return entered.load() == kThreads; });
          std::this_thread::sleep_for(30ms);
          throw test_failure("the backing store is down");
        });
        other.fetch_add(1);
      } catch (const test_failure&) {
        failed.fetch_add(1);
      } catch (...) {
        other.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), kThreads);  // every caller got the loader's own exception
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(runs.load(), 1);
  EXPECT_LT(runs.load(), kThreads) << "no waiter shared a failed load";
  c.flush();
  EXPECT_FALSE(c.contains(7));
  EXPECT_EQ(c.size(), 0u);
  const auto st = c.stats();
  EXPECT_EQ(st.loads, static_cast<u64>(runs.load()));
  EXPECT_EQ(st.load_failures, static_cast<u64>(runs.load()));
  // A failure is not remembered: the next call loads again.
  EXPECT_EQ(c.get_or_load(7, [](const u64&) { return i64{70}; }), 70);
  EXPECT_EQ(c.get(7), 70);
}

TYPED_TEST(CacheCalls, PutOrEraseLandingDuringALoadWins) {
  auto c = TestFixture::template make<u64, i64>();
  for (const bool erase : {false, true}) {
    SCOPED_TRACE(erase ? "erase during the load" : "put during the load");
    const u64 key = erase ? 6 : 5;
    std::latch started{1}, release{1};
    i64 loaded = 0;
    std::thread loading([&] {
      loaded = c.get_or_load(key, [&](const u64&) {
        started.count_down();
        release.wait();
        return i64{-1};
      });
    });
    started.wait();  // the load is in flight (the key was absent)
    if (erase) {
      c.erase(key);  // an erase of nothing, but it lands during the load
    } else {
      c.put(key, 99);
    }
    c.flush();
    release.count_down();
    loading.join();
    EXPECT_EQ(loaded, -1);  // the loader's caller gets what it loaded
    if (erase) {
      EXPECT_FALSE(c.contains(key)) << "the load overwrote an erase that landed during it";
    } else {
      EXPECT_EQ(c.get(key), 99) << "the load overwrote a put that landed during it";
    }
    // A later load of the key (absent) stores again.
    if (erase) {
      EXPECT_EQ(c.get_or_load(key, [](const u64&) { return i64{7}; }), 7);
      EXPECT_EQ(c.get(key), 7);
    }
  }
}

TYPED_TEST(CacheCalls, LoaderAskingForItsOwnKeyGetsReentrancyError) {
  auto c = TestFixture::template make<u64, i64>();
  bool refused = false;
  const i64 v = c.get_or_load(3, [&](const u64& k) {
    try {
      c.get_or_load(k, [](const u64&) { return i64{0}; });
    } catch (const warden::reentrancy_error&) {
      refused = true;
    }
    // Another key may be loaded from inside a loader.
    EXPECT_EQ(c.get_or_load(4, [](const u64&) { return i64{40}; }), 40);
    return i64{30};
  });
  EXPECT_TRUE(refused);
  EXPECT_EQ(v, 30);
  EXPECT_EQ(c.get(3), 30);
  EXPECT_EQ(c.get(4), 40);
}

TYPED_TEST(CacheCalls, GetOrLoadHitRunsNoLoader) {
  auto c = TestFixture::template make<u64, i64>({.record_stats = true});
  c.put(1, 10);
  c.flush();
  int runs = 0;
  auto loader = [&](const u64&) {
    ++runs;
    return i64{-1};
  };
  EXPECT_EQ(c.get_or_load(1, loader), 10);
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(c.get_or_load(2, loader), -1);
  EXPECT_EQ(c.get_or_load(2, loader), -1);
  EXPECT_EQ(runs, 1);
  const auto st = c.stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.loads, 1u);
}

// ---- the ETS-style calls
// --------------------------------------------------------------------------

TYPED_TEST(CacheCalls, InsertNewOnlyWhenAbsentOrExpired) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  EXPECT_TRUE(c.insert_new(1, 10));
  EXPECT_EQ(c.get(1), 10);  // a call: visible on return
  EXPECT_FALSE(c.insert_new(1, 11));
  EXPECT_EQ(c.get(1), 10);
  c.put(3, 30, 10ms);
  c.flush();
  EXPECT_FALSE(c.insert_new(3, 31));
  clk.advance(10ms);
  EXPECT_TRUE(c.insert_new(3, 32));  // expired counts as absent
  EXPECT_EQ(c.get(3), 32);
  clk.advance(1h);
  EXPECT_EQ(c.get(3), 32);  // inserted without the old ttl
}

TYPED_TEST(CacheCalls, TakeRemovesAndReturns) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  c.put(1, 10);
  c.put(2, 20, 10ms);
  c.flush();
  EXPECT_EQ(c.take(1), 10);
  EXPECT_FALSE(c.contains(1));
  EXPECT_EQ(c.take(1), std::nullopt);
  EXPECT_EQ(c.take(99), std::nullopt);
  clk.advance(10ms);
  EXPECT_EQ(c.take(2), std::nullopt);  // expired
  c.flush();
  EXPECT_EQ(c.size(), 0u);
}

TYPED_TEST(CacheCalls, UpdateInsertsModifiesAndErases) {
  auto c = TestFixture::template make<u64, i64>();
  std::vector<std::optional<i64>> seen;
  auto r = c.update(1, [&](const std::optional<i64>& cur) -> std::optional<i64> {
    seen.push_back(cur);
    return 5;
  });
  EXPECT_EQ(r, 5);
  EXPECT_EQ(c.get(1), 5);
  r = c.update(1, [&](const std::optional<i64>& cur) -> std::optional<i64> {
    seen.push_back(cur);
    return cur.value_or(-1000) + 1;
  });
  EXPECT_EQ(r, 6);
  EXPECT_EQ(c.get(1), 6);
  r = c.update(1, [&](const std::optional<i64>& cur) -> std::optional<i64> {
    seen.push_back(cur);
    return std::nullopt;
  });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_FALSE(c.contains(1));
  r = c.update(2, [&](const std::optional<i64>& cur) -> std::optional<i64> {
    seen.push_back(cur);
    return std::nullopt;
  });
  EXPECT_EQ(r, std::nullopt);
  EXPECT_FALSE(c.contains(2));
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], std::nullopt);
  EXPECT_EQ(seen[1], 5);
  EXPECT_EQ(seen[2], 6);
  EXPECT_EQ(seen[3], std::nullopt);
  // A throwing fn changes nothing.
  c.put(3, 30);
  c.flush();
  EXPECT_THROW(
      c.update(3,
               [](const std::optional<i64>&) -> std::optional<i64> { throw test_failure("no"); }),
      test_failure);
  EXPECT_EQ(c.get(3), 30);
}

TYPED_TEST(CacheCalls, EraseIfRemovesExactlyTheMatchingLiveEntries) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  for (u64 k = 0; k < 100; ++k) c.put(k, static_cast<i64>(k));
  c.put(1000, 0, 10ms);  // matches, but expired by the time erase_if runs
  c.flush();
  clk.advance(10ms);
  const std::size_t n = c.erase_if([](const u64&, const i64& v) { return v % 3 == 0; });
  EXPECT_EQ(n, 34u);  // 0, 3, ..., 99
  for (u64 k = 0; k < 100; ++k) EXPECT_EQ(c.contains(k), k % 3 != 0) << k;
  c.flush();
  EXPECT_EQ(c.size(), 66u);
  EXPECT_EQ(c.erase_if([](const u64&, const i64&) { return false; }), 0u);
  EXPECT_EQ(c.erase_if([](const u64& k, const i64&) { return k == 1; }), 1u);
  EXPECT_EQ(c.size(), 65u);
  // A throwing predicate removes nothing.
  EXPECT_THROW(c.erase_if([](const u64& k, const i64&) -> bool {
    if (k == 50) throw test_failure("no");
    return true;
  }),
               test_failure);
  EXPECT_EQ(c.size(), 65u);
}

TYPED_TEST(CacheCalls, ClearRemovesEverythingInOrderWithCasts) {
  auto c = TestFixture::template make<u64, i64>();
  for (u64 k = 0; k < 100; ++k) c.put(k, 1);
  c.flush();
  c.clear();
  c.flush();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.get(5), std::nullopt);
  c.put(200, 1);
  c.clear();  // ordered behind the put before it and before the put after it
  c.put(201, 1);
  c.flush();
  EXPECT_FALSE(c.contains(200));
  EXPECT_TRUE(c.contains(201));
  EXPECT_EQ(c.size(), 1u);
}

TYPED_TEST(CacheCalls, VersionsAreNonZeroStableAndChangeOnEveryWrite) {
  auto c = TestFixture::template make<u64, i64>();
  std::set<u64> versions;
  auto version_of = [&](u64 k) {
    const auto v = c.get_versioned(k);
    EXPECT_TRUE(v.has_value());
    return v ? v->version : 0;
  };
  auto note = [&](u64 v, const char* what) {
    EXPECT_NE(v, 0u) << what;
    EXPECT_TRUE(versions.insert(v).second) << what << ": version " << v << " seen before";
  };
  c.put(1, 10);
  c.put(2, 10);
  c.flush();
  const u64 v1 = version_of(1);
  note(v1, "put");
  EXPECT_EQ(c.get_versioned(1)->value, 10);
  EXPECT_EQ(version_of(1), v1) << "two reads without a write differ";
  EXPECT_NE(version_of(2), 0u);
  c.put(1, 10);  // the same value is still a write
  c.flush();
  note(version_of(1), "rewrite");
  c.update_counter(1, 0);
  note(version_of(1), "update_counter");
  const u64 before = version_of(1);
  EXPECT_FALSE(c.insert_new(1, 5));
  EXPECT_EQ(version_of(1), before) << "a refused insert_new changed the version";
  c.update(1, [](const std::optional<i64>& v) { return v; });
  note(version_of(1), "update");
  EXPECT_TRUE(c.put_if_version(1, 11, version_of(1)));
  note(version_of(1), "put_if_version");
  c.transact([](auto& tx) { tx.put(1, 12); });
  note(version_of(1), "transact");
  c.erase(1);
  c.flush();
  EXPECT_EQ(c.get_versioned(1), std::nullopt);
  c.put(1, 10);
  c.flush();
  note(version_of(1), "put after erase");
}

TYPED_TEST(CacheCalls, PutIfVersionWritesOnlyOverThatVersion) {
  auto c = TestFixture::template make<u64, i64>();
  EXPECT_TRUE(c.put_if_version(1, 10, 0));  // 0: only if absent
  EXPECT_EQ(c.get(1), 10);
  EXPECT_FALSE(c.put_if_version(1, 11, 0));
  EXPECT_EQ(c.get(1), 10);
  const u64 v = c.get_versioned(1)->version;
  EXPECT_TRUE(c.put_if_version(1, 12, v));
  EXPECT_EQ(c.get(1), 12);
  EXPECT_FALSE(c.put_if_version(1, 13, v));  // stale
  EXPECT_EQ(c.get(1), 12);
  EXPECT_FALSE(c.put_if_version(2, 5, v));  // absent key, non-zero version
  EXPECT_FALSE(c.contains(2));
  c.erase(1);
  c.flush();
  EXPECT_FALSE(c.put_if_version(1, 14, v));  // the erased key's old version
  EXPECT_TRUE(c.put_if_version(1, 15, 0));
  EXPECT_EQ(c.get(1), 15);
}

TYPED_TEST(CacheCalls, CompareAndSetLoopLosesNoIncrement) {
  const u64 seed = test_seed();
  auto c = TestFixture::template make<u64, i64>();
  constexpr int kThreads = 4;
  const int per = scaled(150);
  std::atomic<int> retries{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + static_cast<u64>(t));
      for (int i = 0; i < per; ++i) {
        for (;;) {
          const auto cur = c.get_versioned(1);
          const i64 next = cur ? cur->value + 1 : 1;
          if (rng() % 8 == 0) std::this_thread::yield();  // widen the race window
          if (c.put_if_version(1, next, cur ? cur->version : 0)) break;
          retries.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.get(1), kThreads * per) << "retries: " << retries.load();
}

// ---- reentrancy from owner-side callbacks ------------------------------------------------------

// Tries every call and cast on `c`; returns the names of those that were NOT refused with
// reentrancy_error (with what they threw instead, if anything).
template <class C>
std::vector<std::string> not_refused(C& c) {
  std::vector<std::string> out;
  auto probe = [&](const char* name, auto&& op) {
    try {
      op();
      out.push_back(name);
    } catch (const warden::reentrancy_error&) {
    } catch (const std::exception& e) {
      out.push_back(std::string(name) + " threw " + e.what());
    }
  };
  probe("put", [&] { c.put(900, 1); });
  probe("put ttl", [&] { c.put(901, 1, 1h); });
  probe("erase", [&] { c.erase(1); });
  probe("clear", [&] { c.clear(); });
  probe("flush", [&] { c.flush(); });
  probe("update_counter", [&] { c.update_counter(902, 1); });
  probe("insert_new", [&] { c.insert_new(903, 1); });
  probe("take", [&] { (void)c.take(1); });
  probe("update",
        [&] { c.update(904, [](const std::optional<i64>&) { return std::optional<i64>(1); }); });
  probe("erase_if", [&] { c.erase_if([](const u64&, const i64&) { return true; }); });
  probe("put_if_version", [&] { c.put_if_version(905, 1, 0); });
  probe("get_or_load", [&] { c.get_or_load(906, [](const u64&) { return i64{1}; }); });
  probe("transact", [&] { c.transact([](auto& tx) { tx.put(907, 1); }); });
  probe("get", [&] { (void)c.get(1); });
  probe("contains", [&] { (void)c.contains(1); });
  probe("get_versioned", [&] { (void)c.get_versioned(1); });
  probe("size", [&] { (void)c.size(); });
  probe("snapshot", [&] { c.snapshot([](auto& v) { return v.contains(1); }); });
  return out;
}

TYPED_TEST(CacheCalls, OwnerSideCallbacksRefuseEveryCallAndCast) {
  auto c = TestFixture::template make<u64, i64>();
  for (u64 k = 1; k <= 5; ++k) c.put(k, static_cast<i64>(k));
  c.flush();
  std::vector<std::string> in_transact, in_update, in_erase_if;
  const int r = c.transact([&](auto& tx) {
    in_transact = not_refused(c);
    tx.put(2, 22);
    return 7;
  });
  EXPECT_EQ(r, 7);
  EXPECT_EQ(c.get(2), 22) << "the transaction did not complete";
  const auto u = c.update(3, [&](const std::optional<i64>& cur) -> std::optional<i64> {
    in_update = not_refused(c);
    return cur.value_or(-1000) + 100;
  });
  EXPECT_EQ(u, 103);
  EXPECT_EQ(c.get(3), 103);
  bool probed = false;
  const std::size_t n = c.erase_if([&](const u64& k, const i64&) {
    if (!probed) {
      probed = true;
      in_erase_if = not_refused(c);
    }
    return k == 4;
  });
  EXPECT_TRUE(probed);
  EXPECT_EQ(n, 1u);
  EXPECT_FALSE(c.contains(4));
  EXPECT_EQ(in_transact, std::vector<std::string>{}) << "inside transact";
  EXPECT_EQ(in_update, std::vector<std::string>{}) << "inside update";
  EXPECT_EQ(in_erase_if, std::vector<std::string>{}) << "inside erase_if";
  // Nothing refused was applied.
  c.flush();
  EXPECT_EQ(contents(c), (std::map<u64, i64>{{1, 1}, {2, 22}, {3, 103}, {5, 5}}));
}

// ---- counters ---------------------------------------------------------------------------------

TYPED_TEST(CacheCalls, Int32CounterWrapsAround) {
  auto c = TestFixture::template make<u64, std::int32_t>();
  constexpr std::int32_t kMax = std::numeric_limits<std::int32_t>::max();
  constexpr std::int32_t kMin = std::numeric_limits<std::int32_t>::min();
  c.put(1, kMax);
  c.flush();
  EXPECT_EQ(c.update_counter(1, 1), kMin);
  EXPECT_EQ(c.get(1), kMin);
  EXPECT_EQ(c.update_counter(1, -1), kMax);
  EXPECT_EQ(c.update_counter(2, kMin), kMin);  // a missing key counts from zero
  EXPECT_EQ(c.update_counter(2, kMin), 0);
  EXPECT_EQ(c.update_counter(3, kMax), kMax);
  EXPECT_EQ(c.update_counter(3, kMax), -2);
}

}  // namespace
}  // namespace warden_test
