// Caches sharing owner threads (warden::owner_pool). The contract suites run on pooled
// backends too (tests/support/backends.hpp); these tests cover what is the pool's own:
// many caches on few threads, its timed wake-ups, its refusals, and its shutdown.
#include <dirent.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

namespace {

using namespace std::chrono_literals;

// Threads of this process now (Linux: the entries of /proc/self/task).
int thread_count() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

TEST(OwnerPool, AThousandTablesAndActorsRunOnTwoThreads) {
  // A first thread created and joined, so that runtimes which start a thread of their own
  // with the process's first one (ThreadSanitizer's) have done so before the count.
  std::thread([] {}).join();
  const int before = thread_count();
  auto pool = std::make_shared<warden::owner_pool>(2);
  constexpr int kTables = 1000, kActors = 100;
  std::vector<std::unique_ptr<warden::table<int, std::int64_t>>> tables;
  std::vector<std::unique_ptr<warden::actor<int, std::int64_t>>> actors;
  warden::table_options to;
  to.pool = pool;
  warden::actor_options ao;
  ao.pool = pool;
  for (int i = 0; i < kTables; ++i)
    tables.push_back(std::make_unique<warden::table<int, std::int64_t>>(to));
  for (int i = 0; i < kActors; ++i)
    actors.push_back(std::make_unique<warden::actor<int, std::int64_t>>(ao));
  EXPECT_EQ(thread_count(), before + 2) << "the caches started threads of their own";

  // Four threads write to every cache at once: casts, calls and transactions.
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kTables; ++i) {
        tables[i]->put(w, i);
        tables[i]->update_counter(100, 1);
        tables[i]->transact([&](auto& tx) { tx.put(200 + w, tx.get(w).value_or(-1)); });
      }
      for (int i = 0; i < kActors; ++i) {
        actors[i]->put(w, i);
        actors[i]->update_counter(100, 1);
      }
    });
  }
  for (auto& t : writers) t.join();
  for (int i = 0; i < kTables; ++i) {
    tables[i]->flush();
    for (int w = 0; w < 4; ++w) {
      ASSERT_EQ(tables[i]->get(w), i);
      ASSERT_EQ(tables[i]->get(200 + w), i);  // the transaction saw the writer's own put
    }
    ASSERT_EQ(tables[i]->get(100), 4);
  }
  for (int i = 0; i < kActors; ++i) {
    for (int w = 0; w < 4; ++w) ASSERT_EQ(actors[i]->get(w), i);
    ASSERT_EQ(actors[i]->get(100), 4);
  }
  tables.clear();
  actors.clear();
  to.pool.reset();
  ao.pool.reset();
  pool.reset();  // the last reference: joins the pool's threads
  EXPECT_EQ(thread_count(), before);
}

TEST(OwnerPool, TimedWorkRunsWithoutAnyCall) {
  auto pool = std::make_shared<warden::owner_pool>(1);
  warden::table_options o;
  o.pool = pool;
  o.expire_after_write = 20ms;
  warden::table<int, int> t(o);
  for (int i = 0; i < 100; ++i) t.put(i, i);
  t.flush();
  EXPECT_EQ(t.size(), 100u);
  // Nobody calls the table from here on: only the pool's timer can wake its owner to sweep.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (t.size() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(t.size(), 0u);
}

TEST(OwnerPool, CallsToAnotherCacheOfThePoolFromAnOwnerCallbackAreRefused) {
  auto pool = std::make_shared<warden::owner_pool>(2);
  warden::table_options to;
  to.pool = pool;
  warden::actor_options ao;
  ao.pool = pool;
  warden::table<int, int> a(to), b(to);
  warden::actor<int, int> c(ao);
  warden::table<int, int> own_thread;  // not on the pool: may be called from there
  a.put(1, 1);
  EXPECT_THROW(a.transact([&](auto&) { b.flush(); }), warden::reentrancy_error);
  EXPECT_THROW(a.transact([&](auto&) { (void)c.get(1); }), warden::reentrancy_error);
  EXPECT_THROW(c.update(1,
                        [&](const std::optional<int>&) -> std::optional<int> {
                          return b.update_counter(1, 1);
                        }),
               warden::reentrancy_error);
  a.transact([&](auto&) { own_thread.put(7, 7), own_thread.flush(); });
  b.put(2, 2);  // casts that need not wait are accepted, and reads never wait
  a.transact([&](auto& tx) { tx.put(3, b.get(1).value_or(0) + 1); });
  a.flush();
  EXPECT_EQ(a.get(3), 1);
  EXPECT_EQ(own_thread.get(7), 7);
}

TEST(OwnerPool, OptionsAreChecked) {
  warden::table_options o;
  o.pool = std::make_shared<warden::owner_pool>(1);
  o.shards = 4;
  o.owners = 2;
  EXPECT_THROW((warden::table<int, int>(o)), std::invalid_argument);
  EXPECT_THROW(warden::owner_pool(0), std::invalid_argument);
}

TEST(OwnerPool, DestroyingACacheAppliesEveryAcceptedCast) {
  auto pool = std::make_shared<warden::owner_pool>(1);
  std::atomic<int> applied{0};
  for (int round = 0; round < 20; ++round) {
    warden::actor_options ao;
    ao.pool = pool;
    auto a = std::make_unique<warden::actor<int, int>>(ao);
    auto sub = a->subscribe(
        [&](const warden::change_batch<int, int>& b) { applied += static_cast<int>(b.size()); });
    for (int i = 0; i < 1000; ++i) a->put(i, i);
    a->flush();  // the subscriber is active before the destruction
    for (int i = 0; i < 1000; ++i) a->put(i, -i);
    a.reset();  // drains: every put above is applied before the owner's last cycle ends
  }
  EXPECT_EQ(applied.load(), 20 * 2000);
}

}  // namespace
