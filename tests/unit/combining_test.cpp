// Combining (owner_loop.hpp): a call that finds its owner parked runs the owner's cycle on the
// calling thread. These tests check that it does, that the owner's timed work survives a
// borrowed cycle, and that borrowed and owner-run cycles never lose or repeat a write.
#include "cache_support.hpp"

namespace warden_test {
namespace {

template <class Maker>
class Combining : public CacheContract<Maker> {};
using combining_backends = ::testing::Types<table_default, table_sharded, actor_default,
                                            table_pooled, actor_pooled, erased<table_default>>;
TYPED_TEST_SUITE(Combining, combining_backends, backend_names);

// The thread an increment of `key` by update() ran on (not inlined: GCC 12 then warns of a
// maybe-uninitialized optional deep inside the nested calls below).
template <class C>
[[gnu::noinline]] std::thread::id update_thread(C& c, u64 key) {
  std::thread::id ran_on;
  c.update(key, [&](const std::optional<i64>& v) -> std::optional<i64> {
    ran_on = std::this_thread::get_id();
    return v.value_or(0) + 1;
  });
  return ran_on;
}

template <class C>
bool update_ran_here(C& c) {
  return update_thread(c, 1) == std::this_thread::get_id();
}

TYPED_TEST(Combining, ACallOnAParkedOwnerRunsOnTheCallingThread) {
  auto c = TestFixture::template make<u64, i64>();
  c.put(1, 0);
  c.flush();
  // The owner parks after a short spin once nothing arrives; a slow (sanitized, loaded) run
  // may need a few tries before a call finds it asleep.
  bool combined = false;
  int calls = 0;
  for (; calls < 200 && !combined; ++calls) {
    std::this_thread::sleep_for(20ms);
    combined = update_ran_here(c);
  }
  EXPECT_TRUE(combined) << "no call ran its parked owner's cycle in " << calls << " tries";
  EXPECT_EQ(c.get(1), calls);
}

// A transaction is a barrier across owners; with one owner it is a call like the others.
TYPED_TEST(Combining, ATransactionOnAParkedSingleOwnerRunsOnTheCallingThread) {
  auto c = TestFixture::template make<u64, i64>();
  c.put(1, 0);
  c.flush();
  const bool one_owner = TypeParam::owners == 1;
  bool combined = false;
  int tries = 0;
  for (; tries < (one_owner ? 200 : 10) && !combined; ++tries) {
    std::this_thread::sleep_for(20ms);
    const std::thread::id ran_on = c.transact([&](auto& tx) {
      tx.put(1, tx.get(1).value_or(0) + 1);
      return std::this_thread::get_id();
    });
    combined = ran_on == std::this_thread::get_id();
  }
  EXPECT_EQ(combined, one_owner) << tries << " tries";
  EXPECT_EQ(c.get(1), tries);
}

TYPED_TEST(Combining, ACallbackOfAnotherCachesOwnerDoesNotRunThisOwnersCycle) {
  auto outer = TestFixture::template make<u64, i64>();
  auto inner = TestFixture::template make<u64, i64>();
  if (TypeParam::name == std::string_view("table_on_a_pool") ||
      TypeParam::name == std::string_view("actor_on_a_pool")) {
    GTEST_SKIP() << "calls from a pooled owner's callback to the same pool are refused";
  }
  inner.put(1, 0);
  inner.flush();
  bool inner_ran_on_outer_thread = false;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(20ms);
    outer.update(5, [&](const std::optional<i64>& v) -> std::optional<i64> {
      // On outer's owner (or a caller running its cycle): inner's owner is parked by now.
      if (update_thread(inner, 1) == std::this_thread::get_id()) inner_ran_on_outer_thread = true;
      return v.value_or(0) + 1;
    });
  }
  EXPECT_FALSE(inner_ran_on_outer_thread);
  EXPECT_EQ(inner.get(1), 20);
  EXPECT_EQ(outer.get(5), 20);
}

// A borrowed cycle that makes the owner's next deadline sooner (a new entry that expires)
// hands it over: the owner wakes for it with no further call.
TYPED_TEST(Combining, ExpiryAfterABorrowedCycleRunsWithoutAnotherCall) {
  auto c = TestFixture::template make<u64, i64>({.expire_after_write = 50ms, .record_stats = true});
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(30ms);  // parked, with nothing timed to do
    ASSERT_TRUE(c.insert_new(100 + static_cast<u64>(round), 1));
    ASSERT_TRUE(wait_until([&] { return c.stats().expirations == static_cast<u64>(round) + 1; }))
        << "round " << round;
  }
}

// Calls that find owners parked (and casts between them) from many threads: every increment
// lands exactly once, whichever thread ran the cycle that applied it.
TYPED_TEST(Combining, SparseCallsFromManyThreadsLoseNothing) {
  auto c = TestFixture::template make<u64, i64>();
  constexpr int kThreads = 8;
  const int rounds = scaled(150);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        c.update_counter(static_cast<u64>(i % 4), 1);
        c.put(1000 + static_cast<u64>(t), i);
        if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200 * (t + 1)));
      }
      c.flush();
    });
  }
  for (auto& t : threads) t.join();
  i64 total = 0;
  for (u64 k = 0; k < 4; ++k) total += c.get(k).value_or(0);
  EXPECT_EQ(total, static_cast<i64>(kThreads) * rounds);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(c.get(1000 + static_cast<u64>(t)), rounds - 1);
}

// An actor promises that calls in flight complete when its destruction begins. A call that
// finds its owner parked touches the actor after its reply may be on its way (it runs the
// owner's cycle, or wakes it), so destruction must wait for it to leave (linger_count).
template <class Maker>
class ActorCombining : public CacheContract<Maker> {};
using actor_backends = ::testing::Types<actor_default, actor_pooled>;
TYPED_TEST_SUITE(ActorCombining, actor_backends, backend_names);

TYPED_TEST(ActorCombining, DestructionWaitsForACallInFlight) {
  const int rounds = scaled(20);
  for (int round = 0; round < rounds; ++round) {
    auto c = std::make_optional(TestFixture::template make<u64, i64>());
    c->put(1, 0);
    c->flush();
    std::this_thread::sleep_for(5ms);  // the owner parks
    std::atomic<bool> running{false};
    std::optional<i64> seen;
    std::thread caller([&, &cache = *c] {
      seen = cache.update(1, [&](const std::optional<i64>& v) -> std::optional<i64> {
        running.store(true);
        std::this_thread::sleep_for(1ms);
        return v.value_or(0) + 1;
      });
    });
    while (!running.load()) std::this_thread::yield();
    c.reset();  // the call is still running
    caller.join();
    EXPECT_EQ(seen, std::optional<i64>(1)) << "round " << round;
  }
}

}  // namespace
}  // namespace warden_test
