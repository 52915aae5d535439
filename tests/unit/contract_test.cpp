// The contract suite: every row of the interface contract (shared/DESIGN.md, README "The one
// interface"), run on every backend in backends.hpp. Each test can fail if its promise breaks.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../support/backends.hpp"

namespace warden_test {
namespace {

template <class Maker>
class Contract : public ::testing::Test {
 protected:
  template <class K, class V>
  static auto make() {
    return Maker::template make<K, V>();
  }
};
TYPED_TEST_SUITE(Contract, all_backends, backend_names);

struct test_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

TYPED_TEST(Contract, SatisfiesTheCacheConcept) {
  using C = decltype(TestFixture::template make<std::uint64_t, std::int64_t>());
  using S = decltype(TestFixture::template make<std::string, std::string>());
  static_assert(warden::cache<C>);
  static_assert(warden::cache<S>);
  static_assert(!std::is_copy_constructible_v<C> && std::is_nothrow_move_constructible_v<C>);
  static_assert(std::is_same_v<typename C::key_type, std::uint64_t>);
  static_assert(std::is_same_v<typename C::mapped_type, std::int64_t>);
}

TYPED_TEST(Contract, MissingKeyReadsEmpty) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  EXPECT_EQ(c.get(7), std::nullopt);
  EXPECT_FALSE(c.contains(7));
  EXPECT_EQ(c.size(), 0u);
}

TYPED_TEST(Contract, PutOverwriteEraseAfterFlush) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  c.put(1, 10);
  c.put(2, 20);
  c.flush();
  EXPECT_EQ(c.get(1), 10);
  EXPECT_EQ(c.get(2), 20);
  EXPECT_TRUE(c.contains(1));
  EXPECT_EQ(c.size(), 2u);
  c.put(1, 11);
  c.erase(2);
  c.flush();
  EXPECT_EQ(c.get(1), 11);
  EXPECT_EQ(c.get(2), std::nullopt);
  EXPECT_FALSE(c.contains(2));
  EXPECT_EQ(c.size(), 1u);
  c.erase(99);  // erasing a missing key is a no-op
  c.flush();
  EXPECT_EQ(c.size(), 1u);
}

TYPED_TEST(Contract, StringKeysAndValues) {
  auto c = TestFixture::template make<std::string, std::string>();
  const std::string long_value(1000, 'x');
  c.put("alice", "admin");
  c.put("bob", long_value);
  c.flush();
  EXPECT_EQ(c.get("alice"), "admin");
  EXPECT_EQ(c.get("bob"), long_value);
  auto n = c.transact([](auto& tx) {
    tx.put("carol", *tx.get("alice") + "!");
    tx.erase("alice");
    return 1;
  });
  EXPECT_EQ(n, 1);
  EXPECT_EQ(c.get("carol"), "admin!");
  EXPECT_FALSE(c.contains("alice"));
}

TYPED_TEST(Contract, PerProducerFifoOnEachKey) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  constexpr int kProducers = 6;
  constexpr std::int64_t kWrites = 3000;
  std::atomic<bool> done{false};
  std::atomic<int> regressions{0};
  std::thread reader([&] {
    std::vector<std::int64_t> last(kProducers, -1);
    while (!done.load(std::memory_order_acquire)) {
      for (int p = 0; p < kProducers; ++p) {
        const auto v = c.get(static_cast<std::uint64_t>(p));
        if (!v) continue;
        if (*v < last[p]) regressions.fetch_add(1, std::memory_order_relaxed);
        last[p] = *v;
      }
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::int64_t i = 0; i < kWrites; ++i) c.put(static_cast<std::uint64_t>(p), i);
      c.flush();
      // read-your-writes: after flush this thread sees its last write.
      if (c.get(static_cast<std::uint64_t>(p)) != kWrites - 1) regressions.fetch_add(1000);
    });
  }
  for (auto& t : producers) t.join();
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(regressions.load(), 0);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(c.get(static_cast<std::uint64_t>(p)), kWrites - 1);
}

