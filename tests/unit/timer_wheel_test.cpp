// timer_wheel: exact expiry against a brute-force model, at every level, the overflow and the
// ends of the int64 range; plus a disabled benchmark of the expire rate (run it with
// --gtest_also_run_disabled_tests --gtest_filter='*ExpireRate*').
#include "warden/detail/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace {

using warden::detail::timer_wheel;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  if (b > 0 && a > kMax - 1 - b) return kMax - 1;  // kMax is the owner's "never"
  if (b < 0 && a < kMin - b) return kMin;
  return a + b;
}

std::vector<std::uint32_t> collect(timer_wheel& w, std::int64_t now) {
  std::vector<std::uint32_t> out;
  w.advance(now, [&](std::uint32_t n) { out.push_back(n); });
  std::sort(out.begin(), out.end());
  return out;
}

using nodes = std::vector<std::uint32_t>;

TEST(TimerWheel, DeadlineEqualToNowExpiresOneLaterDoesNot) {
  timer_wheel w(1000);
  w.schedule(1, 5000);
  w.schedule(2, 5001);
  EXPECT_EQ(w.size(), 2u);
  EXPECT_LE(w.next_deadline(), 5000);
  EXPECT_EQ(collect(w, 4999), nodes{});
  EXPECT_EQ(collect(w, 5000), nodes{1});
  EXPECT_FALSE(w.scheduled(1));
  EXPECT_TRUE(w.scheduled(2));
  EXPECT_EQ(w.next_deadline(), 5001);
  w.schedule(3, 5001);
  EXPECT_EQ(collect(w, 5000), nodes{});
  EXPECT_EQ(collect(w, 5001), (nodes{2, 3}));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_deadline(), kMax);
}

TEST(TimerWheel, PastDeadlinesExpireOnTheNextAdvanceEvenWithoutProgress) {
  timer_wheel w(1 << 30);
  w.schedule(7, 5);
  w.schedule(8, 1 << 30);
  EXPECT_LE(w.next_deadline(), 5);
  EXPECT_EQ(collect(w, 0), (nodes{7, 8}));  // an earlier now counts as the last one
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, ScheduleMovesCancelUnschedules) {
  timer_wheel w(0);
  w.cancel(3);  // never scheduled, beyond the storage: a no-op
  EXPECT_FALSE(w.scheduled(3));
  EXPECT_FALSE(w.scheduled(0xFFFFFFFFu));
  w.schedule(3, 100);
  w.schedule(3, std::int64_t{1} << 40);  // a move, not a second entry
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(collect(w, 1000), nodes{});
  w.schedule(4, 10);
  w.cancel(4);
  w.cancel(4);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(collect(w, std::int64_t{1} << 41), nodes{3});
  w.schedule(3, (std::int64_t{1} << 41) + 1);  // reuse of an expired index
  EXPECT_EQ(collect(w, (std::int64_t{1} << 41) + 1), nodes{3});
}

// Deadlines exactly on, just before and just after the bucket and level boundaries of every
// level and the overflow, from several starting clocks.
TEST(TimerWheel, BoundariesOfEveryLevel) {
  for (std::int64_t start : {std::int64_t{0}, std::int64_t{1'700'000'000'000'000'000},
                             std::int64_t{-5'000'000'000'000'000'000},
                             kMax - (std::int64_t{1} << 56), std::int64_t{(1 << 20) - 1}}) {
    SCOPED_TRACE(start);
    timer_wheel w(start);
    std::vector<std::int64_t> deadline;
    for (int shift = 20; shift <= 56; shift += 6) {  // 56: buckets of 2^56 ns, in the overflow
      for (std::int64_t k : {1, 2, 63, 64, 65}) {
        const std::int64_t edge = sat_add((start >> shift) << shift, k << shift);
        for (std::int64_t d : {sat_add(edge, -1), edge, sat_add(edge, 1)}) {
          if (d > start && d < kMax) deadline.push_back(d);
        }
      }
    }
    for (std::uint32_t i = 0; i < deadline.size(); ++i) w.schedule(i, deadline[i]);
    std::vector<std::uint32_t> order(deadline.size());
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(),
              [&](auto a, auto b) { return deadline[a] < deadline[b]; });
    // Step to each deadline minus one, then to it: nothing early, everything on time.
    for (std::uint32_t i : order) {
      if (!w.scheduled(i)) continue;
      EXPECT_LE(w.next_deadline(), deadline[i]);
      std::int64_t now = deadline[i];
      w.advance(now - 1, [&](std::uint32_t n) { ADD_FAILURE() << "early " << deadline[n]; });
      w.advance(now, [&](std::uint32_t n) { EXPECT_EQ(deadline[n], now); });
      EXPECT_FALSE(w.scheduled(i));
    }
    EXPECT_EQ(w.size(), 0u);
  }
}

