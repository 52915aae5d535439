// Unit tests of the eviction policy's parts, driven directly and single-threaded as an owner
// drives them: the frequency sketch (counting, saturation, halving, weak hashes) and the
// W-TinyLFU policy (the bound, the admission window's guarantee, scan resistance, adaptation,
// tiny maximums, node reuse, hash-flood jitter, determinism).
#include <cstddef>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

#include <warden/detail/frequency_sketch.hpp>
#include <warden/detail/wtinylfu.hpp>

namespace {

using warden::detail::frequency_sketch;
using warden::detail::wtinylfu;

// ---- frequency_sketch ---------------------------------------------------------------------

TEST(FrequencySketch, UnseenKeysAreZero) {
  frequency_sketch sketch(1000);
  for (std::uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(sketch.frequency(k), 0);
}

TEST(FrequencySketch, CountsIncrements) {
  frequency_sketch sketch(1000);
  for (int i = 1; i <= 15; ++i) {
    sketch.increment(42);
    EXPECT_EQ(sketch.frequency(42), i);
  }
  EXPECT_EQ(sketch.frequency(43), 0);
}

TEST(FrequencySketch, SaturatesAtFifteen) {
  frequency_sketch sketch(1000);
  for (int i = 0; i < 100; ++i) sketch.increment(7);
  EXPECT_EQ(sketch.frequency(7), 15);
}

TEST(FrequencySketch, HalvesAfterSampleSizeIncrements) {
  frequency_sketch sketch(256);
  ASSERT_EQ(sketch.sample_size(), 2560u);
  for (int i = 0; i < 10; ++i) sketch.increment(1'000'000);
  // Distinct keys always raise some counter, so each one counts towards the sample.
  std::uint64_t key = 0;
  for (std::size_t i = 10; i + 1 < sketch.sample_size(); ++i) sketch.increment(key++);
  // By now ~2.5 increments landed on every counter, so collisions may have added a little.
  const int before = sketch.frequency(1'000'000);
  EXPECT_GE(before, 10);
  EXPECT_LE(before, 12);
  sketch.increment(key++);  // the sample_size()-th counted increment halves every counter
  EXPECT_EQ(sketch.frequency(1'000'000), before / 2);
}

TEST(FrequencySketch, OnlyUnsaturatedIncrementsAgeTheSketch) {
  frequency_sketch sketch(256);
  for (int i = 0; i < 15; ++i) sketch.increment(5);
  // A flood of one saturated key changes no counter, so it must not trigger a halving.
  for (std::size_t i = 0; i < 2 * sketch.sample_size(); ++i) sketch.increment(5);
  EXPECT_EQ(sketch.frequency(5), 15);
}

TEST(FrequencySketch, IdentityHashesStaySeparate) {
  // Small consecutive integers are the weakest hashes a caller can pass.
  frequency_sketch sketch(1000);
  for (std::uint64_t k = 0; k < 500; ++k) sketch.increment(k);
  for (int i = 0; i < 10; ++i) sketch.increment(5000);
  EXPECT_EQ(sketch.frequency(5000), 10);
  int total = 0;
  for (std::uint64_t k = 0; k < 500; ++k) total += sketch.frequency(k);
  EXPECT_LE(total, 500 + 25);  // count-min overestimates only through rare collisions
  EXPECT_GE(total, 500);
}

// ---- wtinylfu -----------------------------------------------------------------------------

// A cache's owner in miniature: keys map to reused node indices, as in the real arena.
class owner_model {
 public:
  explicit owner_model(std::size_t maximum) : policy(maximum) {}

  // One access of `key` (its own hash): a hit, or a miss that inserts. Returns true on a hit.
  bool access(std::uint64_t key) {
    const auto it = node_of.find(key);
    if (it != node_of.end()) {
      policy.record_hit(it->second);
      return true;
    }
    policy.record_miss(key);
    insert(key);
    return false;
  }

  // Inserts `key` (absent) and evicts; records what was evicted.
  std::uint32_t insert(std::uint64_t key) {
    std::uint32_t node;
    if (free_nodes.empty()) {
      node = static_cast<std::uint32_t>(key_of.size());
      key_of.push_back(key);
    } else {
      node = free_nodes.back();
      free_nodes.pop_back();
      key_of[node] = key;
    }
    node_of[key] = node;
    policy.add(node, key);
    last_evicted.clear();
    policy.evict_excess([&](std::uint32_t victim) {
      EXPECT_TRUE(node_of.count(key_of[victim])) << "evicted an untracked node " << victim;
      node_of.erase(key_of[victim]);
      free_nodes.push_back(victim);
      last_evicted.push_back(victim);
      evictions.push_back(key_of[victim]);
    });
    return node;
  }

  void erase(std::uint64_t key) {
    const auto it = node_of.find(key);
    if (it == node_of.end()) return;
    policy.remove(it->second);
    free_nodes.push_back(it->second);
    node_of.erase(it);
  }

  bool present(std::uint64_t key) const { return node_of.count(key) != 0; }

  wtinylfu policy;
  std::unordered_map<std::uint64_t, std::uint32_t> node_of;
  std::vector<std::uint64_t> key_of;
  std::vector<std::uint32_t> free_nodes;
  std::vector<std::uint32_t> last_evicted;
  std::vector<std::uint64_t> evictions;
};

// A skewed workload: mostly a hot set, some cold keys, and erases.
void skewed_workload(owner_model& m, std::size_t steps, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < steps; ++i) {
    const std::uint64_t r = rng();
    const std::uint64_t key = (r % 4 != 0) ? r % 64 : 1000 + r % 5000;
    if (r % 97 == 0) {
      m.erase(key);
    } else {
      m.access(key);
    }
    ASSERT_LE(m.policy.size(), m.policy.maximum());
    ASSERT_EQ(m.policy.size(), m.node_of.size());
  }
}

TEST(WTinyLfu, BoundHoldsAfterEveryEvict) {
  for (std::size_t maximum : {1u, 2u, 3u, 5u, 17u, 100u, 1000u}) {
    SCOPED_TRACE(maximum);
    owner_model m(maximum);
    skewed_workload(m, 20'000, maximum);
    EXPECT_GE(m.policy.window_maximum(), 1u);
    EXPECT_LE(m.policy.window_size(), m.policy.size());
  }
}

TEST(WTinyLfu, JustAddedNodeIsNeverEvicted) {
  for (std::size_t maximum : {1u, 2u, 3u, 4u, 10u, 64u, 500u}) {
    SCOPED_TRACE(maximum);
    owner_model m(maximum);
    std::mt19937_64 rng(maximum);
    for (int i = 0; i < 20'000; ++i) {
      const std::uint64_t key = rng() % (3 * maximum + 10);
      if (m.present(key)) {
        m.policy.record_hit(m.node_of[key]);
        continue;
      }
      const std::uint32_t node = m.insert(key);
      for (std::uint32_t victim : m.last_evicted) ASSERT_NE(victim, node);
      ASSERT_TRUE(m.present(key));
    }
  }
}

TEST(WTinyLfu, FrequentEntriesSurviveAScan) {
  constexpr std::size_t kMaximum = 100;
  owner_model m(kMaximum);
  // 50 hot keys, each seen several times.
  for (int round = 0; round < 8; ++round) {
    for (std::uint64_t k = 0; k < 50; ++k) m.access(k);
  }
  // A scan of one-hit keys, 20 x maximum long: LRU would keep none of the hot keys.
  for (std::uint64_t k = 0; k < 20 * kMaximum; ++k) m.access(1'000'000 + k);
  int survivors = 0;
  for (std::uint64_t k = 0; k < 50; ++k) survivors += m.present(k) ? 1 : 0;
  EXPECT_GE(survivors, 45);
  EXPECT_LE(m.policy.size(), kMaximum);
}

TEST(WTinyLfu, MaximumOneKeepsTheNewestEntry) {
  owner_model m(1);
  EXPECT_EQ(m.policy.window_maximum(), 1u);
  for (std::uint64_t k = 0; k < 100; ++k) {
    m.access(k);
    EXPECT_TRUE(m.present(k));
    EXPECT_EQ(m.policy.size(), 1u);
    if (k > 0) {
      ASSERT_EQ(m.evictions.size(), k);
      EXPECT_EQ(m.evictions.back(), k - 1);
    }
  }
}

TEST(WTinyLfu, TinyMaximums) {
  for (std::size_t maximum : {2u, 3u}) {
    SCOPED_TRACE(maximum);
    owner_model m(maximum);
    // A key seen often stays while one-hit keys come and go.
    for (int i = 0; i < 10; ++i) m.access(999);
    for (std::uint64_t k = 0; k < 1000; ++k) {
      m.access(k);
      m.access(999);
      EXPECT_TRUE(m.present(k));
      EXPECT_LE(m.policy.size(), maximum);
      EXPECT_GE(m.policy.window_maximum(), 1u);
      EXPECT_LT(m.policy.window_maximum(), maximum);  // the main space keeps one entry
    }
    EXPECT_TRUE(m.present(999));
  }
}

TEST(WTinyLfu, ZeroMaximumActsAsOne) {
  wtinylfu policy(0);
  EXPECT_EQ(policy.maximum(), 1u);
}

TEST(WTinyLfu, RemoveThenReuseNodeIndices) {
  wtinylfu policy(10);
  std::vector<std::uint32_t> evicted;
  auto evict = [&](std::uint32_t n) { evicted.push_back(n); };
  for (std::uint32_t n = 0; n < 10; ++n) {
    policy.add(n, 100 + n);
    policy.evict_excess(evict);
  }
  EXPECT_EQ(policy.size(), 10u);
  EXPECT_TRUE(evicted.empty());
  policy.remove(3);
  policy.remove(5);
  policy.remove(5);      // removing twice is harmless
  policy.remove(12345);  // as is removing a node never added
  policy.record_hit(5);  // and touching a removed one
  EXPECT_EQ(policy.size(), 8u);
  policy.add(5, 777);  // node 5 comes back as another key
  policy.record_hit(5);
  policy.record_hit(5);
  policy.add(3, 778);
  policy.evict_excess(evict);
  EXPECT_EQ(policy.size(), 10u);
  EXPECT_TRUE(evicted.empty());
  policy.add(40, 900);  // a sparse index grows the vectors
  policy.evict_excess(evict);
  EXPECT_EQ(policy.size(), 10u);
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_NE(evicted[0], 40u);
  for (std::uint32_t n : evicted) policy.remove(n);  // already gone: a no-op
  EXPECT_EQ(policy.size(), 10u);
}

TEST(WTinyLfu, IsDeterministic) {
  owner_model a(200), b(200);
  skewed_workload(a, 50'000, 7);
  skewed_workload(b, 50'000, 7);
  EXPECT_EQ(a.evictions, b.evictions);
  EXPECT_EQ(a.policy.window_maximum(), b.policy.window_maximum());
  EXPECT_EQ(a.policy.protected_size(), b.policy.protected_size());
}

TEST(WTinyLfu, WindowGrowsForARecencyWorkload) {
  // Sweeping back and forth over 1.5 x maximum keys: what was just read is read next, so
  // plain LRU is optimal and the window should take over most of the cache.
  constexpr std::uint64_t kMaximum = 500;
  owner_model m(kMaximum);
  std::size_t hits = 0, requests = 0;
  for (int sweep = 0; sweep < 40; ++sweep) {
    for (std::uint64_t i = 0; i < 3 * kMaximum / 2; ++i) {
      const std::uint64_t k = sweep % 2 == 0 ? i : 3 * kMaximum / 2 - 1 - i;
      hits += m.access(k) ? 1 : 0;
      ++requests;
    }
  }
  EXPECT_GT(m.policy.window_maximum(), kMaximum / 4);
  // LRU gets maximum - 1 hits per sweep after the first: within a couple of points of it.
  const double lru = 39.0 * (kMaximum - 1) / static_cast<double>(requests);
  EXPECT_GT(static_cast<double>(hits) / static_cast<double>(requests), lru - 0.02);
}

TEST(WTinyLfu, WindowStaysSmallForALoop) {
  // A loop over more keys than fit: LRU gets nothing, W-TinyLFU keeps a stable subset.
  constexpr std::uint64_t kMaximum = 500;
  owner_model m(kMaximum);
  std::size_t hits = 0, requests = 0;
  for (int round = 0; round < 60; ++round) {
    for (std::uint64_t k = 0; k < 2 * kMaximum; ++k) {
      hits += m.access(k) ? 1 : 0;
      ++requests;
    }
  }
  EXPECT_LT(m.policy.window_maximum(), kMaximum / 10);
  EXPECT_GT(static_cast<double>(hits) / static_cast<double>(requests), 0.4);  // OPT: 0.5
}

TEST(WTinyLfu, HashFloodCannotPinAVictim) {
  // Hot residents the sketch rates 15; warm candidates (7) lose every duel but the jitter
  // admits one about every 128 tries, so a flood of colliding keys cannot lock the cache.
  constexpr std::size_t kMaximum = 10;
  owner_model m(kMaximum);
  for (int round = 0; round < 20; ++round) {
    for (std::uint64_t k = 0; k < kMaximum; ++k) m.access(k);
  }
  const std::size_t before = m.evictions.size();
  std::size_t hot_evicted = 0;
  for (std::uint64_t k = 100; k < 100 + 2000; ++k) {
    for (int i = 0; i < 6; ++i) m.policy.record_miss(k);
    m.access(k);
    // Refresh the hot keys so the sketch's aging never lets a candidate win fairly.
    for (std::uint64_t h = 0; h < kMaximum; ++h) {
      if (m.present(h)) m.access(h);
    }
  }
  for (std::size_t i = before; i < m.evictions.size(); ++i) {
    hot_evicted += m.evictions[i] < kMaximum ? 1 : 0;
  }
  EXPECT_GE(hot_evicted, 2u);
  EXPECT_LE(hot_evicted, 100u);
}

}  // namespace
