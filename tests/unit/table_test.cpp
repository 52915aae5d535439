// Unit tests for what only warden::table has: option validation, pinned sections, the
// bounded mailbox, cast errors surfacing at flush, reader-record reuse, and multi-owner
// behaviour beyond the contract suite.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "../support/backends.hpp"

namespace {

using table = warden::table<std::uint64_t, std::uint64_t>;

void expect_invalid(const warden::table_options& o, const std::string& field) {
  try {
    table t(o);
    FAIL() << "options accepted: shards=" << o.shards << " owners=" << o.owners;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(TableOptions, InvalidOptionsNameTheFieldAndRule) {
  expect_invalid({.shards = 0}, "shards");
  expect_invalid({.shards = 3}, "shards");
  expect_invalid({.shards = 12}, "power of two");
  expect_invalid({.shards = 1u << 20}, "shards");
  expect_invalid({.shards = 4, .owners = 0}, "owners");
  expect_invalid({.shards = 4, .owners = 5}, "owners <= shards");
  expect_invalid({.shards = 128, .owners = 33}, "owners");
}

TEST(TableOptions, ValidEdgeOptionsWork) {
  for (warden::table_options o :
       {warden::table_options{.shards = 1, .owners = 1},
        warden::table_options{.shards = 64, .owners = 32},
        warden::table_options{.shards = 2, .owners = 2, .mailbox_capacity = 1}}) {
    table t(o);
    for (std::uint64_t k = 0; k < 300; ++k) t.put(k, k);
    t.flush();
    EXPECT_EQ(t.size(), 300u);
    EXPECT_EQ(t.get(299), 299u);
  }
}

TEST(Table, PinnedSectionReadsOneInstant) {
  table t;
  t.put(1, 1);
  t.flush();
  {
    auto pin = t.pin();
    EXPECT_EQ(pin.get(1), 1u);
    t.put(1, 2);  // a cast from inside a pin is fine: it does not wait
    t.put(2, 2);
    EXPECT_EQ(pin.get(1), 1u);  // the pin still sees its instant
    EXPECT_FALSE(pin.contains(2));
    EXPECT_THROW(t.flush(), warden::reentrancy_error);  // this thread would wait on itself
  }
  t.flush();
  EXPECT_EQ(t.get(1), 2u);
  EXPECT_EQ(t.get(2), 2u);
}

TEST(Table, PinDelaysOnlyTheOwnersNextWrite) {
  table t;
  t.put(1, 1);
  t.flush();  // published; the owner's next write must wait for readers of the old copy
  std::atomic<bool> flushed{false};
  std::thread writer;
  {
    auto pin = t.pin();
    writer = std::thread([&] {
      t.put(1, 2);
      t.flush();
      flushed.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(flushed.load());  // held back by the pin, as documented
    EXPECT_EQ(pin.get(1), 1u);
  }
  writer.join();  // and released once the pin closes
  EXPECT_TRUE(flushed.load());
  EXPECT_EQ(t.get(1), 2u);
}

TEST(Table, ReadSectionsNestUpToTheLimit) {
  table t;
  t.put(1, 1);
  t.flush();
  std::vector<std::unique_ptr<table::pinned>> pins;
  struct holder {
    explicit holder(const table& t) : p(t.pin()) {}
    table::pinned p;
  };
  std::vector<std::unique_ptr<holder>> held;
  for (unsigned i = 0; i < warden::detail::kPinWords; ++i) {
    held.push_back(std::make_unique<holder>(t));
  }
  EXPECT_THROW(t.pin(), warden::nesting_error);
  EXPECT_EQ(t.get(1), 1u);       // scoped reads have words of their own
  held.erase(held.begin() + 3);  // pins close in any order
  EXPECT_EQ(t.snapshot([](const auto& v) { return v.get(1); }), 1u);
  held.push_back(std::make_unique<holder>(t));
  while (!held.empty()) held.erase(held.begin());
  EXPECT_EQ(t.get(1), 1u);
}

TEST(Table, BoundedMailboxPushesBackAndTryRefuses) {
  table t({.shards = 1, .owners = 1, .mailbox_capacity = 4});
  warden_test::owner_hold hold(t);
  int accepted = 0;
  while (t.try_put(static_cast<std::uint64_t>(accepted), 1)) ++accepted;
  EXPECT_EQ(accepted, 4);
  EXPECT_FALSE(t.try_erase(0));
  std::atomic<bool> put_returned{false};
  std::thread pusher([&] {
    t.put(100, 1);  // waits for room
    put_returned.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(put_returned.load());
  hold.release();
  pusher.join();
  t.flush();
  EXPECT_EQ(t.size(), 5u);  // nothing accepted was dropped
}

TEST(Table, FullMailboxInsideSnapshotIsRefusedNotDeadlocked) {
  table t({.shards = 1, .owners = 1, .mailbox_capacity = 1});
  warden_test::owner_hold hold(t);
  ASSERT_TRUE(t.try_put(1, 1));
  t.snapshot([&](auto&) {
    EXPECT_THROW(t.put(2, 2), warden::reentrancy_error);
    return 0;
  });
  hold.release();
  t.flush();
  EXPECT_EQ(t.get(1), 1u);
  EXPECT_FALSE(t.contains(2));
}

struct copy_bomb {
  static inline std::atomic<bool> armed{false};
  std::uint64_t v = 0;
  bool explosive = false;
  copy_bomb() = default;
  copy_bomb(std::uint64_t x, bool e) : v(x), explosive(e) {}
  copy_bomb(copy_bomb&&) noexcept = default;
  copy_bomb& operator=(copy_bomb&&) noexcept = default;
  copy_bomb(const copy_bomb& o) : v(o.v), explosive(o.explosive) {
    if (explosive && armed.load()) throw std::runtime_error("copy failed");
  }
  copy_bomb& operator=(const copy_bomb& o) {
    if (o.explosive && armed.load()) throw std::runtime_error("copy failed");
    v = o.v;
    explosive = o.explosive;
    return *this;
  }
};

TEST(Table, FailedCastSurfacesAtTheSendersNextFlush) {
  warden::table<std::uint64_t, copy_bomb> t;
  copy_bomb::armed = true;
  t.put(1, copy_bomb(1, false));
  t.put(2, copy_bomb(2, true));  // moved in here; the owner's copy throws
  t.put(3, copy_bomb(3, false));
  std::thread([&] { EXPECT_NO_THROW(t.flush()); }).join();  // another thread's flush is clean
  try {
    t.flush();
    FAIL() << "the failed cast was not reported";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "copy failed");
  }
  EXPECT_NO_THROW(t.flush());  // reported once
  copy_bomb::armed = false;
  EXPECT_EQ(t.get(1)->v, 1u);
  EXPECT_FALSE(t.contains(2));  // the failed cast changed nothing
  EXPECT_EQ(t.get(3)->v, 3u);   // the rest of its batch applied
  EXPECT_EQ(t.size(), 2u);
}

TEST(Table, ThrowingHashReachesTheCallerAndQueuesNothing) {
  struct picky_hash {
    std::size_t operator()(std::uint64_t k) const {
      if (k == 13) throw std::domain_error("unlucky key");
      return absl::Hash<std::uint64_t>{}(k);
    }
  };
  warden::table<std::uint64_t, std::uint64_t, picky_hash> t;
  EXPECT_THROW(t.put(13, 1), std::domain_error);
  EXPECT_THROW(t.get(13), std::domain_error);
  t.put(12, 1);
  t.flush();
  EXPECT_EQ(t.size(), 1u);
}

TEST(Table, ShortLivedThreadsReuseReaderRecords) {
  table t;
  t.put(1, 1);
  t.flush();
  std::atomic<int> ok{0};
  for (int round = 0; round < 50; ++round) {  // 2000 threads, at most 40 alive at once
    std::vector<std::thread> threads;
    for (int i = 0; i < 40; ++i) {
      threads.emplace_back([&] {
        if (t.get(1) == 1u) ok.fetch_add(1);
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(ok.load(), 2000);
  // Records are bounded by the peak of live threads (plus this suite's other threads).
  EXPECT_LT(warden::detail::registry::instance().record_count(), 200u);
}

TEST(Table, CrossOwnerTransactionsDoNotDeadlockEachOther) {
  table t({.shards = 8, .owners = 4});
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 200; ++n) {
        t.transact([&](auto& tx) {
          for (std::uint64_t k = 0; k < 8; ++k) tx.put(k, tx.get(k).value_or(0) + 1);
        });
        t.put(100 + static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(n));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (std::uint64_t k = 0; k < 8; ++k) EXPECT_EQ(t.get(k), 800u);
}

TEST(Table, MoveAssignmentDrainsTheOldTable) {
  table a;
  table b;
  b.put(1, 1);
  a = std::move(b);  // the old `a` is drained and destroyed; `b`'s engine moves over
  a.flush();         // the pending cast travelled with the engine
  EXPECT_EQ(a.get(1), 1u);
}

// Messages are sized by what small ones carry: a value type far larger than a message slot
// travels on the heap, so an erase of a cache of 1 MiB values is a few dozen bytes and the
// mailbox's blocks do not grow with V (before, each block held 64 values inline: 64 MiB).
using mebibyte = std::array<char, 1 << 20>;
static_assert(
    sizeof(warden::detail::table_engine<std::uint64_t, mebibyte, absl::Hash<std::uint64_t>,
                                        std::equal_to<std::uint64_t>>::message) <= 64);
static_assert(
    sizeof(warden::detail::actor_engine<std::uint64_t, mebibyte, absl::Hash<std::uint64_t>,
                                        std::equal_to<std::uint64_t>>::message) <= 64);

template <class C>
void round_trip_large_values(C& c) {
  auto value = std::make_unique<mebibyte>();
  for (std::uint64_t k = 0; k < 16; ++k) {
    (*value)[0] = static_cast<char>('a' + k);
    (*value)[value->size() - 1] = static_cast<char>('A' + k);
    c.put(k, *value);
  }
  c.erase(3);
  c.flush();
  EXPECT_EQ(c.size(), 15u);
  for (std::uint64_t k = 0; k < 16; ++k) {
    const bool found = c.visit(k, [&](const mebibyte& v) {
      EXPECT_EQ(v[0], static_cast<char>('a' + k));
      EXPECT_EQ(v[v.size() - 1], static_cast<char>('A' + k));
    });
    EXPECT_EQ(found, k != 3) << k;
  }
}

TEST(LargeValues, TableCarriesThemOnTheHeap) {
  warden::table<std::uint64_t, mebibyte> t;
  round_trip_large_values(t);
}

TEST(LargeValues, ActorCarriesThemOnTheHeap) {
  warden::actor<std::uint64_t, mebibyte> a;
  round_trip_large_values(a);
}

}  // namespace
