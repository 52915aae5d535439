// Stress tests of the cache features (shared/DESIGN.md "A real cache") on the table, the
// sharded table and the actor: many threads, bounded in time, seeded with the seed printed.
//  - the size bound under 8 producers, 4 readers and a size() watcher: never exceeded,
//    nothing torn, nothing lost that was not evicted;
//  - readers never see a value past its deadline while the owners sweep (steady clock);
//  - get_or_load racing puts and erases: no deadlock, no lost wake-up, and a put flushed
//    before a load ends is never overwritten by that load;
//  - subscribers joining and leaving while owners publish, and a cache destroyed with a
//    subscriber attached: nothing delivered after unsubscribing, every batch delivered.
// WARDEN_STRESS_SECONDS (default 1.5) scales the time of each test (each backend gets half of
// it); WARDEN_STRESS_SEED replays a run. A watchdog aborts a run that hangs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../support/backends.hpp"

namespace warden_test {
namespace {

using namespace std::chrono_literals;
using u64 = std::uint64_t;
using i64 = std::int64_t;
using steady = std::chrono::steady_clock;

double stress_seconds() {
  const char* s = std::getenv("WARDEN_STRESS_SECONDS");
  const double v = s ? std::atof(s) : 1.5;
  return v > 0 ? v : 1.5;
}
// The time one backend's run of a test gets.
steady::duration run_time() {
  return std::chrono::duration_cast<steady::duration>(
      std::chrono::duration<double>(stress_seconds() / 2));
}

u64 stress_seed() {
  static const u64 seed = [] {
    const char* s = std::getenv("WARDEN_STRESS_SEED");
    const u64 v = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    std::printf("cache stress seed: %llu (replay with WARDEN_STRESS_SEED=%llu)\n",
                static_cast<unsigned long long>(v), static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

i64 steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// Aborts the process, naming the test, if it is still running after `limit`: a deadlock or a
// lost wake-up must fail the run, not hang it.
class watchdog {
 public:
  explicit watchdog(const char* what)
      : thread_([this, what] {
          const auto limit = std::chrono::duration_cast<steady::duration>(
              std::chrono::duration<double>(120 + 20 * stress_seconds()));
          std::unique_lock lock(m_);
          if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
            std::fprintf(stderr, "watchdog: %s still running after %.0f s: hung\n", what,
                         std::chrono::duration<double>(limit).count());
            std::abort();
          }
        }) {}
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() {
    {
      std::lock_guard lock(m_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the rest exists
};

u64 mix(u64 a, u64 b) {
  u64 x = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  return x ^ (x >> 29);
}

// A value that names its key; a torn or misplaced read shows.
struct tagged {
  u64 key = 0;
  u64 seq = 0;
  u64 check = 0;
  static tagged make(u64 k, u64 s) { return tagged{k, s, mix(k, s)}; }
  bool intact_for(u64 k) const { return key == k && check == mix(key, seq); }
};

template <class Maker>
class CacheStress : public ::testing::Test {
 protected:
  template <class K, class V>
  static auto make(const cache_opts& o = {}) {
    return Maker::template make<K, V>(o);
  }
};
TYPED_TEST_SUITE(CacheStress, stress_backends, backend_names);

// ---- the size bound ---------------------------------------------------------------------------

TYPED_TEST(CacheStress, BoundHoldsNothingTornNothingLostButEvicted) {
  watchdog dog("BoundHoldsNothingTornNothingLostButEvicted");
  const u64 seed = stress_seed();
  constexpr std::size_t kMax = 256;
  constexpr int kProducers = 8, kReaders = 4;
  constexpr u64 kRange = 2000;  // keys per producer (each key has one writer)
  auto c = TestFixture::template make<u64, tagged>({.max_size = kMax, .record_stats = true});
  const auto end = steady::now() + run_time();
  std::atomic<bool> stop{false};
  std::atomic<u64> torn{0}, reads{0}, over{0};
  std::atomic<std::size_t> max_size_seen{0};
  // last[p][i]: the seq producer p last wrote to its key i (0: never written).
  std::vector<std::vector<u64>> last(kProducers, std::vector<u64>(kRange, 0));
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::mt19937_64 rng(seed + static_cast<u64>(p));
      auto& mine = last[static_cast<std::size_t>(p)];
      u64 seq = 0;
      while (steady::now() < end) {
        for (int i = 0; i < 64; ++i) {
          // Skewed: a few keys often, most rarely, so the policy has something to keep.
          const u64 idx = (rng() % 4 == 0) ? rng() % 32 : rng() % kRange;
          const u64 key = static_cast<u64>(p) * kRange + idx;
          c.put(key, tagged::make(key, ++seq));
          mine[idx] = seq;
        }
        if (rng() % 8 == 0) c.flush();
      }
      c.flush();
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 1000 + static_cast<u64>(r));
      u64 n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 key = (rng() % kProducers) * kRange + ((rng() % 2) ? rng() % 32 : rng() % kRange);
        if (const auto v = c.get(key); v && !v->intact_for(key)) torn.fetch_add(1);
        ++n;
      }
      reads.fetch_add(n);
    });
  }
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const std::size_t n = c.size();
      if (n > kMax) over.fetch_add(1);
      if (n > max_size_seen.load()) max_size_seen.store(n);
    }
  });
  for (int p = 0; p < kProducers; ++p) threads[static_cast<std::size_t>(p)].join();
  stop.store(true);
  for (std::size_t i = kProducers; i < threads.size(); ++i) threads[i].join();
  c.flush();

  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(over.load(), 0u) << "size() above max_size, max seen " << max_size_seen.load();
  u64 distinct = 0;
  for (const auto& mine : last) {
    for (u64 s : mine) distinct += s != 0 ? 1 : 0;
  }
  const auto held = c.snapshot([](auto& view) {
    std::vector<std::pair<u64, tagged>> out;
    view.for_each([&](const u64& k, const tagged& v) { out.emplace_back(k, v); });
    return out;
  });
  u64 stale = 0;
  for (const auto& [k, v] : held) {
    if (!v.intact_for(k)) ++torn;
    const u64 want =
        last[static_cast<std::size_t>(k / kRange)][static_cast<std::size_t>(k % kRange)];
    if (v.seq != want) ++stale;
  }
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(stale, 0u) << "a held key does not hold its last written value";
  EXPECT_LE(held.size(), kMax);
  EXPECT_EQ(c.size(), held.size());
  const auto st = c.stats();
  EXPECT_GE(held.size() + st.evictions, distinct)
      << "entries lost without being evicted: held " << held.size() << ", evicted " << st.evictions
      << ", distinct keys written " << distinct;
  EXPECT_GT(distinct, kMax);  // the bound was exercised
  std::printf("distinct keys %llu, held %zu, evictions %llu, reads %llu, max size seen %zu\n",
              static_cast<unsigned long long>(distinct), held.size(),
              static_cast<unsigned long long>(st.evictions),
              static_cast<unsigned long long>(reads.load()), max_size_seen.load());
}

