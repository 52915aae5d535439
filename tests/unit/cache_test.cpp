// The cache contract (shared/DESIGN.md "A real cache"; README "A real cache"), run on every
// backend in backends.hpp: the size bound, expiry, loading, statistics, the ETS-style calls,
// reentrancy from owner-side callbacks, the change feed and dump/restore. Each test can fail
// if its promise breaks. Expiry runs on warden::manual_clock, so it is exact and needs no
// sleeping. The concurrent tests print their seed (WARDEN_TEST_SEED replays it) and scale
// their work by WARDEN_TEST_SCALE (default 1; sanitizer runs may lower it).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <latch>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends.hpp"

namespace warden_test {
namespace {

using namespace std::chrono_literals;
using u64 = std::uint64_t;
using i64 = std::int64_t;

struct test_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double work_scale() {
  static const double s = [] {
    const char* e = std::getenv("WARDEN_TEST_SCALE");
    const double v = e ? std::atof(e) : 1.0;
    return v > 0 ? v : 1.0;
  }();
  return s;
}
int scaled(int n) { return std::max(1, static_cast<int>(n * work_scale())); }

// The seed of the concurrent tests: printed once, replayable with WARDEN_TEST_SEED.
u64 test_seed() {
  static const u64 seed = [] {
    const char* e = std::getenv("WARDEN_TEST_SEED");
    const u64 v = e ? std::strtoull(e, nullptr, 10) : std::random_device{}();
    std::printf("cache_test seed: %llu (replay with WARDEN_TEST_SEED=%llu)\n",
                static_cast<unsigned long long>(v), static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

// Spins (yielding) until pred() or the timeout; returns pred().
template <class P>
bool wait_until(P pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Every live entry, as a snapshot sees it.
template <class C>
auto contents(const C& c) {
  using K = typename C::key_type;
  using V = typename C::mapped_type;
  return c.snapshot([](auto& view) {
    std::map<K, V> m;
    view.for_each([&](const K& k, const V& v) { m.emplace(k, v); });
    return m;
  });
}

// Applies a change batch to a mirror of the cache.
template <class K, class V>
void apply_batch(std::map<K, V>& m, const warden::change_batch<K, V>& b) {
  for (const auto& ch : b) {
    if (ch.cause == warden::change_cause::write) {
      if (!ch.value) throw test_failure("a write change without its value");
      m.insert_or_assign(ch.key, *ch.value);
    } else {
      m.erase(ch.key);
    }
  }
}

// flush(), then one more round trip to the owners. Tests that count expirations (or mirror
// them) right after a flush use it so as not to all depend on the one ordering that
// FlushCoversTheExpirationsItsBatchFinds checks.
template <class C>
void flush_and_settle(C& c) {
  c.flush();
  (void)c.size();
}

template <class Maker>
class CacheContract : public ::testing::Test {
 protected:
  template <class K, class V>
  static auto make(const cache_opts& o = {}) {
    return Maker::template make<K, V>(o);
  }
};
TYPED_TEST_SUITE(CacheContract, all_backends, backend_names);

// ---- the size bound -------------------------------------------------------------------------

TYPED_TEST(CacheContract, BoundHoldsAfterEveryFlushAndKeepsTheNewestEntry) {
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

TYPED_TEST(CacheContract, BoundHoldsWhileProducersPour) {
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

TYPED_TEST(CacheContract, FrequentKeysSurviveAOneHitScan) {
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

TYPED_TEST(CacheContract, EvictionsAreCountedExactly) {
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

TYPED_TEST(CacheContract, EveryWritePathRespectsTheBound) {
  constexpr std::size_t kMax = 10;
  auto c = TestFixture::template make<u64, i64>({.max_size = kMax});
  std::atomic<bool> done{false};
  std::atomic<std::size_t> max_seen{0};
  std::thread watcher([&] {
    while (!done.load(std::memory_order_acquire)) {
      const std::size_t n = c.size();
      if (n > max_seen.load()) max_seen.store(n);
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
  flush_and_settle(c);                  // the owner removes both: expirations 2
  return c.stats();
}

TYPED_TEST(CacheContract, StatsAreExactInOneThread) {
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

TYPED_TEST(CacheContract, StatsStayZeroWithoutRecordStats) {
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

TYPED_TEST(CacheContract, PutTtlExpiresExactlyAtItsDeadline) {
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

TYPED_TEST(CacheContract, EveryReadRespectsExpiry) {
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

TYPED_TEST(CacheContract, ExpireAfterWriteExpiresAtItsDeadlineAndRewritesRenew) {
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

TYPED_TEST(CacheContract, PutTtlOverridesTheOptions) {
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

TYPED_TEST(CacheContract, ExpireAfterAccessIsExtendedByReads) {
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

TYPED_TEST(CacheContract, ExpireAfterAccessIsNeverShortenedByAnOlderRead) {
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

TYPED_TEST(CacheContract, SizeAfterFlushCountsNoExpiredEntry) {
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

TYPED_TEST(CacheContract, ExpireAfterAccessRecordsAreNeverLost) {
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

TYPED_TEST(CacheContract, EveryWritePathHonoursExpireAfterWrite) {
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

TYPED_TEST(CacheContract, RewriteReplacesTheTtl) {
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

TYPED_TEST(CacheContract, RemovedEntriesDoNotExpireLater) {
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

TYPED_TEST(CacheContract, CallsTreatAnExpiredEntryAsAbsent) {
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

// ---- get_or_load --------------------------------------------------------------------------------

TYPED_TEST(CacheContract, GetOrLoadRunsOneLoaderForConcurrentCallers) {
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

TYPED_TEST(CacheContract, GetOrLoadFailureReachesEveryWaiterAndStoresNothing) {
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

TYPED_TEST(CacheContract, PutOrEraseLandingDuringALoadWins) {
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

TYPED_TEST(CacheContract, LoaderAskingForItsOwnKeyGetsReentrancyError) {
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

TYPED_TEST(CacheContract, GetOrLoadHitRunsNoLoader) {
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

TYPED_TEST(CacheContract, InsertNewOnlyWhenAbsentOrExpired) {
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

TYPED_TEST(CacheContract, TakeRemovesAndReturns) {
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

TYPED_TEST(CacheContract, UpdateInsertsModifiesAndErases) {
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

TYPED_TEST(CacheContract, EraseIfRemovesExactlyTheMatchingLiveEntries) {
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

TYPED_TEST(CacheContract, ClearRemovesEverythingInOrderWithCasts) {
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

TYPED_TEST(CacheContract, VersionsAreNonZeroStableAndChangeOnEveryWrite) {
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

TYPED_TEST(CacheContract, PutIfVersionWritesOnlyOverThatVersion) {
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

TYPED_TEST(CacheContract, CompareAndSetLoopLosesNoIncrement) {
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

TYPED_TEST(CacheContract, OwnerSideCallbacksRefuseEveryCallAndCast) {
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

TYPED_TEST(CacheContract, Int32CounterWrapsAround) {
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

// ---- the change feed ----------------------------------------------------------------------------

TYPED_TEST(CacheContract, FeedMirrorFollowsTransfersBatchByBatch) {
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

TYPED_TEST(CacheContract, FeedCarriesEvictionsAndExpirationsWithTheirValues) {
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
  for (u64 k = 1000; k < 1005; ++k) c.put(k, static_cast<i64>(k * 10), 10ms);
  c.flush();
  clk.advance(10ms);
  flush_and_settle(c);  // the owner removes them
  sub.sync();
  EXPECT_TRUE(mirror.empty());
  ASSERT_EQ(removed.size(), 5u);
  for (const auto& ch : removed) {
    EXPECT_EQ(ch.cause, warden::change_cause::expire);
    ASSERT_TRUE(ch.value.has_value()) << "an expiry without the removed value";
    EXPECT_EQ(*ch.value, static_cast<i64>(ch.key * 10));
  }
  EXPECT_EQ(c.stats().expirations, 5u);
}

TYPED_TEST(CacheContract, FlushCoversTheExpirationsItsBatchFinds) {
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

TYPED_TEST(CacheContract, SubscriberExceptionIsRethrownBySyncAndDeliveryContinues) {
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

TYPED_TEST(CacheContract, DestroyedSubscriptionReceivesNothingMore) {
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

TYPED_TEST(CacheContract, SyncFromInsideASubscriberIsRefused) {
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

TYPED_TEST(CacheContract, BoundedFeedPushesBackAndLosesNothing) {
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

TYPED_TEST(CacheContract, SubscriberCallsAreRefusedOnlyOnABoundedFeed) {
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

TYPED_TEST(CacheContract, ClearRestoreAndEraseIfAreEachOneBatch) {
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

TYPED_TEST(CacheContract, DumpDuringTransfersRestoresAConservedSum) {
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

TYPED_TEST(CacheContract, DumpRestoresAcrossBackends) {
  dump_round_trip([] { return TestFixture::template make<u64, i64>(); });
  dump_round_trip([] { return TestFixture::template make<std::string, std::string>(); });
}

TYPED_TEST(CacheContract, DumpKeepsTheRemainingTimeToLive) {
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

TYPED_TEST(CacheContract, BadDumpThrowsFormatErrorAndChangesNothing) {
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