TEST(TimerWheel, HugeJumpsAndFarDeadlines) {
  constexpr std::int64_t kYear = 365LL * 24 * 3600 * 1'000'000'000;
  timer_wheel w(0);
  w.schedule(0, 1);
  w.schedule(1, kYear);
  w.schedule(2, kYear + 1);
  w.schedule(3, 100 * kYear);
  w.schedule(4, kMax - 1);
  w.schedule(5, kMax / 2);
  w.schedule(6, (std::int64_t{1} << 50) - 1);
  w.schedule(7, std::int64_t{1} << 50);
  EXPECT_EQ(collect(w, kYear), (nodes{0, 1, 6, 7}));
  EXPECT_EQ(w.next_deadline(), kYear + 1);  // exact: the overflow was re-examined
  EXPECT_EQ(collect(w, 99 * kYear), nodes{2});
  EXPECT_EQ(collect(w, kMax / 2 - 1), nodes{3});
  EXPECT_EQ(collect(w, kMax - 2), nodes{5});
  EXPECT_EQ(w.size(), 1u);
  EXPECT_LE(w.next_deadline(), kMax - 1);
  EXPECT_EQ(collect(w, kMax - 1), nodes{4});
  EXPECT_EQ(w.next_deadline(), kMax);
}

TEST(TimerWheel, ExpireMayRescheduleAndCancelOthers) {
  timer_wheel w(0);
  for (std::uint32_t i = 0; i < 10; ++i) w.schedule(i, 100 + i);
  std::vector<std::uint32_t> seen;
  w.advance(105, [&](std::uint32_t n) {
    EXPECT_FALSE(w.scheduled(n));
    if (seen.empty()) {
      w.cancel(9);             // a future node
      w.schedule(20, 50);      // already due: expires in this advance too
      w.schedule(21, 106);     // a future one
      w.schedule(n, 1 << 30);  // itself, again, later
    }
    seen.push_back(n);
  });
  const std::uint32_t first = seen.front();
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (nodes{0, 1, 2, 3, 4, 5, 20}));
  EXPECT_FALSE(w.scheduled(9));
  EXPECT_TRUE(w.scheduled(21));
  EXPECT_EQ(w.size(), 5u);  // 6, 7, 8, 21 and the first expired, rescheduled
  EXPECT_EQ(collect(w, 108), (nodes{6, 7, 8, 21}));
  EXPECT_EQ(collect(w, 1 << 30), nodes{first});
}

TEST(TimerWheel, AThrowingExpireLeavesTheRestDue) {
  timer_wheel w(0);
  for (std::uint32_t i = 0; i < 20; ++i) w.schedule(i * 1000, 10 + i);  // sparse indices
  w.schedule(200'000, 1'000'000);
  std::vector<std::uint32_t> seen;
  EXPECT_THROW(w.advance(100,
                         [&](std::uint32_t n) {
                           seen.push_back(n);
                           if (seen.size() == 5) throw 1;
                         }),
               int);
  EXPECT_EQ(w.size(), 16u);
  w.advance(100, [&](std::uint32_t n) { seen.push_back(n); });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.next_deadline(), 1'000'000);
}