// ---- expiry under a sweeping owner -------------------------------------------------------------

// A value that says who wrote it, so a reader can find the latest deadline that write can have.
struct stamped {
  u64 key = 0;
  std::uint32_t producer = 0;
  std::uint32_t index = 0;
};

TYPED_TEST(CacheStress, ReadersNeverSeeAnExpiredValue) {
  watchdog dog("ReadersNeverSeeAnExpiredValue");
  const u64 seed = stress_seed();
  constexpr int kProducers = 4, kReaders = 4;
  constexpr u64 kKeys = 512;
  constexpr std::size_t kCap = 1 << 16;  // writes per producer at most
  constexpr i64 kSlack = 1'000'000;      // 1 ms: a read may begin this late and still hit
  auto c = TestFixture::template make<u64, stamped>();
  // upper[p][i]: a time at or after which write i of producer p has surely expired (its ttl
  // added to a time after its flush returned); 0 until known.
  std::vector<std::vector<std::atomic<i64>>> upper;
  upper.reserve(kProducers);
  for (int p = 0; p < kProducers; ++p) upper.emplace_back(kCap);
  const auto end = steady::now() + run_time();
  std::atomic<bool> stop{false};
  std::atomic<u64> late{0}, checked{0}, misplaced{0};
  std::atomic<i64> worst{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::mt19937_64 rng(seed + static_cast<u64>(p));
      auto& up = upper[static_cast<std::size_t>(p)];
      std::uint32_t n = 0;
      while (steady::now() < end && n + 4 < kCap) {
        const std::uint32_t first = n;
        i64 ttls[4];
        const int burst = 1 + static_cast<int>(rng() % 4);
        for (int b = 0; b < burst; ++b) {
          const u64 key = rng() % kKeys;
          ttls[b] = static_cast<i64>(1 + rng() % 20) * 1'000'000;  // 1-20 ms
          c.put(key, stamped{key, static_cast<std::uint32_t>(p), n++},
                std::chrono::nanoseconds(ttls[b]));
        }
        c.flush();
        const i64 applied_by = steady_ns();
        for (int b = 0; b < burst; ++b) {
          up[first + static_cast<std::uint32_t>(b)].store(applied_by + ttls[b],
                                                          std::memory_order_release);
        }
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed + 1000 + static_cast<u64>(r));
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 key = rng() % kKeys;
        const i64 began = steady_ns();
        const auto v = c.get(key);
        if (!v) continue;
        if (v->key != key || v->producer >= kProducers || v->index >= kCap) {
          misplaced.fetch_add(1);
          continue;
        }
        // acquire: pairs with the producer's release store.
        const i64 u = upper[v->producer][v->index].load(std::memory_order_acquire);
        if (u == 0) continue;  // its flush had not returned: the read began before the deadline
        checked.fetch_add(1, std::memory_order_relaxed);
        if (began > u + kSlack) {
          late.fetch_add(1);
          const i64 by = began - u;
          if (by > worst.load()) worst.store(by);
        }
      }
    });
  }
  for (int p = 0; p < kProducers; ++p) threads[static_cast<std::size_t>(p)].join();
  stop.store(true);
  for (std::size_t i = kProducers; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(misplaced.load(), 0u);
  EXPECT_EQ(late.load(), 0u) << "values returned past their deadline; worst by "
                             << worst.load() / 1000 << " us";
  EXPECT_GT(checked.load(), 0u);
  std::printf("reads checked against a deadline %llu\n",
              static_cast<unsigned long long>(checked.load()));
  // Everything expires: once the longest ttl has passed, the owners hold nothing.
  std::this_thread::sleep_for(25ms);
  c.flush();
  EXPECT_EQ(c.size(), 0u);
}

