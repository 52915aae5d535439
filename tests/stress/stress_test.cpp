// Stress tests: many threads (64+ on a 2-core machine), bounded in time, seeded with the seed
// printed, every invariant checked: nothing torn, nothing lost, counters exact, sums
// conserved, per-producer order kept. WARDEN_STRESS_SECONDS (default 1.5) bounds each phase;
// WARDEN_STRESS_SEED replays a run.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

double stress_seconds() {
  const char* s = std::getenv("WARDEN_STRESS_SECONDS");
  return s ? std::atof(s) : 1.5;
}

std::uint64_t stress_seed() {
  static const std::uint64_t seed = [] {
    const char* s = std::getenv("WARDEN_STRESS_SEED");
    const std::uint64_t v = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    std::printf("warden stress seed: %llu (replay with WARDEN_STRESS_SEED=%llu)\n",
                static_cast<unsigned long long>(v), static_cast<unsigned long long>(v));
    return v;
  }();
  return seed;
}

// A value a torn read would expose: the last word is a checksum of the others.
struct payload {
  std::array<std::uint64_t, 7> words{};
  std::uint64_t checksum = 0;
  static payload make(std::mt19937_64& rng) {
    payload p;
    for (auto& w : p.words) w = rng();
    p.checksum = p.sum();
    return p;
  }
  std::uint64_t sum() const {
    std::uint64_t s = 0x9e3779b97f4a7c15ull;
    for (auto w : words) s = (s ^ w) * 0x100000001b3ull;
    return s;
  }
  bool intact() const { return checksum == sum(); }
};

template <class Cache>
void torn_value_run(Cache& c) {
  const auto seed = stress_seed();
  constexpr int kWriters = 4;
  constexpr int kReaders = 28;
  constexpr std::uint64_t kKeys = 256;
  const auto deadline = clock_type::now() + std::chrono::duration<double>(stress_seconds());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0}, torn{0}, writes{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed + static_cast<std::uint64_t>(w));
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        c.put(rng() % kKeys, payload::make(rng));
        if (++n % 64 == 0) c.flush();
      }
      c.flush();
      writes.fetch_add(n);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(seed * 31 + static_cast<std::uint64_t>(r));
      std::uint64_t n = 0, bad = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (r % 7 == 0) {
          bad += c.snapshot([&](auto& view) {
            std::uint64_t b = 0;
            view.for_each([&](const std::uint64_t&, const payload& p) { b += !p.intact(); });
            return b;
          });
        } else if (auto p = c.get(rng() % kKeys)) {
          bad += !p->intact();
        }
        ++n;
      }
      reads.fetch_add(n);
      torn.fetch_add(bad);
    });
  }
  while (clock_type::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop.store(true);
  for (auto& t : threads) t.join();
  std::printf("torn-value run: %llu writes, %llu reads\n",
              static_cast<unsigned long long>(writes.load()),
              static_cast<unsigned long long>(reads.load()));
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
}

TEST(Stress, TableReadersNeverSeeTornValues) {
  warden::table<std::uint64_t, payload> t;
  torn_value_run(t);
}

TEST(Stress, ShardedTableReadersNeverSeeTornValues) {
  warden::table<std::uint64_t, payload> t({.shards = 16, .owners = 4});
  torn_value_run(t);
}

// One writer alternating bursts of flushed writes (which switch the owners' readers to
// fenced announcements) with pauses longer than the quiet gap (which switch them back), while
// readers check every value: the fence-mode switch must never let a reader into a copy the
// owner is writing.
TEST(Stress, TableReadersNeverSeeTornValuesAcrossFenceModeSwitches) {
  // Switch on timing alone, so that the test switches however loaded the machine is: every
  // second scan of a burst switches to fenced readers, every pause back to light ones.
  const auto saved = warden::detail::fence_policy_defaults;
  warden::detail::fence_policy_defaults = {.frequent_wait = std::chrono::seconds(10),
                                           .quick_waits = 2,
                                           .quiet_wait = std::chrono::milliseconds(1)};
  warden::table<std::uint64_t, payload> t({.shards = 4, .owners = 2});
  warden::detail::fence_policy_defaults = saved;
  const auto seed = stress_seed();
  constexpr int kReaders = 4;
  constexpr std::uint64_t kKeys = 64;
  const auto deadline = clock_type::now() + std::chrono::duration<double>(stress_seconds());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0}, torn{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(seed * 17 + static_cast<std::uint64_t>(r));
      std::uint64_t n = 0, bad = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (r % 4 == 0) {
          auto pin = t.pin();
          for (int i = 0; i < 8; ++i) {
            if (auto p = pin.get(rng() % kKeys)) bad += !p->intact();
          }
        } else if (auto p = t.get(rng() % kKeys)) {
          bad += !p->intact();
        }
        ++n;
      }
      reads.fetch_add(n);
      torn.fetch_add(bad);
    });
  }
  std::mt19937_64 rng(seed);
  std::uint64_t writes = 0;
  while (clock_type::now() < deadline) {
    for (int i = 0; i < 64; ++i) {
      t.put(rng() % kKeys, payload::make(rng));
      t.flush();
      ++writes;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(4));
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  std::printf("fence-mode run: %llu writes, %llu reads, %llu mode switches\n",
              static_cast<unsigned long long>(writes),
              static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(t.fence_mode_switches()));
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
#if defined(__linux__)
  EXPECT_GT(t.fence_mode_switches(), 2u) << "the test never switched fence modes";
#endif
}