// An owner that parks until next_deadline() and advances then: no spinning, nothing late.
TEST(TimerWheel, ParkingOnNextDeadlineExpiresEverythingOnTime) {
  std::mt19937_64 rng(7);
  timer_wheel w(0);
  constexpr std::uint32_t kNodes = 5000;
  std::vector<std::int64_t> deadline(kNodes);
  for (std::uint32_t i = 0; i < kNodes; ++i) {
    deadline[i] = static_cast<std::int64_t>(rng() >> (4 + rng() % 40));
    w.schedule(i, deadline[i]);
  }
  std::size_t wakeups = 0;
  std::int64_t now = 0;
  while (w.size() > 0) {
    const std::int64_t next = w.next_deadline();
    ASSERT_GT(next, now);
    now = next;
    ++wakeups;
    w.advance(now, [&](std::uint32_t n) { EXPECT_LE(deadline[n], now); });
  }
  // Each node can cost a wake-up per level it cascades through, plus its own.
  EXPECT_LE(wakeups, std::size_t{kNodes} * 6);
  std::printf("%zu wake-ups for %u nodes\n", wakeups, kNodes);
}

std::uint64_t seed_or(std::uint64_t fallback) {
  const char* env = std::getenv("WARDEN_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
}

// Random schedules, cancels, moves and advances against a brute-force model.
class TimerWheelModel : public ::testing::TestWithParam<int> {};

TEST_P(TimerWheelModel, MatchesBruteForce) {
  const std::uint64_t seed =
      seed_or(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(GetParam() + 1));
  std::printf("timer_wheel model seed %llu (rerun with WARDEN_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  constexpr std::int64_t kStarts[] = {0, 1'700'000'000'000'000'000, -3'000'000'000'000'000'000,
                                      kMax - (std::int64_t{1} << 58)};
  std::int64_t now = kStarts[GetParam() % 4];
  timer_wheel w(now);
  constexpr std::uint32_t kNodes = 400;
  constexpr std::int64_t kNone = kMin;  // no model deadline equals it: see random_deadline
  std::vector<std::int64_t> model(kNodes, kNone);
  std::size_t live = 0;

  auto below = [&](std::int64_t n) {
    return static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n));
  };
  auto random_deadline = [&]() -> std::int64_t {
    switch (rng() % 10) {
      case 0:
        return std::max(kMin + 1, sat_add(now, -below(std::int64_t{1} << 40)));
      case 1:  // now or now + 1
        return sat_add(now, static_cast<std::int64_t>(rng() % 2));
      case 2:
        return sat_add(now, below(std::int64_t{1} << 20));
      case 3:
      case 4: {  // any level
        const int shift = 20 + 6 * static_cast<int>(rng() % 5);
        return sat_add(now, below(std::int64_t{1} << (shift + 6)));
      }
      case 5:  // overflow
        return sat_add(now, below(std::int64_t{1} << (50 + rng() % 13)));
      case 6:
        return kMax - 1 - below(1 << 20);
      case 7: {  // on a boundary
        const int shift = 20 + 6 * static_cast<int>(rng() % 6);
        const std::int64_t edge = sat_add((now >> shift) << shift, (1 + below(64)) << shift);
        return std::max(kMin + 1, sat_add(edge, static_cast<std::int64_t>(rng() % 3) - 1));
      }
      default:  // near an existing deadline, to crowd a bucket
        for (int tries = 0; tries < 4; ++tries) {
          const std::int64_t d = model[rng() % kNodes];
          if (d != kNone) return std::max(kMin + 1, sat_add(d, below(2000) - 1000));
        }
        return sat_add(now, below(std::int64_t{1} << 24));
    }
  };
  auto schedule = [&](std::uint32_t n, std::int64_t d) {
    if (model[n] == kNone) ++live;
    model[n] = d;
    w.schedule(n, d);
  };
  auto cancel = [&](std::uint32_t n) {
    if (model[n] != kNone) --live;
    model[n] = kNone;
    w.cancel(n);
  };
  auto check_next_deadline = [&] {
    std::int64_t earliest = kMax;
    for (std::int64_t d : model) {
      if (d != kNone) earliest = std::min(earliest, d);
    }
    ASSERT_LE(w.next_deadline(), earliest);
  };

  for (int step = 0; step < 30000; ++step) {
    const std::uint32_t op = rng() % 100;
    if (op < 45) {
      schedule(static_cast<std::uint32_t>(rng() % kNodes), random_deadline());
    } else if (op < 60) {
      cancel(static_cast<std::uint32_t>(rng() % kNodes));
    } else {
      std::int64_t to = now;
      switch (rng() % 9) {
        case 0:
          break;
        case 1:
          to = sat_add(now, 1);
          break;
        case 2:
          to = sat_add(now, -below(1 << 20));  // backwards: ignored
          break;
        case 3: {
          const std::int64_t d = model[rng() % kNodes];
          if (d != kNone) to = std::max(now, d - static_cast<std::int64_t>(rng() % 2));
          break;
        }
        case 4:
          to = sat_add(now, below(std::int64_t{1} << (20 + rng() % 37)));  // up to 2^56: huge
          break;
        case 5: {
          const int shift = 20 + 6 * static_cast<int>(rng() % 6);
          to = std::max(now, sat_add((now >> shift) << shift, std::int64_t{1} << shift) - 1 +
                                 static_cast<std::int64_t>(rng() % 2));
          break;
        }
        default:
          to = sat_add(now, below(std::int64_t{1} << 22));
      }
      now = std::max(now, to);
      w.advance(to, [&](std::uint32_t n) {
        ASSERT_NE(model[n], kNone) << "expired a node not scheduled " << n;
        ASSERT_LE(model[n], now) << "expired early " << n;
        ASSERT_FALSE(w.scheduled(n));
        model[n] = kNone;
        --live;
        const std::uint32_t r = rng() % 16;
        if (r == 0) schedule(static_cast<std::uint32_t>(rng() % kNodes), random_deadline());
        if (r == 1) cancel(static_cast<std::uint32_t>(rng() % kNodes));
        if (r == 2) schedule(n, random_deadline());  // the node just expired, reused
      });
      for (std::uint32_t n = 0; n < kNodes; ++n) {
        ASSERT_EQ(w.scheduled(n), model[n] != kNone) << n;
        ASSERT_TRUE(model[n] == kNone || model[n] > now) << "left due " << n;
      }
      if (live > 0) {
        ASSERT_GT(w.next_deadline(), now);
      }
    }
    ASSERT_EQ(w.size(), live);
    check_next_deadline();
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, TimerWheelModel, ::testing::Range(0, 8));