// ---- loading -----------------------------------------------------------------------------------

// What a part-B loader throws (not a std::runtime_error, as warden's own errors are).
struct load_failed : std::exception {};

struct origin {
  u64 key = 0;
  bool loaded = false;  // made by a loader (else by a writer)
  u64 round = 0;
};

TYPED_TEST(CacheStress, LoadersRacingPutsAndErases) {
  watchdog dog("LoadersRacingPutsAndErases");
  const u64 seed = stress_seed();
  auto c = TestFixture::template make<u64, origin>();
  // Part A: rounds of 8 fresh keys. Loaders load them; the round's writer puts each once,
  // flushes and flags them. A flagged key must never again read as loaded: every load in
  // flight when the put landed is superseded, and no later load can start (no erases here).
  constexpr u64 kRoundKeys = 8;
  constexpr u64 kMaxRounds = 1 << 14;
  std::vector<std::atomic<bool>> flushed(kMaxRounds * kRoundKeys);
  std::atomic<u64> round{0};
  // Part B: 8 keys that writers put and erase at random while loaders (some failing) load.
  constexpr u64 kB = 1ull << 40;
  const auto end = steady::now() + run_time();
  std::atomic<bool> stop{false};
  std::atomic<u64> overwritten{0}, misplaced{0}, loads{0}, failures{0}, unexpected{0};
  std::vector<std::thread> threads;
  // Part A's writer.
  threads.emplace_back([&] {
    std::mt19937_64 rng(seed);
    while (steady::now() < end && round.load() + 1 < kMaxRounds) {
      const u64 r = round.load();
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
      for (u64 i = 0; i < kRoundKeys; ++i)
        c.put(r * kRoundKeys + i, origin{r * kRoundKeys + i, false, r});
      c.flush();
      for (u64 i = 0; i < kRoundKeys; ++i) flushed[r * kRoundKeys + i].store(true);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      round.store(r + 1);
    }
  });
  // Part A's loaders.
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 10 + static_cast<u64>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 r = round.load();
        const u64 key = r * kRoundKeys + rng() % kRoundKeys;
        const bool was_flushed = flushed[key].load();
        const auto pause = std::chrono::microseconds(rng() % 300);
        try {
          const origin v = c.get_or_load(key, [&](const u64& k) {
            loads.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::sleep_for(pause);
            return origin{k, true, r};
          });
          if (v.key != key) misplaced.fetch_add(1);
          // The put was visible before this call began: no load can have run for it since.
          if (was_flushed && v.loaded) overwritten.fetch_add(1);
          if (was_flushed) {
            if (const auto now = c.get(key); !now || now->loaded) overwritten.fetch_add(1);
          }
        } catch (...) {
          unexpected.fetch_add(1);
        }
      }
    });
  }
  // Part B's writers.
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 20 + static_cast<u64>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 key = kB + rng() % 8;
        if (rng() % 2) {
          c.put(key, origin{key, false, 0});
        } else {
          c.erase(key);
        }
        if (rng() % 4 == 0) c.flush();
        if (rng() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
      }
      c.flush();
    });
  }
  // Part B's loaders: one load in eight fails.
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + 30 + static_cast<u64>(t));
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 key = kB + rng() % 8;
        const bool fail = rng() % 8 == 0;
        const auto pause = std::chrono::microseconds(rng() % 150);
        try {
          const origin v = c.get_or_load(key, [&](const u64& k) -> origin {
            std::this_thread::sleep_for(pause);
            if (fail) throw load_failed();
            return origin{k, true, 0};
          });
          if (v.key != key) misplaced.fetch_add(1);
        } catch (const load_failed&) {
          failures.fetch_add(1, std::memory_order_relaxed);
        } catch (...) {
          unexpected.fetch_add(1);
        }
      }
    });
  }
  threads[0].join();  // the writer of part A runs until the deadline
  stop.store(true);
  for (std::size_t i = 1; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(misplaced.load(), 0u);
  EXPECT_EQ(unexpected.load(), 0u);
  EXPECT_EQ(overwritten.load(), 0u) << "a load overwrote a put flushed before it ended";
  EXPECT_GT(loads.load(), 0u);
  EXPECT_GT(round.load(), 2u);
  std::printf("rounds %llu, loads %llu, failed loads %llu\n",
              static_cast<unsigned long long>(round.load()),
              static_cast<unsigned long long>(loads.load()),
              static_cast<unsigned long long>(failures.load()));
  // Every load has ended: each flagged key still holds its writer's value.
  u64 lost = 0;
  for (u64 k = 0; k < round.load() * kRoundKeys; ++k) {
    if (!flushed[k].load()) continue;
    const auto v = c.get(k);
    if (!v || v->loaded || v->key != k) ++lost;
  }
  EXPECT_EQ(lost, 0u) << "puts overwritten by loads that were in flight when they landed";
  // The part-B keys still work after all the failures.
  EXPECT_EQ(c.get_or_load(kB + 100, [](const u64& k) { return origin{k, true, 0}; }).key, kB + 100);
}

