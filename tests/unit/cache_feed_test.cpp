// The cache contract, part 3: the change feed and dump/restore, on every cache backend.
// Shared helpers and the backends: cache_support.hpp.
#include "cache_support.hpp"

namespace warden_test {
namespace {

template <class Maker>
class CacheFeed : public CacheContract<Maker> {};
TYPED_TEST_SUITE(CacheFeed, cache_backends, backend_names);

// ---- the change feed ----------------------------------------------------------------------------

TYPED_TEST(CacheFeed, FeedMirrorFollowsTransfersBatchByBatch) {
  const u64 seed = test_seed();
  auto c = TestFixture::template make<u64, i64>();
  constexpr u64 kAccounts = 16;
  constexpr i64 kInitial = 1000;
  constexpr i64 kTotal = static_cast<i64>(kAccounts) * kInitial;
  std::map<u64, i64> mirror;
  u64 last_seq = 0;
  int batches = 0, bad_sum = 0, bad_seq = 0;
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    if (last_seq != 0 && b.sequence() != last_seq + 1) ++bad_seq;
    last_seq = b.sequence();
    ++batches;
    apply_batch(mirror, b);
    if (mirror.empty()) return;  // before the opening transaction
    i64 sum = 0;
    for (const auto& [k, v] : mirror) sum += v;
    if (sum != kTotal || mirror.size() != kAccounts) ++bad_sum;
  });
  c.transact([&](auto& tx) {
    for (u64 a = 0; a < kAccounts; ++a) tx.put(a, kInitial);
  });
  constexpr int kThreads = 4;
  const int per = scaled(150);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 100 + static_cast<u64>(t));
      for (int i = 0; i < per; ++i) {
        const u64 from = rng() % kAccounts;
        const u64 to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
        const i64 amount = static_cast<i64>(rng() % 50) + 1;
        c.transact([&](auto& tx) {
          tx.put(from, *tx.get(from) - amount);
          tx.put(to, *tx.get(to) + amount);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  c.flush();
  sub.sync();
  EXPECT_GT(batches, 0);
  EXPECT_EQ(bad_sum, 0) << "a batch left the mirror's sum off (half a transaction)";
  EXPECT_EQ(bad_seq, 0) << "batches skipped or out of order";
  EXPECT_EQ(mirror, contents(c));
}

TYPED_TEST(CacheFeed, FeedCarriesEvictionsAndExpirationsWithTheirValues) {
  warden::manual_clock clk(1s);
  auto c =
      TestFixture::template make<u64, i64>({.max_size = 10, .clock = &clk, .record_stats = true});
  std::map<u64, i64> mirror;
  std::vector<warden::change<u64, i64>> removed;
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    apply_batch(mirror, b);
    for (const auto& ch : b) {
      if (ch.cause == warden::change_cause::evict || ch.cause == warden::change_cause::expire) {
        removed.push_back(ch);
      }
    }
  });
  for (u64 k = 0; k < 100; ++k) {
    c.put(k, static_cast<i64>(k * 10));
    if (k % 10 == 9) c.flush();
  }
  c.flush();
  sub.sync();
  EXPECT_EQ(mirror, contents(c));
  std::size_t evicted = 0;
  for (const auto& ch : removed) {
    EXPECT_EQ(ch.cause, warden::change_cause::evict);
    ASSERT_TRUE(ch.value.has_value()) << "an eviction without the removed value";
    EXPECT_EQ(*ch.value, static_cast<i64>(ch.key * 10));
    ++evicted;
  }
  EXPECT_EQ(evicted, 90u);
  EXPECT_EQ(c.stats().evictions, 90u);

  c.clear();
  c.flush();
  sub.sync();
  EXPECT_TRUE(mirror.empty());
  removed.clear();
  // Three keys: with several owners the budget of 10 is split (at least 3 each), so no
  // spread of three keys can make an owner evict; all three must expire.
  for (u64 k = 1000; k < 1003; ++k) c.put(k, static_cast<i64>(k * 10), 10ms);
  c.flush();
  clk.advance(10ms);
  c.flush();  // the owner removes them
  sub.sync();
  EXPECT_TRUE(mirror.empty());
  ASSERT_EQ(removed.size(), 3u);
  for (const auto& ch : removed) {
    EXPECT_EQ(ch.cause, warden::change_cause::expire);
    ASSERT_TRUE(ch.value.has_value()) << "an expiry without the removed value";
    EXPECT_EQ(*ch.value, static_cast<i64>(ch.key * 10));
  }
  EXPECT_EQ(c.stats().expirations, 3u);
}