// Expire rate: 2^21 nodes in shuffled index order, deadlines spread over 10 s, drained (a) by
// one jump and (b) by an owner advancing every 100 us.
TEST(TimerWheel, DISABLED_ExpireRate) {
  constexpr std::uint32_t kNodes = 1u << 21;
  constexpr std::int64_t kSpan = 10'000'000'000;
  std::mt19937_64 rng(1);
  std::vector<std::uint32_t> ids(kNodes);
  std::iota(ids.begin(), ids.end(), 0u);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<std::int64_t> deadline(kNodes);
  for (auto& d : deadline) d = 1 + static_cast<std::int64_t>(rng() % kSpan);
  for (std::int64_t step : {kSpan, std::int64_t{100'000}}) {
    timer_wheel w(0);
    auto t0 = std::chrono::steady_clock::now();
    for (std::uint32_t i = 0; i < kNodes; ++i) w.schedule(ids[i], deadline[i]);
    auto t1 = std::chrono::steady_clock::now();
    std::size_t expired = 0;
    for (std::int64_t now = step; now <= kSpan; now += step) {
      w.advance(now, [&](std::uint32_t) { ++expired; });
    }
    auto t2 = std::chrono::steady_clock::now();
    ASSERT_EQ(expired, kNodes);
    const double s1 = std::chrono::duration<double>(t1 - t0).count();
    const double s2 = std::chrono::duration<double>(t2 - t1).count();
    std::printf("step %lld ns: schedule %.1f M/s, advance (cascade + expire) %.1f M/s\n",
                static_cast<long long>(step), kNodes / s1 / 1e6, kNodes / s2 / 1e6);
  }
}

}  // namespace