// ---- the change feed ---------------------------------------------------------------------------

TYPED_TEST(CacheStress, SubscribersJoinAndLeaveWhileOwnersPublish) {
  watchdog dog("SubscribersJoinAndLeaveWhileOwnersPublish");
  const u64 seed = stress_seed();
  auto c = TestFixture::template make<u64, i64>();
  const auto end = steady::now() + run_time() / 2;
  std::atomic<bool> stop{false};
  std::atomic<u64> after_leaving{0}, gaps{0}, subscribed{0}, delivered{0}, errors{0};
  struct state {
    std::atomic<bool> left{false};
    std::atomic<i64> marker_seen{0};
    u64 marker_key = 0;
    u64 last_seq = 0;  // only the notifier touches it
  };
  std::atomic<u64> missed{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed + static_cast<u64>(w));
      i64 v = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const u64 key = rng() % 64;
        if (rng() % 16 == 0) {
          c.transact([&](auto& tx) {
            tx.put(key, ++v);
            tx.put((key + 1) % 64, v);
          });
        } else {
          c.put(key, ++v);
        }
        if (rng() % 32 == 0) c.flush();
      }
      c.flush();
    });
  }
  for (int s = 0; s < 3; ++s) {
    threads.emplace_back([&, s] {
      std::mt19937_64 rng(seed + 100 + static_cast<u64>(s));
      while (steady::now() < end) {
        auto st = std::make_shared<state>();
        st->marker_key = 1000 + static_cast<u64>(s);
        auto sub = c.subscribe([&, st](const warden::change_batch<u64, i64>& b) {
          if (st->left.load()) after_leaving.fetch_add(1);
          if (st->last_seq != 0 && b.sequence() != st->last_seq + 1) gaps.fetch_add(1);
          st->last_seq = b.sequence();
          for (const auto& ch : b) {
            if (ch.key == st->marker_key && ch.value) st->marker_seen.store(*ch.value);
          }
          delivered.fetch_add(1, std::memory_order_relaxed);
        });
        // A write published after subscribe() returned reaches the subscriber.
        const i64 marker = static_cast<i64>(subscribed.load()) + 1;
        c.put(st->marker_key, marker);
        c.flush();
        try {
          sub.sync();
        } catch (...) {
          errors.fetch_add(1);
        }
        if (st->marker_seen.load() != marker) missed.fetch_add(1);
        subscribed.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1000));
        if (rng() % 2) {
          try {
            sub.sync();
          } catch (...) {
            errors.fetch_add(1);
          }
        }
        if (rng() % 2) {
          sub.reset();
        } else {
          auto moved = std::move(sub);  // a moved subscription unsubscribes when it goes
        }
        st->left.store(true);
      }
    });
  }
  for (std::size_t i = 4; i < threads.size(); ++i) threads[i].join();
  stop.store(true);
  for (std::size_t i = 0; i < 4; ++i) threads[i].join();
  EXPECT_EQ(after_leaving.load(), 0u) << "a subscriber ran after its subscription was gone";
  EXPECT_EQ(gaps.load(), 0u) << "a subscriber missed a batch or got one out of order";
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(missed.load(), 0u) << "a write published after subscribe() returned was not delivered";
  EXPECT_GT(subscribed.load(), 3u);
  std::printf("subscriptions %llu, batches delivered %llu\n",
              static_cast<unsigned long long>(subscribed.load()),
              static_cast<unsigned long long>(delivered.load()));
  EXPECT_GT(delivered.load(), 0u);
}