TYPED_TEST(CacheFeed, FlushCoversTheExpirationsItsBatchFinds) {
  // After advance(), the batch that serves a flush() removes every expired entry; when
  // flush() returns, that removal is counted and handed to the change feed, so stats() is
  // exact and flush() + sync() leaves a mirror equal to the cache. Many entries make the
  // removal take long enough to show an owner that replies first and sweeps after.
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk, .record_stats = true});
  std::mutex m;  // the mirror is read here while (with the bug) the notifier may still write
  std::map<u64, i64> mirror;
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    std::lock_guard lock(m);
    apply_batch(mirror, b);
  });
  constexpr u64 kKeys = 20000;
  for (u64 k = 0; k < kKeys; ++k) c.put(k, static_cast<i64>(k), 10ms);
  c.flush();
  sub.sync();
  {
    std::lock_guard lock(m);
    ASSERT_EQ(mirror.size(), kKeys);
  }
  clk.advance(10ms);
  c.flush();
  EXPECT_EQ(c.stats().expirations, kKeys) << "flush() returned before its batch's expirations";
  sub.sync();
  std::size_t left = 0;
  {
    std::lock_guard lock(m);
    left = mirror.size();
  }
  EXPECT_EQ(left, 0u) << "after flush() + sync() the mirror still holds expired entries";
  EXPECT_EQ(c.size(), 0u);
}

TYPED_TEST(CacheFeed, SubscriberExceptionIsRethrownBySyncAndDeliveryContinues) {
  auto c = TestFixture::template make<u64, i64>();
  std::atomic<int> seen{0};
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    for (const auto& ch : b) {
      if (ch.key == 1) throw test_failure("subscriber failed");
      if (ch.key == 2) seen.fetch_add(1);
    }
  });
  c.put(1, 1);
  c.flush();
  EXPECT_THROW(sub.sync(), test_failure);
  c.put(2, 2);
  c.flush();
  EXPECT_NO_THROW(sub.sync());  // rethrown once
  EXPECT_EQ(seen.load(), 1);
}

TYPED_TEST(CacheFeed, DestroyedSubscriptionReceivesNothingMore) {
  auto c = TestFixture::template make<u64, i64>();
  auto keep = c.subscribe([](const warden::change_batch<u64, i64>&) {});
  std::atomic<int> batches{0};
  {
    auto sub = c.subscribe([&](const warden::change_batch<u64, i64>&) { batches.fetch_add(1); });
    c.put(1, 1);
    c.flush();
    keep.sync();  // every batch published so far has reached every subscriber
    EXPECT_GE(batches.load(), 1);
  }
  const int before = batches.load();
  for (u64 k = 0; k < 5; ++k) {
    c.put(k, 2);
    c.flush();
  }
  keep.sync();
  EXPECT_EQ(batches.load(), before);
  // reset() unsubscribes as well.
  std::atomic<int> other{0};
  auto sub2 = c.subscribe([&](const warden::change_batch<u64, i64>&) { other.fetch_add(1); });
  sub2.reset();
  EXPECT_FALSE(static_cast<bool>(sub2));
  c.put(9, 9);
  c.flush();
  keep.sync();
  EXPECT_EQ(other.load(), 0);
}

TYPED_TEST(CacheFeed, SyncFromInsideASubscriberIsRefused) {
  auto c = TestFixture::template make<u64, i64>();
  std::atomic<warden::subscription*> self{nullptr};
  std::atomic<int> refused{0}, other{0};
  warden::subscription sub = c.subscribe([&](const warden::change_batch<u64, i64>&) {
    warden::subscription* s = self.load();
    if (s == nullptr) return;
    try {
      s->sync();
      other.fetch_add(1);
    } catch (const warden::reentrancy_error&) {
      refused.fetch_add(1);
    } catch (...) {
      other.fetch_add(1);
    }
  });
  self.store(&sub);
  c.put(1, 1);
  c.flush();
  sub.sync();
  EXPECT_GE(refused.load(), 1);
  EXPECT_EQ(other.load(), 0);
}

