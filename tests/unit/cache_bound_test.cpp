// The cache contract, part 1: the size bound, statistics and expiry, on every cache backend.
// Shared helpers and the backends: cache_support.hpp.
#include "cache_support.hpp"

namespace warden_test {
namespace {

template <class Maker>
class CacheBound : public CacheContract<Maker> {};
TYPED_TEST_SUITE(CacheBound, cache_backends, backend_names);

// ---- the size bound -------------------------------------------------------------------------

TYPED_TEST(CacheBound, BoundHoldsAfterEveryFlushAndKeepsTheNewestEntry) {
  constexpr std::size_t kMax = 40;
  auto c = TestFixture::template make<u64, i64>({.max_size = kMax});
  for (u64 k = 0; k < 400; ++k) {
    c.put(k, static_cast<i64>(k * 10));
    if (k < 60 || k % 4 == 3) {
      c.flush();
      ASSERT_LE(c.size(), kMax) << "after writing key " << k;
      // The admission window always keeps room for the newest write of each owner.
      ASSERT_EQ(c.get(k), static_cast<i64>(k * 10)) << "the entry just written is missing";
    }
  }
  c.flush();
  EXPECT_EQ(c.size(), kMax);  // full: 400 distinct keys, every owner's budget used
  EXPECT_EQ(contents(c).size(), kMax);
}

TYPED_TEST(CacheBound, BoundHoldsWhileProducersPour) {
  const u64 seed = test_seed();
  constexpr std::size_t kMax = 64;
  auto c = TestFixture::template make<u64, i64>({.max_size = kMax, .record_stats = true});
  constexpr int kProducers = 4;
  const u64 per = static_cast<u64>(scaled(1500));
  std::atomic<bool> done{false};
  std::atomic<std::size_t> max_seen{0};
  std::atomic<int> polls{0};
  std::thread watcher([&] {
    while (!done.load(std::memory_order_acquire)) {
      const std::size_t n = c.size();
      if (n > max_seen.load()) max_seen.store(n);
      polls.fetch_add(1);
    }
  });
  EXPECT_TRUE(wait_until([&] { return polls.load() > 0; }));  // watching before the pour
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937_64 rng(seed + static_cast<u64>(p));
      for (u64 i = 0; i < per; ++i) {
        const u64 key = static_cast<u64>(p) * per + i;  // every key written once
        c.put(key, static_cast<i64>(key));
        if (rng() % 64 == 0) c.flush();
      }
      c.flush();
    });
  }
  for (auto& t : producers) t.join();
  done.store(true, std::memory_order_release);
  watcher.join();
  EXPECT_GT(polls.load(), 0);
  EXPECT_LE(max_seen.load(), kMax) << "a reader saw size() above max_size";
  EXPECT_EQ(c.size(), kMax);
  // Every distinct key is either held or counted as evicted (removed or refused).
  const auto st = c.stats();
  EXPECT_EQ(c.size() + st.evictions, kProducers * per) << "evictions=" << st.evictions;
  for (const auto& [k, v] : contents(c)) EXPECT_EQ(v, static_cast<i64>(k));
}

TYPED_TEST(CacheBound, FrequentKeysSurviveAOneHitScan) {
  auto c = TestFixture::template make<u64, i64>({.max_size = 100});
  constexpr u64 kHot = 50;
  for (u64 k = 0; k < kHot; ++k) c.put(k, 1);
  c.flush();
  for (int round = 0; round < 20; ++round) {
    for (u64 k = 0; k < kHot; ++k) ASSERT_TRUE(c.get(k).has_value()) << k;
    c.flush();  // lets the owner take the reads into account
  }
  // A scan of 2000 keys read never again: LRU would keep none of the hot keys.
  for (u64 k = 1000; k < 3000; ++k) {
    c.put(k, 2);
    if (k % 50 == 49) c.flush();
  }
  c.flush();
  EXPECT_LE(c.size(), 100u);
  int kept = 0;
  for (u64 k = 0; k < kHot; ++k) kept += c.contains(k) ? 1 : 0;
  EXPECT_GE(kept, 40) << "hot keys kept: " << kept << " of " << kHot;
}