TYPED_TEST(Contract, NothingLostFromManyProducers) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  constexpr int kProducers = 8;
  constexpr std::uint64_t kKeys = 2000;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < kKeys; ++i) {
        const std::uint64_t key = static_cast<std::uint64_t>(p) * kKeys + i;
        c.put(key, static_cast<std::int64_t>(key * 3));
      }
      c.flush();
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_EQ(c.size(), kProducers * kKeys);
  for (std::uint64_t key = 0; key < kProducers * kKeys; ++key) {
    ASSERT_EQ(c.get(key), static_cast<std::int64_t>(key * 3)) << key;
  }
  const std::size_t seen = c.snapshot([](auto& view) {
    std::size_t n = 0;
    view.for_each([&](const std::uint64_t& k, const std::int64_t& v) {
      if (v == static_cast<std::int64_t>(k * 3)) ++n;
    });
    return n;
  });
  EXPECT_EQ(seen, kProducers * kKeys);
}

TYPED_TEST(Contract, CountersLoseNoIncrement) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  constexpr int kThreads = 6;
  constexpr int kIncrements = 500;
  std::vector<std::vector<std::int64_t>> returned(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIncrements; ++i) {
        returned[t].push_back(c.update_counter(42, 1));
        c.update_counter(1000 + static_cast<std::uint64_t>(i % 10), 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.get(42), kThreads * kIncrements);
  std::int64_t spread = 0;
  for (std::uint64_t k = 1000; k < 1010; ++k) spread += c.get(k).value_or(0);
  EXPECT_EQ(spread, 2 * kThreads * kIncrements);
  // Every increment returned a distinct new value: together exactly 1..N.
  std::vector<std::int64_t> all;
  for (auto& r : returned) all.insert(all.end(), r.begin(), r.end());
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(all.size());
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(all, expected);
  EXPECT_EQ(c.update_counter(77, -5), -5);  // a missing key counts from zero
}

TYPED_TEST(Contract, CallIsOrderedBehindTheCallersCasts) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  for (std::uint64_t k = 0; k < 200; ++k) c.put(k, 1);
  c.update_counter(5000, 1);  // no flush: the call alone must order the casts before it
  for (std::uint64_t k = 0; k < 200; ++k) ASSERT_EQ(c.get(k), 1) << k;
  for (std::uint64_t k = 0; k < 200; ++k) c.put(k, 2);
  const std::int64_t sum = c.transact([](auto& tx) {
    std::int64_t s = 0;
    for (std::uint64_t k = 0; k < 200; ++k) s += tx.get(k).value_or(0);
    return s;
  });
  EXPECT_EQ(sum, 400);
}

TYPED_TEST(Contract, TransactionSeesItsOwnWrites) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  c.put(1, 1);
  c.flush();
  c.transact([](auto& tx) {
    EXPECT_EQ(tx.get(1), 1);
    tx.put(1, 5);
    EXPECT_EQ(tx.get(1), 5);
    tx.erase(1);
    EXPECT_FALSE(tx.contains(1));
    EXPECT_EQ(tx.get(1), std::nullopt);
    tx.put(2, 7);
    EXPECT_TRUE(tx.contains(2));
  });
  EXPECT_EQ(c.get(1), std::nullopt);
  EXPECT_EQ(c.get(2), 7);
}

TYPED_TEST(Contract, ThrowingTransactionLeavesNoTrace) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  for (std::uint64_t k = 0; k < 50; ++k) c.put(k, 100);
  c.flush();
  EXPECT_THROW(c.transact([](auto& tx) -> int {
    for (std::uint64_t k = 0; k < 50; ++k) tx.put(k, 0);
    tx.put(999, 1);
    throw test_failure("abort the transfer");
  }),
               test_failure);
  for (std::uint64_t k = 0; k < 50; ++k) EXPECT_EQ(c.get(k), 100);
  EXPECT_FALSE(c.contains(999));
  // The owner survived and still serves.
  EXPECT_EQ(c.update_counter(1, 1), 101);
}