TYPED_TEST(CacheFeed, BoundedFeedPushesBackAndLosesNothing) {
  auto c = TestFixture::template make<u64, i64>({.feed_capacity = 2});
  std::map<u64, i64> mirror;
  u64 last_seq = 0;
  int gaps = 0;
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    std::this_thread::sleep_for(200us);  // slower than the writer: the owner must wait
    if (last_seq != 0 && b.sequence() != last_seq + 1) ++gaps;
    last_seq = b.sequence();
    apply_batch(mirror, b);
  });
  for (int i = 0; i < 60; ++i) {
    c.put(static_cast<u64>(i % 10), i);
    if (i % 7 == 0) c.transact([&](auto& tx) { tx.put(100, i); });
    c.flush();
  }
  sub.sync();
  EXPECT_EQ(gaps, 0);
  EXPECT_EQ(mirror, contents(c));
}

TYPED_TEST(CacheFeed, SubscriberCallsAreRefusedOnlyOnABoundedFeed) {
  for (const bool bounded : {false, true}) {
    SCOPED_TRACE(bounded ? "bounded feed" : "unbounded feed");
    auto c = TestFixture::template make<u64, i64>({.feed_capacity = bounded ? 4u : 0u});
    std::atomic<int> refused{0}, called{0}, other{0};
    auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
      for (const auto& ch : b) {
        if (ch.key != 1) continue;
        try {
          c.update_counter(2, 1);  // a call: would wait on an owner that may wait on us
          called.fetch_add(1);
        } catch (const warden::reentrancy_error&) {
          refused.fetch_add(1);
        } catch (...) {
          other.fetch_add(1);
        }
        try {
          c.put(3, 3);  // a cast never waits: always allowed
        } catch (...) {
          other.fetch_add(1);
        }
      }
    });
    c.put(1, 1);
    c.flush();
    sub.sync();
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(refused.load(), bounded ? 1 : 0);
    EXPECT_EQ(called.load(), bounded ? 0 : 1);
    EXPECT_TRUE(wait_until([&] { return c.contains(3); })) << "the subscriber's cast was lost";
    EXPECT_EQ(c.get(2), bounded ? std::nullopt : std::optional<i64>(1));
  }
}

TYPED_TEST(CacheFeed, ClearRestoreAndEraseIfAreEachOneBatch) {
  auto c = TestFixture::template make<u64, i64>();
  std::vector<std::vector<warden::change<u64, i64>>> batches;
  auto sub = c.subscribe([&](const warden::change_batch<u64, i64>& b) {
    if (!b.empty()) batches.emplace_back(b.begin(), b.end());
  });
  for (u64 k = 0; k < 50; ++k) c.put(k, static_cast<i64>(k));
  c.flush();
  sub.sync();
  batches.clear();
  // A reader never sees one of these half done: only the counts between them.
  std::atomic<bool> done{false};
  std::atomic<int> odd_counts{0}, polls{0};
  std::thread watcher([&] {
    while (!done.load(std::memory_order_acquire)) {
      const std::size_t n = c.size();
      if (n != 50 && n != 0 && n != 30 && n != 15) odd_counts.fetch_add(1);
      polls.fetch_add(1);
    }
  });
  EXPECT_TRUE(wait_until([&] { return polls.load() > 0; }));
  auto expect_one_batch = [&](std::size_t size, warden::change_cause cause, const char* what) {
    sub.sync();
    ASSERT_EQ(batches.size(), 1u) << what << " was published in several batches";
    EXPECT_EQ(batches[0].size(), size) << what;
    for (const auto& ch : batches[0]) {
      EXPECT_EQ(ch.cause, cause) << what;
      EXPECT_EQ(ch.value, static_cast<i64>(ch.key)) << what;
    }
    batches.clear();
  };
  c.clear();
  c.flush();
  expect_one_batch(50, warden::change_cause::erase, "clear");
  auto src = TestFixture::template make<u64, i64>();
  for (u64 k = 100; k < 130; ++k) src.put(k, static_cast<i64>(k));
  src.flush();
  std::istringstream in([&] {
    std::ostringstream out;
    src.dump(out);
    return out.str();
  }());
  c.restore(in);
  expect_one_batch(30, warden::change_cause::write, "restore");
  EXPECT_EQ(c.erase_if([](const u64&, const i64& v) { return v % 2 == 0; }), 15u);
  expect_one_batch(15, warden::change_cause::erase, "erase_if");
  done.store(true, std::memory_order_release);
  watcher.join();
  EXPECT_GT(polls.load(), 0);
  EXPECT_EQ(odd_counts.load(), 0) << "a reader saw a clear, restore or erase_if half done";
}