TYPED_TEST(CacheBound, EvictionsAreCountedExactly) {
  constexpr std::size_t kMax = 100;
  auto c = TestFixture::template make<u64, i64>({.max_size = kMax, .record_stats = true});
  constexpr u64 kKeys = 1000;
  for (u64 k = 0; k < kKeys; ++k) {
    c.put(k, 1);
    if (k % 100 == 99) c.flush();
  }
  c.flush();
  EXPECT_EQ(c.size(), kMax);
  const auto st = c.stats();
  EXPECT_EQ(st.evictions, kKeys - kMax);
  EXPECT_EQ(st.expirations, 0u);
  // Rewriting a held key evicts nothing.
  const auto held = contents(c);
  ASSERT_FALSE(held.empty());
  c.put(held.begin()->first, 5);
  c.flush();
  EXPECT_EQ(c.stats().evictions, kKeys - kMax);
  EXPECT_EQ(c.get(held.begin()->first), 5);
}

TYPED_TEST(CacheBound, EveryWritePathRespectsTheBound) {
  constexpr std::size_t kMax = 10;
  auto c = TestFixture::template make<u64, i64>({.max_size = kMax});
  std::atomic<bool> done{false};
  std::atomic<std::size_t> max_seen{0};
  std::thread watcher([&] {
    while (!done.load(std::memory_order_acquire)) {
      const std::size_t n = c.size();
      if (n > max_seen.load()) max_seen.store(n);
      std::this_thread::yield();  // leave the CPU to the owner on a 2-core machine
    }
  });
  auto written = [&](u64 k, const char* what) {
    // A call's write is published when it returns, and the newest entry is kept.
    EXPECT_TRUE(c.contains(k)) << what << " " << k << ": the entry just written is missing";
    EXPECT_LE(c.size(), kMax) << what;
  };
  for (u64 k = 0; k < 30; ++k) {
    EXPECT_TRUE(c.insert_new(k, 1));
    written(k, "insert_new");
    c.update(100 + k, [](const std::optional<i64>&) { return std::optional<i64>(1); });
    written(100 + k, "update");
    c.update_counter(200 + k, 1);
    written(200 + k, "update_counter");
    EXPECT_TRUE(c.put_if_version(300 + k, 1, 0));
    written(300 + k, "put_if_version");
    c.get_or_load(400 + k, [](const u64&) { return i64{1}; });
    written(400 + k, "get_or_load");
    c.transact([&](auto& tx) {
      for (u64 i = 0; i < 4; ++i) tx.put(500 + k * 4 + i, 1);
    });
    EXPECT_LE(c.size(), kMax) << "transact";
  }
  auto src = TestFixture::template make<u64, i64>();
  for (u64 k = 1000; k < 1100; ++k) src.put(k, 1);
  src.flush();
  std::ostringstream out;
  src.dump(out);
  std::istringstream in(out.str());
  c.restore(in);
  EXPECT_LE(c.size(), kMax) << "restore";
  done.store(true, std::memory_order_release);
  watcher.join();
  EXPECT_LE(max_seen.load(), kMax) << "a reader saw size() above max_size";
}

// ---- statistics -------------------------------------------------------------------------------

// One fixed sequence of reads and loads; returns the stats it leaves.
template <class C>
warden::cache_stats stats_sequence(C& c, warden::manual_clock& clk) {
  for (u64 k = 1; k <= 10; ++k) c.put(k, static_cast<i64>(k));
  c.flush();
  int runs = 0;
  auto loader = [&](const u64& k) {
    ++runs;
    return static_cast<i64>(k * 7);
  };
  EXPECT_EQ(c.get(1), 1);                       // hit 1
  EXPECT_EQ(c.get(2), 2);                       // hit 2
  EXPECT_EQ(c.get(100), std::nullopt);          // miss 1
  EXPECT_EQ(c.get_or_load(3, loader), 3);       // hit 3, no load
  EXPECT_EQ(c.get_or_load(200, loader), 1400);  // miss 2, load 1
  EXPECT_THROW(c.get_or_load(201,
                             [&](const u64&) -> i64 {
                               ++runs;
                               throw test_failure("loader failed");
                             }),
               test_failure);                   // miss 3, load 2, failure 1
  EXPECT_EQ(c.get_or_load(200, loader), 1400);  // hit 4 (stored), no load
  EXPECT_EQ(runs, 2);
  c.put(300, 1, 5ms);
  c.put(301, 1, 5ms);
  c.flush();
  clk.advance(5ms);
  EXPECT_EQ(c.get(300), std::nullopt);  // miss 4: expired
  c.flush();                            // the owner removes both: expirations 2
  return c.stats();
}