// A value whose copy throws once a countdown reaches zero (moves never throw).
struct fragile {
  static inline std::atomic<int> copies_until_throw{-1};
  std::int64_t v = 0;
  explicit fragile(std::int64_t x) : v(x) {}
  fragile(const fragile& o) : v(o.v) { maybe_throw(); }
  fragile& operator=(const fragile& o) {
    maybe_throw();
    v = o.v;
    return *this;
  }
  fragile(fragile&&) noexcept = default;
  fragile& operator=(fragile&&) noexcept = default;
  static void maybe_throw() {
    if (copies_until_throw.load() >= 0 && copies_until_throw.fetch_sub(1) == 0) {
      throw test_failure("copy failed");
    }
  }
};

TYPED_TEST(Contract, TransactionWhoseCopyThrowsIsAllOrNothing) {
  auto c = TestFixture::template make<std::uint64_t, fragile>();
  for (std::uint64_t k = 0; k < 6; ++k) c.put(k, fragile(0));
  c.flush();
  std::int64_t expected = 0;  // every key holds this value between transactions
  for (int fail_at = 0; fail_at < 40; ++fail_at) {
    fragile::copies_until_throw = fail_at;
    bool committed = false;
    try {
      c.transact([&](auto& tx) {
        for (std::uint64_t k = 0; k < 6; ++k) tx.put(k, fragile(expected + 1));
      });
      committed = true;
    } catch (const test_failure&) {
    }
    fragile::copies_until_throw = -1;
    if (committed) ++expected;
    const auto values = c.snapshot([](auto& view) {
      std::vector<std::int64_t> v;
      for (std::uint64_t k = 0; k < 6; ++k) v.push_back(view.get(k)->v);
      return v;
    });
    for (std::uint64_t k = 0; k < 6; ++k) {
      ASSERT_EQ(values[k], expected) << "fail_at=" << fail_at << " key=" << k;
    }
  }
  EXPECT_GT(expected, 0);   // some transactions got through,
  EXPECT_LT(expected, 40);  // and some were refused by a throwing copy
  EXPECT_EQ(c.size(), 6u);
}

TYPED_TEST(Contract, TransfersAreNeverSeenHalfDone) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  constexpr std::uint64_t kAccounts = 16;
  constexpr std::int64_t kInitial = 1000;
  for (std::uint64_t a = 0; a < kAccounts; ++a) c.put(a, kInitial);
  c.flush();
  std::atomic<bool> done{false};
  std::atomic<int> bad_audits{0};
  std::atomic<int> audits{0};
  std::vector<std::thread> auditors;
  for (int i = 0; i < 2; ++i) {
    auditors.emplace_back([&] {
      while (!done.load(std::memory_order_acquire)) {
        const std::int64_t total = c.snapshot([](auto& view) {
          std::int64_t t = 0;
          for (std::uint64_t a = 0; a < kAccounts; ++a) t += view.get(a).value_or(0);
          return t;
        });
        if (total != kAccounts * kInitial) bad_audits.fetch_add(1);
        audits.fetch_add(1);
        std::this_thread::yield();  // leave the CPU to the movers on a 2-core machine
      }
    });
  }
  std::vector<std::thread> movers;
  for (int m = 0; m < 3; ++m) {
    movers.emplace_back([&, m] {
      for (int i = 0; i < 200; ++i) {
        const std::uint64_t from = static_cast<std::uint64_t>(i * 7 + m) % kAccounts;
        const std::uint64_t to = static_cast<std::uint64_t>(i * 3 + m + 1) % kAccounts;
        c.transact([&](auto& tx) {
          const std::int64_t amount = 10;
          tx.put(from, *tx.get(from) - amount);
          tx.put(to, *tx.get(to) + amount);
        });
      }
    });
  }
  for (auto& t : movers) t.join();
  done.store(true, std::memory_order_release);
  for (auto& t : auditors) t.join();
  EXPECT_GT(audits.load(), 0);
  EXPECT_EQ(bad_audits.load(), 0);
}