// ---- dump / restore -----------------------------------------------------------------------------

TYPED_TEST(CacheFeed, DumpDuringTransfersRestoresAConservedSum) {
  const u64 seed = test_seed();
  auto c = TestFixture::template make<u64, i64>();
  constexpr u64 kAccounts = 16;
  constexpr i64 kInitial = 1000;
  constexpr i64 kTotal = static_cast<i64>(kAccounts) * kInitial;
  c.transact([&](auto& tx) {
    for (u64 a = 0; a < kAccounts; ++a) tx.put(a, kInitial);
  });
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> transfers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 200 + static_cast<u64>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 from = rng() % kAccounts;
        const u64 to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
        const i64 amount = static_cast<i64>(rng() % 50) + 1;
        c.transact([&](auto& tx) {
          tx.put(from, *tx.get(from) - amount);
          tx.put(to, *tx.get(to) + amount);
        });
        transfers.fetch_add(1);
      }
    });
  }
  std::vector<std::string> dumps;
  for (int i = 0; i < 4; ++i) {
    const int at = transfers.load();
    if (!wait_until([&] { return transfers.load() > at + 5; })) {
      ADD_FAILURE() << "transfers stalled";
      break;
    }
    std::ostringstream out;
    c.dump(out);
    dumps.push_back(out.str());
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_GT(transfers.load(), 20);
  for (const auto& bytes : dumps) {
    auto d = TestFixture::template make<u64, i64>();
    std::istringstream in(bytes);
    d.restore(in);
    const auto m = contents(d);
    ASSERT_EQ(m.size(), kAccounts);
    i64 sum = 0;
    for (const auto& [k, v] : m) sum += v;
    EXPECT_EQ(sum, kTotal) << "a dump caught a transfer half done";
  }
}

template <class Make>
void dump_round_trip(Make&& make_typed) {
  using C = decltype(make_typed());
  using K = typename C::key_type;
  using V = typename C::mapped_type;
  auto c = make_typed();
  std::map<K, V> want;
  for (int i = 0; i < 50; ++i) {
    K k;
    V v;
    if constexpr (std::is_same_v<K, std::string>) {
      k = "key-" + std::to_string(i);
      v = std::string(static_cast<std::size_t>(i) * 7, static_cast<char>('a' + i % 26)) + "|";
    } else {
      k = static_cast<K>(i * 1000003);
      v = static_cast<V>(-i * 17);
    }
    want.emplace(k, v);
    c.put(k, v);
  }
  c.flush();
  std::ostringstream out;
  c.dump(out);
  const std::string bytes = out.str();
  // Into an actor and a (sharded) table, whatever the source backend.
  warden::actor<K, V> a;
  warden::table<K, V> t({.shards = 4, .owners = 2});
  {
    std::istringstream in(bytes);
    a.restore(in);
  }
  {
    std::istringstream in(bytes);
    t.restore(in);
  }
  EXPECT_EQ(contents(a), want);
  EXPECT_EQ(contents(t), want);
  // And back: the actor's and the table's dumps restore into this backend.
  for (const bool from_actor : {true, false}) {
    std::ostringstream back;
    if (from_actor) {
      a.dump(back);
    } else {
      t.dump(back);
    }
    auto d = make_typed();
    std::istringstream in(back.str());
    d.restore(in);
    EXPECT_EQ(contents(d), want) << (from_actor ? "from the actor" : "from the table");
  }
}