TYPED_TEST(CacheBound, StatsAreExactInOneThread) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk, .record_stats = true});
  const auto before = c.stats();
  EXPECT_EQ(before.hits + before.misses + before.loads + before.load_failures + before.evictions +
                before.expirations,
            0u);
  const auto st = stats_sequence(c, clk);
  EXPECT_EQ(st.hits, 4u);
  EXPECT_EQ(st.misses, 4u);
  EXPECT_EQ(st.loads, 2u);
  EXPECT_EQ(st.load_failures, 1u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.expirations, 2u);
  EXPECT_DOUBLE_EQ(st.hit_ratio(), 0.5);
}

TYPED_TEST(CacheBound, StatsStayZeroWithoutRecordStats) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.max_size = 50, .clock = &clk});
  stats_sequence(c, clk);
  for (u64 k = 1000; k < 1200; ++k) c.put(k, 1);  // and evictions
  c.flush();
  ASSERT_EQ(c.size(), 50u);
  const auto st = c.stats();
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.misses, 0u);
  EXPECT_EQ(st.loads, 0u);
  EXPECT_EQ(st.load_failures, 0u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.expirations, 0u);
}

// ---- expiry -----------------------------------------------------------------------------------

TYPED_TEST(CacheBound, PutTtlExpiresExactlyAtItsDeadline) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk, .record_stats = true});
  c.put(1, 10, 100ms);
  c.put(2, 20);
  c.flush();
  clk.advance(100ms - 1ns);
  EXPECT_EQ(c.get(1), 10);
  EXPECT_TRUE(c.contains(1));
  clk.advance(1ns);  // the deadline: gone at once, no owner involved
  EXPECT_EQ(c.get(1), std::nullopt);
  EXPECT_FALSE(c.contains(1));
  EXPECT_EQ(c.get_versioned(1), std::nullopt);
  EXPECT_EQ(c.get(2), 20);
  c.flush();
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.stats().expirations, 1u);
  clk.advance(24h);
  EXPECT_EQ(c.get(2), 20);  // no ttl, no expiry options: never expires
}

// A value the optimizer cannot see through (an overflow of a constant could be folded into
// nonsense instead of failing the test).
template <class T>
T opaque(T v) {
  volatile T x = v;
  return x;
}

TYPED_TEST(CacheBound, HugeTtlNeverExpiresEarly) {
  // put(k, v, ttl) takes any std::chrono::duration: one longer than int64 nanoseconds can
  // hold must saturate (never expire), not overflow into a negative or short ttl.
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  std::vector<std::string> refused;
  auto try_put = [&](u64 k, auto ttl, const char* what) {
    try {
      c.put(k, 1, ttl);
    } catch (const std::exception& e) {
      refused.push_back(std::string(what) + ": " + e.what());
    }
  };
  try_put(1, std::chrono::years(opaque(1000)), "years(1000)");
  try_put(2, std::chrono::hours(opaque(std::chrono::hours::max().count())), "hours::max()");
  try_put(3, std::chrono::nanoseconds(opaque(std::numeric_limits<i64>::max())), "ns::max()");
  c.flush();
  EXPECT_EQ(refused, std::vector<std::string>{});
  clk.advance(std::chrono::hours(24 * 365 * 200));  // 200 years
  for (u64 k = 1; k <= 3; ++k) EXPECT_TRUE(c.contains(k)) << "key " << k << " expired early";
}

// Found by the fuzzer (tests/fuzz/regressions/cache/clock_saturated_never_expiring_entry):
// once the clock itself saturates at the int64 limit, an entry that never expires must stay,
// on every path (reads, and calls such as update_counter, which judge liveness on the owner).
TYPED_TEST(CacheBound, NeverExpiringEntriesSurviveASaturatedClock) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  c.put(1, 100);                                    // no ttl, no expire_after_*: never expires
  c.put(2, 5, std::chrono::hours::max());           // saturates: never expires
  c.put(3, 7, std::chrono::hours(24 * 365 * 100));  // 100 years: expires once the clock is past
  c.flush();
  clk.advance(std::chrono::hours::max());  // saturates at the int64 limit
  EXPECT_EQ(c.get(1), 100);
  EXPECT_EQ(c.update_counter(1, 1), 101);
  EXPECT_EQ(c.update_counter(2, 1), 6);
  EXPECT_FALSE(c.contains(3));
  c.flush();
  EXPECT_EQ(c.size(), 2u);
}