TYPED_TEST(Contract, CallsFromInsideCallbacksAreRefusedNotDeadlocked) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  c.put(1, 1);
  c.flush();
  int refused = 0;
  c.transact([&](auto&) {
    try {
      c.flush();
    } catch (const warden::reentrancy_error&) {
      ++refused;
    }
    try {
      c.update_counter(1, 1);
    } catch (const warden::reentrancy_error&) {
      ++refused;
    }
    try {
      c.transact([](auto&) {});
    } catch (const warden::reentrancy_error&) {
      ++refused;
    }
  });
  EXPECT_EQ(refused, 3);
  refused = 0;
  c.snapshot([&](auto&) {
    try {
      c.flush();
    } catch (const warden::error&) {
      ++refused;
    }
    try {
      c.update_counter(1, 1);
    } catch (const warden::error&) {
      ++refused;
    }
    return 0;
  });
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(c.get(1), 1);  // nothing refused was applied
}

TYPED_TEST(Contract, MovedFromHandleReportsClosed) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  c.put(1, 1);
  auto d = std::move(c);
  d.flush();
  EXPECT_EQ(d.get(1), 1);
  // NOLINTBEGIN(bugprone-use-after-move): using a moved-from handle is the point.
  EXPECT_THROW(c.get(1), warden::closed_error);
  EXPECT_THROW(c.put(1, 2), warden::closed_error);
  EXPECT_THROW(c.flush(), warden::closed_error);
  EXPECT_THROW(c.update_counter(1, 1), warden::closed_error);
  EXPECT_THROW(c.transact([](auto&) {}), warden::closed_error);
  EXPECT_THROW(c.snapshot([](auto&) { return 0; }), warden::closed_error);
  // NOLINTEND(bugprone-use-after-move)
  c = std::move(d);  // a moved-from handle can be assigned again
  EXPECT_EQ(c.get(1), 1);
}

TYPED_TEST(Contract, TimedCallNotStartedByItsDeadlineIsCancelled) {
  auto c = TestFixture::template make<std::uint64_t, std::int64_t>();
  warden_test::owner_hold hold(c);
  std::atomic<bool> ran{false};
  EXPECT_THROW(c.transact_for(std::chrono::milliseconds(20),
                              [&](auto& tx) {
                                ran = true;
                                tx.put(1, 1);
                              }),
               warden::timeout_error);
  hold.release();
  c.flush();
  EXPECT_FALSE(ran.load());  // cancelled before it started: never ran, left no trace
  EXPECT_FALSE(c.contains(1));
  // With time to spare it runs like transact, and a later call still works.
  EXPECT_EQ(c.transact_for(std::chrono::seconds(30),
                           [](auto& tx) {
                             tx.put(2, 2);
                             return 7;
                           }),
            7);
  EXPECT_EQ(c.get(2), 2);
  EXPECT_EQ(c.update_counter(3, 1), 1);
}

// A value that records, per key, whether it was ever copied or moved on a thread other than
// the test's: only an owner does that, and only when it applies the cast.
struct drain_probe {
  static inline std::thread::id test_thread;
  static inline std::vector<std::atomic<int>>* touched = nullptr;
  std::uint64_t key = 0;
  explicit drain_probe(std::uint64_t k) : key(k) {}
  drain_probe(const drain_probe& o) : key(o.key) { note(); }
  drain_probe(drain_probe&& o) noexcept : key(o.key) { note(); }
  drain_probe& operator=(const drain_probe& o) {
    key = o.key;
    note();
    return *this;
  }
  drain_probe& operator=(drain_probe&& o) noexcept {
    key = o.key;
    note();
    return *this;
  }
  void note() const {
    if (std::this_thread::get_id() != test_thread) {
      (*touched)[key].fetch_add(1, std::memory_order_relaxed);
    }
  }
};

TYPED_TEST(Contract, DestructionDrainsAcceptedCasts) {
  constexpr std::uint64_t kCasts = 20000;
  std::vector<std::atomic<int>> touched(kCasts);
  drain_probe::touched = &touched;
  drain_probe::test_thread = std::this_thread::get_id();
  {
    auto c = TestFixture::template make<std::uint64_t, drain_probe>();
    for (std::uint64_t k = 0; k < kCasts; ++k) c.put(k, drain_probe(k));
    // No flush: the destructor runs while most casts are still queued.
  }
  std::uint64_t applied = 0;
  for (auto& t : touched) applied += t.load() > 0;
  EXPECT_EQ(applied, kCasts);
}

}  // namespace
}  // namespace warden_test
