// Read sections and per-thread state at their corners: pins closed out of order or on other
// threads, warden used from thread_local destructors, fence modes that must end on time,
// membarrier() failing at run time, a table destroyed by a thread that still holds a pin, and
// the other defects the core's code read found (each test failed before its fix).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "../support/backends.hpp"

namespace warden_test {
namespace {

using namespace std::chrono_literals;
using table = warden::table<std::uint64_t, std::uint64_t>;

// A pin on the heap (pins are immovable: built in place).
struct heap_pin {
  explicit heap_pin(const table& t) : p(t.pin()) {}
  table::pinned p;
};

// Waits up to `limit` for `done()`; false if it never came.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Was: closing pin A before pin B cleared B's announcement (exit_read cleared "the current
// depth"), so the owner could write the copy B still read. The owner's next write must keep
// waiting for B (it waits for every section open when it is about to write).
TEST(ReadSections, PinClosedOutOfOrderKeepsTheOtherPinAnnounced) {
  table t;
  t.put(1, 10);
  t.flush();
  auto a = std::make_unique<heap_pin>(t);
  auto b = std::make_unique<heap_pin>(t);
  a.reset();                   // out of order
  EXPECT_TRUE(t.contains(1));  // a scoped section opens and closes meanwhile
  std::atomic<bool> flushed{false};
  std::thread writer([&] {
    t.put(1, 11);
    t.flush();
    flushed = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(flushed.load()) << "the owner wrote while a pin was still open";
  EXPECT_EQ(b->p.get(1), 10u);  // b still sees its instant
  b.reset();
  writer.join();
  EXPECT_EQ(t.get(1), 11u);
}

// Was: closing a pin on another thread cleared that thread's live announcement and left the
// opener's set forever, so every later write hung.
TEST(ReadSections, PinClosedOnAnotherThreadReleasesTheOwner) {
  table t;
  t.put(1, 1);
  t.flush();
  std::unique_ptr<heap_pin> p;
  std::thread opener([&] { p = std::make_unique<heap_pin>(t); });
  opener.join();
  std::thread closer([&] {
    EXPECT_EQ(p->p.get(1), 1u);
    p.reset();
  });
  closer.join();
  auto done = std::async(std::launch::async, [&] {
    for (std::uint64_t i = 0; i < 3; ++i) {
      t.put(1, i);
      t.flush();
    }
  });
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready) << "a write hung on a closed pin";
  done.get();
}

// Was: the refusal of calls inside a pin looked at every open word of the thread record's
// slot, so a pin that outlived its thread (kept on the heap) made every call and flush of the
// next thread given that record fail with reentrancy_error. Only the pins the calling thread
// opened count now.
TEST(ReadSections, PinOutlivingItsThreadDoesNotRefuseTheNextThreadsCalls) {
  table t;
  t.put(1, 1);
  t.flush();
  std::unique_ptr<heap_pin> p;
  std::thread([&] { p = std::make_unique<heap_pin>(t); }).join();  // the opener exits
  // Later threads (one of them is given the opener's record): their calls wait for the pin
  // like anyone's writes (it holds a copy), and complete once it closes; none is refused.
  std::vector<std::future<std::uint64_t>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::async(std::launch::async, [&] {
      t.put(100, 1);  // takes a thread record (and the table's slot in it)
      return t.update_counter(3, 1);
    }));
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(p->p.get(1), 1u);
  p.reset();
  std::vector<std::uint64_t> results;
  for (auto& c : calls) {
    ASSERT_EQ(c.wait_for(10s), std::future_status::ready) << "a call hung on a closed pin";
    EXPECT_NO_THROW(results.push_back(c.get()));
  }
  std::sort(results.begin(), results.end());
  EXPECT_EQ(results, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

// Was: the owner's scan loaded each announcement only after the wait for the previous one
// ended, so it also waited for sections opened after its flip (and a publication waited for
// one preempted reader after another). It now takes the set of sections open at its scan and
// waits for that set only: a pin opened once the owner waits must not hold the write back.
TEST(ReadSections, OwnerWaitsOnlyForSectionsOpenAtItsScan) {
  table t;
  t.put(1, 1);
  t.flush();
  auto first = std::make_unique<heap_pin>(t);
  std::atomic<bool> flushed{false};
  std::thread writer([&] {
    t.put(1, 2);
    t.flush();
    flushed = true;
  });
  std::this_thread::sleep_for(200ms);  // the owner has taken its set: it waits for `first`
  EXPECT_FALSE(flushed.load()) << "the owner wrote while a pin was still open";
  auto second = std::make_unique<heap_pin>(t);  // opened after the owner's scan
  first.reset();
  EXPECT_TRUE(eventually([&] { return flushed.load(); }))
      << "the owner waited for a section opened after its scan";
  EXPECT_EQ(second->p.get(1), 1u);  // `second` still reads the instant it opened at
  second.reset();
  writer.join();
  EXPECT_EQ(t.get(1), 2u);
}

TEST(ReadSections, ScopedSectionsNestUpToTheLimit) {
  table t;
  t.put(1, 1);
  t.flush();
  std::function<int(unsigned)> nest = [&](unsigned depth) -> int {
    if (depth == warden::detail::kMaxReadDepth) {
      EXPECT_THROW(t.get(1), warden::nesting_error);
      return 0;
    }
    return t.snapshot([&](const table::view&) { return nest(depth + 1); });
  };
  nest(0);
  EXPECT_EQ(t.get(1), 1u);  // every level was closed
}

// Was: a thread_local constructed before the thread's first warden call is destroyed after
// warden's own per-thread state; a get there leaked a thread record per thread, a pin there
// dereferenced null. Now the record is released by a pthread key destructor, which runs after
// every C++ thread_local destructor.
table* g_late_table = nullptr;
struct late_user {
  ~late_user() {
    if (g_late_table == nullptr) return;
    EXPECT_EQ(g_late_table->get(7), 70u);
    auto p = g_late_table->pin();
    EXPECT_EQ(p.get(7), 70u);
    g_late_table->put(8, 80);
  }
};
thread_local late_user t_late_user;

TEST(ThreadState, ThreadLocalDestructorsMayUseWardenAndLeakNothing) {
  table t;
  t.put(7, 70);
  t.flush();
  g_late_table = &t;
  const std::size_t before = warden::detail::registry::instance().record_count();
  for (int round = 0; round < 50; ++round) {
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) {
      threads.emplace_back([] {
        (void)&t_late_user;  // constructed first: destroyed after warden's TLS
        EXPECT_EQ(g_late_table->get(7), 70u);
      });
    }
    for (auto& th : threads) th.join();
  }
  g_late_table = nullptr;
  t.flush();
  EXPECT_EQ(t.get(8), 80u);
  // 1000 threads came and went, 20 at a time: records are reused, not leaked.
  EXPECT_LE(warden::detail::registry::instance().record_count(), before + 64);
}

// Was: every owner scanned every thread record ever created, so 1000 threads that once read
// one table slowed every publication of every other table for good. Each cache has its own
// slot list (the one its owners scan), with one slot per thread record that read it, and a
// record reused by a new thread reuses its slots.
TEST(ThreadState, ACacheScansOnlyTheThreadsThatReadIt) {
  using warden::detail::slot_list;
  auto& reg = warden::detail::registry::instance();
  const auto slots_of = [](const slot_list& l) {
    std::size_t n = 0;
    l.for_each([&](const warden::detail::cache_slot&) { ++n; });
    return n;
  };
  slot_list quiet(reg.next_serial(), /*light=*/false);
  slot_list busy(reg.next_serial(), /*light=*/false);
  (void)quiet.mine([] {});                    // read once, by this thread
  for (int round = 0; round < 50; ++round) {  // 1000 threads, 20 alive at a time
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) threads.emplace_back([&] { (void)busy.mine([] {}); });
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(slots_of(quiet), 1u) << "another cache's readers reached this cache's scan";
  EXPECT_LE(slots_of(busy), reg.record_count());
  EXPECT_LT(slots_of(busy), 200u) << "slots grew with every thread that ever read";
}

// Was: the fenced-readers bit was cleared only at the owner's next write, so a table that is
// only read after a burst of calls kept every get fenced. The owner now wakes up to clear it.
TEST(FenceModes, FenceBitClearsOnTimeWhileTheTableIsOnlyRead) {
  if (!warden::detail::asymmetric_fences()) GTEST_SKIP() << "no membarrier() here";
  const auto saved = warden::detail::fence_policy_defaults;
  warden::detail::fence_policy_defaults = {.frequent_wait = std::chrono::seconds(10),
                                           .quick_waits = 2,
                                           .quiet_wait = std::chrono::milliseconds(5)};
  table t;
  warden::detail::fence_policy_defaults = saved;
  for (std::uint64_t i = 0; i < 20; ++i) t.update_counter(1, 1);  // a burst of calls
  ASSERT_TRUE(eventually([&] { return t.fence_mode_switches() >= 1; }, 2s));
  const std::uint64_t after_burst = t.fence_mode_switches();
  // Only reads from now on: the bit must still be cleared (an odd count: set, cleared).
  ASSERT_TRUE(eventually(
      [&] {
        (void)t.get(1);
        return t.fence_mode_switches() > after_burst && t.fence_mode_switches() % 2 == 0;
      },
      5s))
      << "the fenced-readers bit stayed set in a read-only period";
}

// membarrier() failing at run time (a seccomp filter installed later, ENOMEM): the owner
// switches its readers to fenced announcements for good, and reads stay consistent.
TEST(FenceModes, MembarrierFailureFallsBackToFencedReadersForGood) {
  if (!warden::detail::asymmetric_fences()) GTEST_SKIP() << "no membarrier() here";
  table t({.shards = 4});
  t.put(1, 0);
  t.put(2, 0);
  t.flush();
  warden::detail::simulate_membarrier_failure = true;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> torn{0};
  std::thread reader([&] {
    while (!stop.load()) {
      t.snapshot([&](const table::view& v) {
        if (v.get(1) != v.get(2)) torn.fetch_add(1);
        return 0;
      });
    }
  });
  for (std::uint64_t i = 1; i <= 200; ++i) {
    t.transact([&](auto& tx) {
      tx.put(1, i);
      tx.put(2, i);
    });
  }
  stop = true;
  reader.join();
  warden::detail::simulate_membarrier_failure = false;
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_TRUE(warden::detail::asymmetric_fences_lost.load());
  const std::uint64_t switches = t.fence_mode_switches();
  EXPECT_GE(switches, 1u);
  // Fenced for good: the bit is never cleared again, even after a quiet period.
  std::this_thread::sleep_for(20ms);
  t.put(3, 3);
  t.flush();
  EXPECT_EQ(t.fence_mode_switches(), switches);
  warden::detail::asymmetric_fences_lost = false;
}

// Was: destroying a table while the destroying thread held a pin of it, with a write
// pending, hung (the draining owner waited for that reader). The owner now skips the
// destroying thread's sections, and the pin's slot outlives the table until it closes.
TEST(ReadSections, DestroyingATableWhileHoldingAPinDoesNotHang) {
  auto done = std::async(std::launch::async, [] {
    std::unique_ptr<heap_pin> p;
    {
      table t;
      t.put(1, 1);
      t.flush();
      p = std::make_unique<heap_pin>(t);
      t.put(1, 2);  // a write that must wait for readers of the copy p reads
      t.put(1, 3);
    }
    p.reset();  // closing it afterwards is safe (its slot was kept)
  });
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  done.get();
}

// Was: transact did not compile for keys without a default constructor (oplog.resize).
struct no_default {
  explicit no_default(std::uint64_t v) : v(v) {}
  std::uint64_t v;
  bool operator==(const no_default&) const = default;
  template <class H>
  friend H AbslHashValue(H h, const no_default& k) {
    return H::combine(std::move(h), k.v);
  }
};

TEST(Table, TransactWorksForKeysWithoutADefaultConstructor) {
  warden::table<no_default, int> t;
  t.transact([](auto& tx) { tx.put(no_default(1), 1); });
  EXPECT_EQ(t.get(no_default(1)), 1);
  warden::any_cache<no_default, int> a(warden::table<no_default, int>{});
  a.transact([](auto& tx) { tx.put(no_default(2), 2); });
  EXPECT_EQ(a.get(no_default(2)), 2);
}

// Was: the error of a cast whose thread exited without a flush stayed in the table forever
// (and every later flush took a mutex). Errors now live in the sender's slot, tagged with its
// thread's generation: a later thread that reuses the record never sees it.
struct throwing_copy {
  static inline std::atomic<bool> armed{false};
  std::uint64_t v = 0;
  throwing_copy() = default;
  explicit throwing_copy(std::uint64_t x) : v(x) {}
  throwing_copy(const throwing_copy& o) : v(o.v) {
    if (armed.load() && v == 666) throw std::runtime_error("copy");
  }
  throwing_copy(throwing_copy&&) noexcept = default;
  throwing_copy& operator=(const throwing_copy&) = default;
  throwing_copy& operator=(throwing_copy&&) noexcept = default;
};

TEST(Table, CastErrorsOfExitedThreadsReachNoOtherThread) {
  warden::table<std::uint64_t, throwing_copy> t;
  throwing_copy::armed = true;
  std::thread([&] { t.put(1, throwing_copy(666)); }).join();  // fails on the owner; no flush
  std::thread([&] { EXPECT_NO_THROW(t.flush()); }).join();    // may reuse that record
  EXPECT_NO_THROW(t.flush());
  t.put(2, throwing_copy(666));
  EXPECT_THROW(t.flush(), std::runtime_error);  // its own thread still gets it
  EXPECT_NO_THROW(t.flush());                   // once
  throwing_copy::armed = false;
}

// Was: shards came from hash bits 32..47, so std::hash (the identity on integers) sent every
// key to one owner. Keys are now mixed before the shard is chosen.
TEST(Table, AWeakHashStillSpreadsKeysOverOwners) {
  constexpr std::size_t kShards = 16, kOwners = 4, kKeys = 20000;
  std::size_t per_owner[kOwners] = {};
  for (std::uint64_t k = 0; k < kKeys; ++k) {
    const std::size_t h = std::hash<std::uint64_t>{}(k);
    ++per_owner[((warden::detail::shard_mix(h) >> 32) & (kShards - 1)) % kOwners];
  }
  for (std::size_t n : per_owner) EXPECT_GT(n, kKeys / kOwners / 2);
  warden::table<std::uint64_t, std::uint64_t, std::hash<std::uint64_t>> t(
      {.shards = kShards, .owners = kOwners});
  for (std::uint64_t k = 0; k < 1000; ++k) t.put(k, k);
  t.flush();
  EXPECT_EQ(t.size(), 1000u);
}

}  // namespace
}  // namespace warden_test