TEST(Stress, ActorReadersNeverSeeTornValues) {
  warden::actor<std::uint64_t, payload> a;
  torn_value_run(a);
}

// 64 threads, each mixing every kind of operation. Keys:
//   [0, kAccounts)              accounts moved between by transactions (sum conserved)
//   kCounter + i                counters bumped by update_counter (totals exact)
//   kOwnBase + t*kOwnKeys + j   keys written only by thread t (checked against its model)
template <class Cache>
void mixed_run(Cache& c) {
  const auto seed = stress_seed();
  constexpr int kThreads = 64;
  constexpr std::uint64_t kAccounts = 32, kInitial = 1000;
  constexpr std::uint64_t kCounter = 1u << 20, kCounters = 8;
  constexpr std::uint64_t kOwnBase = 1u << 24, kOwnKeys = 64;
  for (std::uint64_t a = 0; a < kAccounts; ++a) c.put(a, kInitial);
  c.flush();
  const auto deadline = clock_type::now() + std::chrono::duration<double>(stress_seconds());
  std::atomic<bool> stop{false};
  std::array<std::atomic<std::uint64_t>, kCounters> bumps{};
  std::atomic<std::uint64_t> ops{0}, violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed ^ (0x5851f42d4c957f2dull * static_cast<std::uint64_t>(t + 1)));
      std::vector<std::int64_t> model(kOwnKeys, -1);  // -1: absent
      std::vector<std::uint64_t> seq(kOwnKeys, 0);
      const std::uint64_t own = kOwnBase + static_cast<std::uint64_t>(t) * kOwnKeys;
      std::uint64_t n = 0, bad = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned dice = static_cast<unsigned>(rng() % 100);
        const std::uint64_t j = rng() % kOwnKeys;
        if (dice < 40) {  // cast to an own key; values grow per key (FIFO check below)
          ++seq[j];
          c.put(own + j, seq[j]);
          model[j] = static_cast<std::int64_t>(seq[j]);
        } else if (dice < 45) {
          c.erase(own + j);
          model[j] = -1;
        } else if (dice < 60) {  // read an own key: never newer than the model, never a
                                 // value this thread did not write
          if (auto v = c.get(own + j)) bad += *v > seq[j];
        } else if (dice < 70) {
          const std::uint64_t k = rng() % kCounters;
          c.update_counter(kCounter + k, 1);
          bumps[k].fetch_add(1, std::memory_order_relaxed);
        } else if (dice < 80) {  // transfer between two accounts
          const std::uint64_t from = rng() % kAccounts, to = rng() % kAccounts;
          const std::uint64_t amount = rng() % 50;
          c.transact([&](auto& tx) {
            const std::uint64_t have = *tx.get(from);
            if (have < amount || from == to) return;
            tx.put(from, have - amount);
            tx.put(to, *tx.get(to) + amount);
          });
        } else if (dice < 90) {  // audit: the total never changes
          const std::uint64_t total = c.snapshot([&](auto& view) {
            std::uint64_t s = 0;
            for (std::uint64_t a = 0; a < kAccounts; ++a) s += view.get(a).value_or(0);
            return s;
          });
          bad += total != kAccounts * kInitial;
        } else {  // flush, then the own keys equal the model exactly
          c.flush();
          for (std::uint64_t i = 0; i < kOwnKeys; ++i) {
            const auto v = c.get(own + i);
            bad += model[i] < 0 ? v.has_value() : v != static_cast<std::uint64_t>(model[i]);
          }
        }
        ++n;
      }
      c.flush();
      for (std::uint64_t i = 0; i < kOwnKeys; ++i) {
        const auto v = c.get(own + i);
        bad += model[i] < 0 ? v.has_value() : v != static_cast<std::uint64_t>(model[i]);
      }
      ops.fetch_add(n);
      violations.fetch_add(bad);
    });
  }
  while (clock_type::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop.store(true);
  for (auto& t : threads) t.join();
  std::printf("mixed run: %llu operations from %d threads\n",
              static_cast<unsigned long long>(ops.load()), kThreads);
  EXPECT_EQ(violations.load(), 0u);
  for (std::uint64_t k = 0; k < kCounters; ++k) {
    EXPECT_EQ(c.get(kCounter + k).value_or(0), bumps[k].load()) << "counter " << k;
  }
  std::uint64_t total = 0;
  for (std::uint64_t a = 0; a < kAccounts; ++a) total += c.get(a).value_or(0);
  EXPECT_EQ(total, kAccounts * kInitial);
  EXPECT_GT(ops.load(), 0u);
}

TEST(Stress, TableMixedOperations) {
  warden::table<std::uint64_t, std::uint64_t> t;
  mixed_run(t);
}

TEST(Stress, ShardedTableMixedOperations) {
  warden::table<std::uint64_t, std::uint64_t> t({.shards = 16, .owners = 4});
  mixed_run(t);
}

TEST(Stress, BoundedShardedTableMixedOperations) {
  warden::table<std::uint64_t, std::uint64_t> t({.shards = 8, .owners = 2, .mailbox_capacity = 32});
  mixed_run(t);
}

TEST(Stress, ActorMixedOperations) {
  warden::actor<std::uint64_t, std::uint64_t> a({.mailbox_capacity = 64});
  mixed_run(a);
}

TEST(Stress, AnyCacheMixedOperations) {
  warden::any_cache<std::uint64_t, std::uint64_t> c =
      warden::table<std::uint64_t, std::uint64_t>({.shards = 4, .owners = 2});
  mixed_run(c);
}

}  // namespace