TYPED_TEST(CacheFeed, DumpRestoresAcrossBackends) {
  dump_round_trip([] { return TestFixture::template make<u64, i64>(); });
  dump_round_trip([] { return TestFixture::template make<std::string, std::string>(); });
}

TYPED_TEST(CacheFeed, DumpKeepsTheRemainingTimeToLive) {
  warden::manual_clock clk(10s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  c.put(1, 10, 100ms);
  c.put(2, 20);
  c.put(3, 30, 50ms);
  c.put(4, 40, 10ms);
  c.flush();
  clk.advance(30ms);  // left: key 1 70ms, key 3 20ms; key 4 expired
  std::ostringstream out;
  c.dump(out);
  warden::manual_clock clk2(500s);  // another clock, another origin
  auto d = TestFixture::template make<u64, i64>({.clock = &clk2});
  std::istringstream in(out.str());
  d.restore(in);
  EXPECT_EQ(contents(d), (std::map<u64, i64>{{1, 10}, {2, 20}, {3, 30}}));
  EXPECT_NE(d.get_versioned(1)->version, 0u);
  clk2.advance(20ms - 1ns);
  EXPECT_TRUE(d.contains(3));
  clk2.advance(1ns);
  EXPECT_FALSE(d.contains(3));
  EXPECT_TRUE(d.contains(1));
  clk2.advance(50ms - 1ns);
  EXPECT_TRUE(d.contains(1));
  clk2.advance(1ns);
  EXPECT_FALSE(d.contains(1));
  clk2.advance(24h);
  EXPECT_EQ(d.get(2), 20);
}

template <class C>
std::string dump_of(C&& c) {
  std::ostringstream out;
  c.dump(out);
  return out.str();
}

TYPED_TEST(CacheFeed, BadDumpThrowsFormatErrorAndChangesNothing) {
  auto src = TestFixture::template make<u64, i64>();
  for (u64 k = 1; k <= 20; ++k) src.put(k, static_cast<i64>(k) * 3);
  src.flush();
  const std::string good = dump_of(src);
  auto d = TestFixture::template make<u64, i64>();
  d.put(100, 1);
  d.put(101, 2);
  d.flush();
  const auto before = contents(d);
  int refused = 0;
  auto expect_refused = [&](const std::string& bytes, const std::string& what) {
    std::istringstream in(bytes);
    try {
      d.restore(in);
      ADD_FAILURE() << what << ": accepted";
    } catch (const warden::format_error&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": threw something else: " << e.what();
    }
    EXPECT_EQ(contents(d), before) << what << ": the target changed";
  };
  for (std::size_t len = 0; len < good.size(); len += (len < 40 || len + 8 > good.size()) ? 1 : 7) {
    expect_refused(good.substr(0, len), "truncated to " + std::to_string(len));
  }
  for (std::size_t i = 0; i < good.size(); i += 3) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    expect_refused(bad, "bit flipped at byte " + std::to_string(i));
  }
  expect_refused(good + "x", "a trailing byte");
  expect_refused("not a warden dump at all, just some text", "text");
  {
    warden::actor<u64, double> other;
    other.put(1, 1.5);
    other.flush();
    expect_refused(dump_of(other), "double values");
  }
  {
    warden::actor<u64, u64> other;  // the same bytes per entry; another value type
    other.put(1, 1);
    other.flush();
    expect_refused(dump_of(other), "u64 values");
  }
  {
    warden::actor<std::string, i64> other;
    other.put("a", 1);
    other.flush();
    expect_refused(dump_of(other), "string keys");
  }
  EXPECT_GT(refused, 100);
  // The intact dump still restores, adding to what was there.
  std::istringstream in(good);
  d.restore(in);
  auto want = before;
  for (u64 k = 1; k <= 20; ++k) want.emplace(k, static_cast<i64>(k) * 3);
  EXPECT_EQ(contents(d), want);
}

}  // namespace
}  // namespace warden_test