TYPED_TEST(CacheStress, CacheDestroyedWithASubscriberDeliversEveryBatch) {
  watchdog dog("CacheDestroyedWithASubscriberDeliversEveryBatch");
  const u64 seed = stress_seed();
  const auto end = steady::now() + run_time() / 2;
  int rounds = 0;
  while (steady::now() < end || rounds < 3) {
    ++rounds;
    constexpr int kWriters = 4;
    constexpr u64 kKeysEach = 16;
    std::map<u64, i64> mirror;
    u64 last_seq = 0, gaps = 0;
    std::optional<warden::subscription> sub;
    std::vector<std::vector<i64>> last(kWriters, std::vector<i64>(kKeysEach, 0));
    {
      auto c = TestFixture::template make<u64, i64>();
      sub.emplace(c.subscribe([&](const warden::change_batch<u64, i64>& b) {
        if (last_seq != 0 && b.sequence() != last_seq + 1) ++gaps;
        last_seq = b.sequence();
        for (const auto& ch : b) {
          if (ch.cause == warden::change_cause::write) {
            mirror.insert_or_assign(ch.key, *ch.value);
          } else {
            mirror.erase(ch.key);
          }
        }
      }));
      const auto stop_at = steady::now() + 20ms;
      std::vector<std::thread> writers;
      for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
          std::mt19937_64 rng(seed + static_cast<u64>(rounds * 100 + w));
          auto& mine = last[static_cast<std::size_t>(w)];
          i64 v = 0;
          while (steady::now() < stop_at) {
            for (int i = 0; i < 32; ++i) {
              const u64 idx = rng() % kKeysEach;
              c.put(static_cast<u64>(w) * kKeysEach + idx, ++v);
              mine[idx] = v;
            }
            if (rng() % 4 == 0) c.flush();
          }
          // No final flush: the destructor drains what is queued.
        });
      }
      for (auto& t : writers) t.join();
    }  // destroyed with the subscriber attached
    sub->sync();  // the feed outlives the cache: returns, and every batch has been delivered
    std::map<u64, i64> want;
    for (int w = 0; w < kWriters; ++w) {
      for (u64 i = 0; i < kKeysEach; ++i) {
        const i64 v = last[static_cast<std::size_t>(w)][i];
        if (v != 0) want.emplace(static_cast<u64>(w) * kKeysEach + i, v);
      }
    }
    ASSERT_EQ(gaps, 0u) << "round " << rounds;
    ASSERT_EQ(mirror, want) << "round " << rounds << ": batches lost at destruction";
    sub.reset();
  }
  std::printf("rounds %d\n", rounds);
}

}  // namespace
}  // namespace warden_test