TYPED_TEST(CacheBound, EveryReadRespectsExpiry) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  c.put(1, 10, 10ms);
  c.put(2, 20);
  c.flush();
  ASSERT_TRUE(c.snapshot([](auto& view) { return view.contains(1); }));
  clk.advance(10ms);  // no flush: readers judge expiry themselves
  EXPECT_EQ(c.get(1), std::nullopt);
  EXPECT_FALSE(c.contains(1));
  EXPECT_EQ(c.get_versioned(1), std::nullopt);
  EXPECT_FALSE(c.visit(1, [](const i64&) {}));
  const auto seen = c.snapshot([](auto& view) {
    std::vector<u64> keys;
    EXPECT_EQ(view.get(1), std::nullopt);
    EXPECT_FALSE(view.contains(1));
    EXPECT_EQ(view.get(2), 20);
    view.for_each([&](const u64& k, const i64&) { keys.push_back(k); });
    return keys;
  });
  EXPECT_EQ(seen, std::vector<u64>{2});
  int runs = 0;
  EXPECT_EQ(c.get_or_load(1,
                          [&](const u64&) {
                            ++runs;
                            return i64{11};
                          }),
            11);
  EXPECT_EQ(runs, 1);  // an expired entry is a miss for get_or_load
  EXPECT_EQ(c.get(1), 11);
}

TYPED_TEST(CacheBound, ExpireAfterWriteExpiresAtItsDeadlineAndRewritesRenew) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_write = 50ms, .clock = &clk});
  c.put(1, 10);
  c.put(2, 20);
  c.flush();
  clk.advance(30ms);
  EXPECT_EQ(c.get(1), 10);  // a read does not extend expire_after_write
  c.put(2, 21);             // a write does: key 2 now lives until 80ms
  c.flush();
  clk.advance(20ms - 1ns);
  EXPECT_EQ(c.get(1), 10);
  clk.advance(1ns);  // 50ms
  EXPECT_EQ(c.get(1), std::nullopt);
  EXPECT_EQ(c.get(2), 21);
  clk.advance(30ms - 1ns);
  EXPECT_EQ(c.get(2), 21);
  clk.advance(1ns);  // 80ms
  EXPECT_EQ(c.get(2), std::nullopt);
  c.flush();
  EXPECT_EQ(c.size(), 0u);
}

TYPED_TEST(CacheBound, PutTtlOverridesTheOptions) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_write = 50ms, .clock = &clk});
  c.put(1, 1, 200ms);  // longer than the options
  c.put(2, 2, 10ms);   // shorter
  c.put(3, 3);         // the options: 50ms
  c.flush();
  clk.advance(10ms);
  EXPECT_FALSE(c.contains(2));
  EXPECT_TRUE(c.contains(3));
  clk.advance(40ms);
  EXPECT_FALSE(c.contains(3));
  EXPECT_TRUE(c.contains(1));
  clk.advance(150ms - 1ns);
  EXPECT_TRUE(c.contains(1));
  clk.advance(1ns);
  EXPECT_FALSE(c.contains(1));

  // Against expire_after_access: reads neither extend nor shorten a put's own ttl.
  warden::manual_clock clk2(1s);
  auto d = TestFixture::template make<u64, i64>({.expire_after_access = 20ms, .clock = &clk2});
  d.put(1, 1, 100ms);
  d.flush();
  for (int i = 0; i < 9; ++i) {
    clk2.advance(11ms);  // past the access window each time: no read in between would save it
    EXPECT_TRUE(d.contains(1)) << i;
    d.flush();
  }
  clk2.advance(1ms - 1ns);  // 100ms - 1ns
  EXPECT_TRUE(d.contains(1));
  d.flush();
  clk2.advance(1ns);
  EXPECT_FALSE(d.contains(1)) << "reads extended a put's own ttl";
}

