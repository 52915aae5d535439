// Out of memory inside a transaction (the core issue's defect 8). A replaced global operator
// new fails the k-th allocation after it is armed, in any thread, for k = 0, 1, 2, ... until a
// transaction completes without meeting the failure. Every attempt must end in exactly one of
// two states: the transaction applied whole, or (it threw std::bad_alloc) not at all; the
// cache must stay usable. The transaction overwrites, erases and inserts string entries long
// enough to allocate, and inserts enough new keys to make the maps grow mid-transaction.
// Its own binary because the replacement operator new applies to the whole program.
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

// This operator new/delete pair is malloc/free underneath; GCC cannot see that they match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
// Allocations left before one fails; negative: none fails. Decremented by every thread.
std::atomic<long> g_allocations_before_failure{-1};
}  // namespace

void* operator new(std::size_t n) {
  // relaxed: which allocation fails only has to be one of those after arming; the test
  // checks outcomes, not which allocation it was.
  if (g_allocations_before_failure.load(std::memory_order_relaxed) >= 0 &&
      g_allocations_before_failure.fetch_sub(1, std::memory_order_relaxed) == 0) {
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using contents = std::map<std::string, std::string>;

// Built by appending: GCC 12 warns falsely (-Wrestrict) on `const char* + std::string&&`.
std::string key(const char* prefix, int i) {
  std::string k(prefix);
  k += std::to_string(i);
  k.append(40, 'k');
  return k;
}
std::string value(const char* tag, int i) {
  std::string v(tag);
  v += std::to_string(i);
  v.append(60, 'v');
  return v;
}

template <class C>
contents read_all(C& c) {
  contents all;
  c.snapshot([&](auto& view) {
    view.for_each([&](const std::string& k, const std::string& v) { all.emplace(k, v); });
  });
  return all;
}

constexpr int kKeys = 40;

// Overwrites the first half, erases the second half and inserts as many new keys again.
template <class Tx>
void transfer(Tx& tx, int round) {
  for (int i = 0; i < kKeys / 2; ++i) tx.put(key("old", i), value("round", round));
  for (int i = kKeys / 2; i < kKeys; ++i) tx.erase(key("old", i));
  for (int i = 0; i < 2 * kKeys; ++i) tx.put(key("new", round * 1000 + i), value("new", i));
}

contents expected_after(contents before, int round) {
  for (int i = 0; i < kKeys / 2; ++i) before[key("old", i)] = value("round", round);
  for (int i = kKeys / 2; i < kKeys; ++i) before.erase(key("old", i));
  for (int i = 0; i < 2 * kKeys; ++i) before[key("new", round * 1000 + i)] = value("new", i);
  return before;
}

template <class C>
void still_usable(C& c) {
  c.put("after", "works");
  c.flush();
  EXPECT_EQ(c.get("after").value_or(""), "works");
}

// Fails allocation k of a transaction for every k, each time on a fresh cache made by
// `make` and filled alike; returns how many attempts threw. Owners retry some of their own
// allocations (a replay, a reservation for the next batch), so a failure may also be absorbed
// and the transaction still apply whole. Stops at the first k that the transaction never
// reaches.
template <class Make>
int transact_under_failing_allocations(Make make) {
  constexpr int kRound = 1;
  int threw_count = 0;
  for (long k = 0;; ++k) {
    auto c = make();
    for (int i = 0; i < kKeys; ++i) c->put(key("old", i), value("first", i));
    c->flush();
    const contents before = read_all(*c);
    bool threw = false;
    // relaxed: the arming thread's own later allocations see it; others may or may not,
    // which only moves which allocation fails.
    g_allocations_before_failure.store(k, std::memory_order_relaxed);
    try {
      c->transact([&](auto& tx) { transfer(tx, kRound); });
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    const bool reached = g_allocations_before_failure.exchange(-1, std::memory_order_relaxed) < 0;
    const contents now = read_all(*c);
    if (threw) {
      ++threw_count;
      EXPECT_EQ(now, before) << "allocation " << k << " failed, the transaction threw, and yet "
                             << "the cache changed";
    } else {
      EXPECT_EQ(now, expected_after(before, kRound))
          << "allocation " << k << (reached ? " failed" : " was never reached")
          << " and the transaction returned, but did not apply whole";
    }
    still_usable(*c);
    if (!reached || ::testing::Test::HasFailure()) return threw_count;
    if (k > 100000) {
      ADD_FAILURE() << "the transaction never completed";
      return threw_count;
    }
  }
}

TEST(OutOfMemory, TableTransactionIsAllOrNothingOneOwner) {
  warden::table_options o;
  o.shards = 1;  // one map per copy, so that the new keys make it grow
  o.owners = 1;
  EXPECT_GT(transact_under_failing_allocations(
                [&] { return std::make_unique<warden::table<std::string, std::string>>(o); }),
            10);
}

TEST(OutOfMemory, TableTransactionIsAllOrNothingAcrossOwners) {
  warden::table_options o;
  o.shards = 4;
  o.owners = 4;
  EXPECT_GT(transact_under_failing_allocations(
                [&] { return std::make_unique<warden::table<std::string, std::string>>(o); }),
            10);
}

TEST(OutOfMemory, BoundedTableTransactionIsAllOrNothing) {
  warden::table_options o;
  o.shards = 2;
  o.owners = 2;
  o.max_size = 1000;
  EXPECT_GT(transact_under_failing_allocations(
                [&] { return std::make_unique<warden::table<std::string, std::string>>(o); }),
            10);
}

TEST(OutOfMemory, ActorTransactionIsAllOrNothing) {
  EXPECT_GT(transact_under_failing_allocations(
                [] { return std::make_unique<warden::actor<std::string, std::string>>(); }),
            10);
}

// Casts: a put whose allocation fails reports bad_alloc at the next flush and changes nothing;
// later writes still apply.
TEST(OutOfMemory, FailedCastsLeaveTheTableConsistent) {
  warden::table_options o;
  o.shards = 1;
  o.owners = 1;
  warden::table<std::string, std::string> t(o);
  int failed = 0;
  for (long k = 0; k < 40; ++k) {
    g_allocations_before_failure.store(k, std::memory_order_relaxed);  // relaxed: as above
    try {
      for (int i = 0; i < 8; ++i) t.put(key("cast", static_cast<int>(k) * 8 + i), value("c", i));
      t.flush();
    } catch (const std::bad_alloc&) {
      ++failed;
    }
    g_allocations_before_failure.store(-1, std::memory_order_relaxed);
    try {
      t.flush();  // a failure left over from the loop above
    } catch (const std::bad_alloc&) {
      ++failed;
    }
    // Whatever failed, the two copies agree: every key is either readable whole or absent.
    for (const auto& [k, v] : read_all(t)) EXPECT_EQ(v.size(), value("c", 0).size()) << k;
  }
  EXPECT_GT(failed, 0);
  still_usable(t);
}

}  // namespace
