// Timed calls: transact_for cancels cleanly when no owner has started it by its deadline (on a
// table with three owners, all held inside a long transaction; and on the actor), leaving no
// trace and the owners serving; a transaction already started when its deadline passes
// completes, and its caller waits for it and gets its result, including one that only some of
// a table's owners had started while another was blocked.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "../support/backends.hpp"
#include "fault_types.hpp"

namespace warden_faults {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// The identity, a weak hash on purpose: the table mixes it before choosing a shard.
struct shard_hash {
  std::size_t operator()(std::uint64_t k) const { return static_cast<std::size_t>(k); }
};

using table3 = warden::table<std::uint64_t, std::uint64_t, shard_hash>;

// A configuration from the shared list's timeout subset, over uint64 keys and values hashed
// by the identity.
template <class Maker>
struct timeout_backend {
  static constexpr const char* name = Maker::name;
  static auto make() { return Maker::template make<std::uint64_t, std::uint64_t, shard_hash>(); }
};

template <class Maker>
class Timeouts : public ::testing::Test {};
using makers = warden_test::adapt<timeout_backend, warden_test::timeout_backends>::type;
TYPED_TEST_SUITE(Timeouts, makers, warden_test::backend_names);

TYPED_TEST(Timeouts, CancelledCleanlyWhileEveryOwnerIsBlocked) {
  watchdog dog(std::string("timeouts ") + TypeParam::name, 60s);
  auto c = TypeParam::make();
  std::latch busy(1), release(1);
  std::thread holder([&] {
    c.transact([&](auto& tx) {
      busy.count_down();
      release.wait();
      tx.put(100, 1);
    });
  });
  busy.wait();

  std::atomic<int> ran{0}, timed_out{0}, other{0};
  auto attempt = [&](std::uint64_t key) {
    const auto start = clock_type::now();
    try {
      c.transact_for(20ms, [&](auto& tx) {
        ran.fetch_add(1);
        tx.put(key, 1);
        return 1;
      });
      other.fetch_add(1);
    } catch (const warden::timeout_error&) {
      timed_out.fetch_add(1);
      // It gave up at its deadline, not when the owners came free.
      if (clock_type::now() - start > 10s) other.fetch_add(1);
    }
  };
  for (std::uint64_t i = 0; i < 10; ++i) attempt(200 + i);
  std::vector<std::thread> callers;
  for (std::uint64_t t = 0; t < 3; ++t) {
    callers.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < 5; ++i) attempt(300 + 10 * t + i);
    });
  }
  for (auto& t : callers) t.join();
  c.put(400, 4);  // a cast queued behind the cancelled calls
  EXPECT_EQ(timed_out.load(), 25);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ran.load(), 0);

  release.count_down();  // the owners now meet the cancelled calls and drop them
  holder.join();
  c.flush();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(c.get(100), 1u);
  EXPECT_EQ(c.get(400), 4u);
  for (std::uint64_t k = 200; k < 340; ++k) EXPECT_FALSE(c.contains(k)) << k;
  EXPECT_EQ(c.size(), 2u);
  // The owners still serve, timed calls included.
  EXPECT_EQ(c.transact_for(10s,
                           [](auto& tx) {
                             tx.put(500, 5);
                             return tx.get(400).value_or(0);
                           }),
            4u);
  EXPECT_EQ(c.get(500), 5u);
  EXPECT_EQ(c.update_counter(600, 2), 2u);
}

TYPED_TEST(Timeouts, StartedBeforeTheDeadlineCompletesAfterIt) {
  watchdog dog(std::string("timeouts ") + TypeParam::name, 60s);
  auto c = TypeParam::make();
  std::atomic<bool> started{false}, release{false}, timed_out{false};
  std::optional<std::uint64_t> result;
  const auto call_start = clock_type::now();
  std::thread caller([&] {
    try {
      result = c.transact_for(500ms, [&](auto& tx) {
        started = true;
        while (!release.load()) std::this_thread::sleep_for(1ms);  // held past the deadline
        tx.put(1, 11);
        return std::uint64_t{42};
      });
    } catch (const warden::timeout_error&) {
      timed_out = true;
    }
  });
  while (!started.load() && !timed_out.load()) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(started.load()) << "the owner did not start the call within 500 ms";
  std::this_thread::sleep_until(call_start + 600ms);  // the deadline has passed
  release = true;
  caller.join();
  EXPECT_FALSE(timed_out.load());
  EXPECT_EQ(result, 42u);
  EXPECT_EQ(c.get(1), 11u);
}

// Two owners start the transaction at once; the owner of key 0 is held back by a reader's pin
// (its next write must wait for the reader to leave the copy). The deadline passes while the
// transaction waits for that owner at its barrier: it must not be cancelled half-started, so
// the caller waits, and gets the result once the pin is released.
TEST(TableTimeouts, StartedByTwoOwnersWaitsForTheThird) {
  watchdog dog("timeouts table_3owners partial", 60s);
  table3 t({.shards = 4, .owners = 3});
  t.put(0, 1);
  t.flush();  // key 0's owner published: its idle copy is now the one readers left
  std::atomic<bool> done{false}, timed_out{false};
  std::optional<std::uint64_t> result;
  std::optional<std::thread> caller;
  {
    auto pin = t.pin();
    t.put(0, 2);  // key 0's owner takes this and waits for the pin to close
    std::this_thread::sleep_for(20ms);
    caller.emplace([&] {
      try {
        result = t.transact_for(250ms, [](auto& tx) {
          const std::uint64_t v = tx.get(0).value_or(0);
          tx.put(1, v + 40);
          return std::uint64_t{42};
        });
      } catch (const warden::timeout_error&) {
        timed_out = true;
      }
      done = true;
    });
    std::this_thread::sleep_for(750ms);
    EXPECT_FALSE(done.load()) << "the caller did not wait for the started transaction";
    EXPECT_EQ(pin.get(1), std::nullopt);  // nothing of it is visible yet
  }
  caller->join();
  EXPECT_FALSE(timed_out.load());
  EXPECT_EQ(result, 42u);
  EXPECT_EQ(t.get(0), 2u);
  EXPECT_EQ(t.get(1), 42u);
}

}  // namespace
}  // namespace warden_faults