TYPED_TEST(CacheBound, ExpireAfterAccessIsExtendedByReads) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_access = 100ms, .clock = &clk});
  c.put(1, 10);
  c.put(2, 20);
  c.flush();
  for (int i = 0; i < 5; ++i) {  // 300ms of reads 60ms apart: key 1 stays
    clk.advance(60ms);
    EXPECT_EQ(c.get(1), 10) << "read " << i;
    c.flush();  // the owner has taken the read into account
  }
  EXPECT_FALSE(c.contains(2));  // never read: expired at 100ms
  clk.advance(100ms - 1ns);     // the last read + 100ms - 1ns
  EXPECT_TRUE(c.snapshot([](auto& view) { return view.contains(1); }));
  clk.advance(1ns);
  EXPECT_FALSE(c.snapshot([](auto& view) { return view.contains(1); }));
  EXPECT_EQ(c.get(1), std::nullopt);
  c.flush();
  EXPECT_EQ(c.size(), 0u);
}

// A thread that stays alive between the jobs it runs (so the read records it leaves stay
// pending until some flush); run() returns once the job is done.
class helper_thread {
 public:
  helper_thread() : thread_([this] { loop(); }) {}
  helper_thread(const helper_thread&) = delete;
  helper_thread& operator=(const helper_thread&) = delete;
  ~helper_thread() {
    {
      std::lock_guard lock(m_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void run(std::function<void()> job) {
    std::unique_lock lock(m_);
    job_ = std::move(job);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !job_; });
  }

 private:
  void loop() {
    std::unique_lock lock(m_);
    for (;;) {
      cv_.wait(lock, [&] { return quit_ || job_; });
      if (quit_) return;
      job_();
      job_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool quit_ = false;
  std::thread thread_;  // last: starts once the rest exists
};

TYPED_TEST(CacheBound, ExpireAfterAccessIsNeverShortenedByAnOlderRead) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_access = 100ms, .clock = &clk});
  helper_thread other;
  // Two readers: one reads at +50ms, the other at +80ms, neither flushes; then a flush
  // hands both records to the owner. Both orders, so that whichever reader's records the
  // owner takes first, once the older record comes last.
  for (const bool other_first : {true, false}) {
    SCOPED_TRACE(other_first ? "the other thread reads first" : "this thread reads first");
    const u64 key = other_first ? 1 : 2;
    c.put(key, 10);
    c.flush();
    auto read = [&] { EXPECT_EQ(c.get(key), 10); };
    clk.advance(50ms);
    if (other_first) {
      other.run(read);
    } else {
      read();
    }
    clk.advance(30ms);
    if (other_first) {
      read();
    } else {
      other.run(read);
    }
    c.flush();
    clk.advance(100ms - 1ns);  // the later read + 100ms - 1ns
    // (A snapshot's reads are not accesses: they do not extend the deadline being measured.)
    EXPECT_TRUE(c.snapshot([&](auto& view) { return view.contains(key); }))
        << "an older read shortened the access deadline";
    clk.advance(1ns);
    EXPECT_FALSE(c.contains(key));
    c.flush();
  }
}

TYPED_TEST(CacheBound, SizeAfterFlushCountsNoExpiredEntry) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>(
      {.expire_after_write = 30ms, .clock = &clk, .record_stats = true});
  for (u64 k = 0; k < 10; ++k) c.put(k, 1, 10ms);
  for (u64 k = 10; k < 20; ++k) c.put(k, 1, 1h);
  for (u64 k = 20; k < 25; ++k) c.put(k, 1);  // the options: 30ms
  c.flush();
  EXPECT_EQ(c.size(), 25u);
  clk.advance(10ms);
  c.flush();
  EXPECT_EQ(c.size(), 15u);
  EXPECT_EQ(c.stats().expirations, 10u);
  clk.advance(20ms);
  c.flush();
  EXPECT_EQ(c.size(), 10u);
  EXPECT_EQ(c.stats().expirations, 15u);
  EXPECT_EQ(contents(c).size(), 10u);
}

TYPED_TEST(CacheBound, ExpireAfterAccessRecordsAreNeverLost) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_access = 100ms, .clock = &clk});
  constexpr u64 kKeys = 2000;  // far more reads than a reader's access buffer holds
  for (u64 k = 0; k < kKeys; ++k) c.put(k, static_cast<i64>(k));
  c.flush();
  clk.advance(60ms);
  for (u64 k = 0; k < kKeys; ++k) ASSERT_EQ(c.get(k), static_cast<i64>(k));
  c.flush();
  clk.advance(99ms);  // past the first deadline (100ms), before the extended one (160ms)
  const auto held = c.snapshot([](auto& view) {
    u64 n = 0;
    for (u64 k = 0; k < kKeys; ++k) n += view.contains(k) ? 1 : 0;
    return n;
  });
  EXPECT_EQ(held, kKeys) << "reads lost: their entries expired at the write's deadline";
  clk.advance(1ms);
  EXPECT_FALSE(c.contains(0));
  EXPECT_FALSE(c.contains(kKeys - 1));
}

TYPED_TEST(CacheBound, EveryWritePathHonoursExpireAfterWrite) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.expire_after_write = 50ms, .clock = &clk});
  c.put(1, 1);
  c.transact([](auto& tx) { tx.put(2, 1); });
  c.update(3, [](const std::optional<i64>&) { return std::optional<i64>(1); });
  c.update_counter(4, 1);
  c.insert_new(5, 1);
  c.put_if_version(6, 1, 0);
  c.get_or_load(7, [](const u64&) { return i64{1}; });
  c.flush();
  clk.advance(50ms - 1ns);
  for (u64 k = 1; k <= 7; ++k) EXPECT_TRUE(c.contains(k)) << k;
  clk.advance(1ns);
  for (u64 k = 1; k <= 7; ++k) EXPECT_FALSE(c.contains(k)) << k;
}

TYPED_TEST(CacheBound, RewriteReplacesTheTtl) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  c.put(1, 1, 10ms);
  c.put(1, 2);  // no ttl now
  c.put(2, 1);
  c.put(2, 2, 10ms);  // a ttl now
  c.flush();
  clk.advance(10ms);
  EXPECT_EQ(c.get(1), 2);
  EXPECT_FALSE(c.contains(2));
  c.flush();
  clk.advance(24h);
  EXPECT_EQ(c.get(1), 2);
  c.flush();
  EXPECT_EQ(c.size(), 1u);
}

TYPED_TEST(CacheBound, RemovedEntriesDoNotExpireLater) {
  warden::manual_clock clk(1s);
  auto c =
      TestFixture::template make<u64, i64>({.max_size = 10, .clock = &clk, .record_stats = true});
  for (u64 k = 0; k < 100; ++k) {
    c.put(k, static_cast<i64>(k), 10ms);
    if (k % 10 == 9) c.flush();
  }
  c.flush();
  EXPECT_EQ(c.stats().evictions, 90u);
  const auto held = contents(c);
  ASSERT_EQ(held.size(), 10u);
  auto it = held.begin();
  EXPECT_EQ(c.take(it->first), it->second);
  ++it;
  c.erase(it->first);
  ++it;
  c.update(it->first, [](const std::optional<i64>&) { return std::optional<i64>(); });
  c.flush();
  clk.advance(10ms);
  c.flush();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.stats().expirations, 7u) << "evicted or removed entries counted as expired";
  EXPECT_EQ(c.stats().evictions, 90u);
}

TYPED_TEST(CacheBound, CallsTreatAnExpiredEntryAsAbsent) {
  warden::manual_clock clk(1s);
  auto c = TestFixture::template make<u64, i64>({.clock = &clk});
  for (u64 k = 1; k <= 3; ++k) c.put(k, 5, 10ms);
  c.flush();
  clk.advance(10ms);
  EXPECT_EQ(c.update_counter(1, 1), 1);  // counts from zero
  std::optional<i64> seen = 0;
  c.update(2, [&](const std::optional<i64>& cur) {
    seen = cur;
    return std::optional<i64>(7);
  });
  EXPECT_EQ(seen, std::nullopt);
  EXPECT_TRUE(c.put_if_version(3, 9, 0));
  clk.advance(24h);  // written again without a ttl: they stay
  EXPECT_EQ(c.get(1), 1);
  EXPECT_EQ(c.get(2), 7);
  EXPECT_EQ(c.get(3), 9);
}

}  // namespace
}  // namespace warden_test
