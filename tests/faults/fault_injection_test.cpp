// Fault injection: every call of the interface (get, contains, size, put, erase, try_put,
// try_erase, flush, update_counter, transact, transact_for, snapshot) runs with Hash, equality
// and copies throwing at random, on every backend in fault_backends.hpp, from several client
// threads at once, beside a thread whose traffic never faults. Each client keeps a sequential
// model of its own keys and updates it only with the operations that succeeded. To make that
// exact for the asynchronous casts, every cast is followed by a flush: a cast that threw at
// the call site did nothing; one that failed on the owner is reported by that flush (the
// error log keeps the first error per thread since its last flush, so one cast per flush
// makes the report exact). Afterwards, with the fault rate at 0, the cache must equal the
// models, still serve every call, and once destroyed leave no object alive.
//
// A second test poisons one key so that every owner-side operation on it throws, runs
// thousands of such failures (casts, counters, transactions), and checks the owner still
// serves and nothing it refused left a trace.
// GCC's -Wmaybe-uninitialized misfires on std::optional and on values moved through absl's
// slot storage when the sanitizer presets build at -O1; these are false positives.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "fault_backends.hpp"
#include "fault_types.hpp"

namespace warden_faults {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kKeysPerClient = 24;
constexpr int kClients = 3;

std::uint32_t fault_rate_ppm() {
  const char* s = std::getenv("WARDEN_FAULTS_RATE_PPM");
  return s ? static_cast<std::uint32_t>(std::strtoul(s, nullptr, 10)) : 30000;  // 3 %
}

struct stats {
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> failed_at_call{0};
  std::atomic<std::uint64_t> casts_applied{0};
  std::atomic<std::uint64_t> casts_failed_on_owner{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> reads_checked{0};
  std::atomic<std::uint64_t> counters_checked{0};
  std::atomic<std::uint64_t> tx_committed{0};
  std::atomic<std::uint64_t> tx_aborted{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> snapshots_checked{0};
  std::atomic<std::uint64_t> violation_count{0};
  std::mutex mutex;
  std::vector<std::string> violations;

  void violation(const std::string& what) {
    violation_count.fetch_add(1);
    std::lock_guard lock(mutex);
    if (violations.size() < 20) violations.push_back(what);
  }
};

struct client_model {
  std::map<std::uint64_t, std::uint64_t> values;  // cache of fval
  std::map<std::uint64_t, std::uint64_t> counts;  // counter cache
};

std::string show(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : std::string("absent");
}

template <class C, class N>
class client {
 public:
  client(C& c, N& n, int index, stats& st, client_model& m)
      : c_(c),
        n_(n),
        base_((static_cast<std::uint64_t>(index) + 1) * 1000000),
        st_(st),
        m_(m),
        rng_(run_seed() * 1000003 + static_cast<std::uint64_t>(index)) {}

  void run(int ops) {
    zone_scope as_client(zone::client);
    for (int i = 0; i < ops; ++i) {
      st_.ops.fetch_add(1, std::memory_order_relaxed);
      try {
        step();
      } catch (const injected_fault&) {
        // A read or call that hit a fault: it changed nothing, and the model is untouched.
        st_.failed_at_call.fetch_add(1, std::memory_order_relaxed);
      } catch (const std::exception& e) {
        st_.violation(std::string("unexpected exception: ") + e.what());
      }
    }
  }

 private:
  std::optional<std::uint64_t> modeled(std::uint64_t id) const {
    auto it = m_.values.find(id);
    return it == m_.values.end() ? std::nullopt : std::optional<std::uint64_t>(it->second);
  }

  void check_value(const char* what, std::uint64_t id, const std::optional<fval>& got) {
    const auto want = modeled(id);
    const std::optional<std::uint64_t> have =
        got ? std::optional<std::uint64_t>(got->v) : std::nullopt;
    if (have != want) {
      st_.violation(std::string(what) + " of key " + std::to_string(id) + ": got " + show(have) +
                    ", model " + show(want));
    }
    st_.reads_checked.fetch_add(1, std::memory_order_relaxed);
  }

  // One cast, then a flush, so the model learns exactly whether it was applied.
  template <class Send, class Apply>
  void cast_then_flush(Send send, Apply apply) {
    bool accepted = false;
    try {
      accepted = send();
    } catch (const injected_fault&) {
      st_.failed_at_call.fetch_add(1, std::memory_order_relaxed);  // nothing was queued
      return;
    }
    if (!accepted) st_.refused.fetch_add(1, std::memory_order_relaxed);
    try {
      c_.flush();
    } catch (const injected_fault&) {
      if (!accepted) st_.violation("flush reported an error although the try_ cast was refused");
      st_.casts_failed_on_owner.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (accepted) {
      apply();
      st_.casts_applied.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void step() {
    const unsigned dice = static_cast<unsigned>(rng_() % 100);
    const std::uint64_t id = base_ + rng_() % kKeysPerClient;
    const fkey k(id);
    const std::uint64_t x = rng_() % 1000;
    if (dice < 16) {  // put: key and value copied at the call
      const fval v(x);
      cast_then_flush(
          [&] {
            c_.put(k, v);
            return true;
          },
          [&] { m_.values[id] = x; });
    } else if (dice < 20) {  // put of temporaries: moved, only Hash can throw at the call
      cast_then_flush(
          [&] {
            c_.put(fkey(id), fval(x));
            return true;
          },
          [&] { m_.values[id] = x; });
    } else if (dice < 27) {
      cast_then_flush(
          [&] {
            c_.erase(k);
            return true;
          },
          [&] { m_.values.erase(id); });
    } else if (dice < 31) {
      const fval v(x);
      cast_then_flush([&] { return c_.try_put(k, v); }, [&] { m_.values[id] = x; });
    } else if (dice < 33) {
      cast_then_flush([&] { return c_.try_erase(k); }, [&] { m_.values.erase(id); });
    } else if (dice < 45) {
      check_value("get", id, c_.get(k));
    } else if (dice < 51) {
      const bool got = c_.contains(k);
      if (got != modeled(id).has_value()) {
        st_.violation("contains of key " + std::to_string(id) + " disagrees with the model");
      }
      st_.reads_checked.fetch_add(1, std::memory_order_relaxed);
    } else if (dice < 54) {
      const std::size_t size = c_.size();
      if (size < m_.values.size()) st_.violation("size below this client's own entries");
    } else if (dice < 57) {
      try {
        c_.flush();  // nothing pending: no error to report
      } catch (const injected_fault&) {
        st_.violation("a flush with nothing pending reported an error");
      }
    } else if (dice < 66) {
      const std::uint64_t delta = x + 1;
      const std::uint64_t want = m_.counts[id] + delta;
      const std::uint64_t got = n_.update_counter(k, delta);  // throws: nothing changed
      m_.counts[id] = want;
      if (got != want) {
        st_.violation("update_counter of key " + std::to_string(id) + " returned " +
                      std::to_string(got) + ", model " + std::to_string(want));
      }
      st_.counters_checked.fetch_add(1, std::memory_order_relaxed);
    } else if (dice < 69) {
      const auto got = n_.get(k);
      auto it = m_.counts.find(id);
      const auto want = it == m_.counts.end() || it->second == 0
                            ? std::nullopt
                            : std::optional<std::uint64_t>(it->second);
      if (got != want) st_.violation("counter read of key " + std::to_string(id));
      st_.counters_checked.fetch_add(1, std::memory_order_relaxed);
    } else if (dice < 79) {
      transaction(/*timed=*/false);
    } else if (dice < 84) {
      transaction(/*timed=*/true);
    } else {
      snapshot();
    }
  }

  void transaction(bool timed) {
    struct planned {
      int op;  // 0 get, 1 contains, 2 put, 3 erase
      std::uint64_t id;
      std::uint64_t value;
    };
    std::vector<planned> plan(1 + rng_() % 4);
    for (auto& p : plan) {
      p = {static_cast<int>(rng_() % 4), base_ + rng_() % kKeysPerClient, rng_() % 1000};
    }
    const bool throw_user = rng_() % 10 == 0;
    std::map<std::uint64_t, std::optional<std::uint64_t>> staged;
    int runs = 0;
    int mismatches = 0;
    std::uint64_t inside_sum = 0;
    auto fn = [&](auto& tx) -> std::uint64_t {
      zone_scope as_client(zone::client);  // runs on an owner thread, on behalf of a client
      ++runs;
      staged.clear();
      std::uint64_t sum = 0;
      auto expected = [&](std::uint64_t id) {
        auto it = staged.find(id);
        return it != staged.end() ? it->second : modeled(id);
      };
      for (const planned& p : plan) {
        const fkey key(p.id);
        switch (p.op) {
          case 0: {
            const auto got = tx.get(key);
            const std::optional<std::uint64_t> have =
                got ? std::optional<std::uint64_t>(got->v) : std::nullopt;
            if (have != expected(p.id)) ++mismatches;
            sum += have.value_or(7);
            break;
          }
          case 1: {
            const bool got = tx.contains(key);
            if (got != expected(p.id).has_value()) ++mismatches;
            sum += got ? 1 : 0;
            break;
          }
          case 2: {
            const fval original(p.value);
            tx.put(key, original);  // copies the value here and the key inside: may throw
            staged[p.id] = p.value;
            break;
          }
          default: {
            tx.erase(key);
            staged[p.id] = std::nullopt;
            break;
          }
        }
      }
      if (throw_user) throw user_error();
      inside_sum = sum;
      return sum;
    };
    try {
      const std::uint64_t got = timed ? c_.transact_for(10s, fn) : c_.transact(fn);
      if (runs != 1) st_.violation("a transaction function ran " + std::to_string(runs) + " times");
      if (throw_user) st_.violation("transact returned although its function threw");
      if (got != inside_sum) st_.violation("transact returned a different result");
      for (const auto& [id, value] : staged) {
        if (value) {
          m_.values[id] = *value;
        } else {
          m_.values.erase(id);
        }
      }
      st_.tx_committed.fetch_add(1, std::memory_order_relaxed);
    } catch (const user_error&) {
      if (!throw_user) st_.violation("a user_error nobody threw");
      st_.tx_aborted.fetch_add(1, std::memory_order_relaxed);
    } catch (const injected_fault&) {
      st_.tx_aborted.fetch_add(1, std::memory_order_relaxed);
    } catch (const warden::timeout_error&) {
      if (!timed) st_.violation("timeout_error from an untimed transact");
      if (runs != 0) st_.violation("a transaction that timed out ran its function");
      st_.timeouts.fetch_add(1, std::memory_order_relaxed);
    }
    if (mismatches != 0) st_.violation("a transaction read disagreed with the model");
  }

  void snapshot() {
    const int bad = c_.snapshot([&](auto& view) -> int {
      zone_scope as_client(zone::client);  // the actor runs it on its thread
      int b = 0;
      for (std::uint64_t j = 0; j < kKeysPerClient; j += 3) {
        const auto got = view.get(fkey(base_ + j));
        const std::optional<std::uint64_t> have =
            got ? std::optional<std::uint64_t>(got->v) : std::nullopt;
        if (have != modeled(base_ + j)) ++b;
      }
      std::size_t seen = 0;
      view.for_each([&](const fkey& key, const fval& value) {
        if (key.id < base_ || key.id >= base_ + kKeysPerClient) return;
        ++seen;
        if (modeled(key.id) != value.v) ++b;
      });
      if (seen != m_.values.size()) ++b;
      return b;
    });
    if (bad != 0) st_.violation("a snapshot disagreed with the model");
    st_.snapshots_checked.fetch_add(1, std::memory_order_relaxed);
  }

  C& c_;
  N& n_;
  const std::uint64_t base_;
  stats& st_;
  client_model& m_;
  std::mt19937_64 rng_;
};

// Casts that never fault (immune keys and values), flooding the mailboxes beside the clients;
// its model is exact, and its flushes must never see another thread's errors.
template <class C>
void background_traffic(C& c, const std::atomic<bool>& done, stats& st,
                        std::map<std::uint64_t, std::uint64_t>& model) {
  zone_scope as_client(zone::client);
  std::mt19937_64 rng(run_seed() ^ 0xB0B);
  std::uint64_t seq = 0;
  while (!done.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 100; ++i) {
      const std::uint64_t id = kImmune + rng() % 64;
      const std::uint64_t value = kImmune + ++seq;
      const unsigned dice = static_cast<unsigned>(rng() % 10);
      if (dice == 0) {
        c.erase(fkey(id));
        model.erase(id);
      } else if (dice == 1 && c.try_put(fkey(id), fval(value))) {
        model[id] = value;
      } else {
        c.put(fkey(id), fval(value));
        model[id] = value;
      }
    }
    try {
      c.flush();
    } catch (const std::exception& e) {
      st.violation(std::string("another thread's error reached the background flush: ") + e.what());
    }
  }
  c.flush();
}

template <class Maker>
class Faults : public ::testing::Test {};
TYPED_TEST_SUITE(Faults, fault_backends, backend_names);

TYPED_TEST(Faults, RandomFaultsLeaveTheCacheEqualToTheModel) {
  reset(run_seed() ^ 0xFA17);
  zone_scope as_client(zone::client);
  const std::int64_t live_before = cfg.live.load();
  const int ops = scaled(8000);
  stats st;
  std::vector<client_model> models(kClients);
  std::map<std::uint64_t, std::uint64_t> background;
  {
    auto c = TypeParam::template make<fval>();
    auto n = TypeParam::template make<std::uint64_t>();
    cfg.rate_ppm = fault_rate_ppm();
    std::atomic<bool> done{false};
    std::thread noise([&] { background_traffic(c, done, st, background); });
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.emplace_back([&, i] {
        client<decltype(c), decltype(n)>(c, n, i, st, models[static_cast<std::size_t>(i)]).run(ops);
      });
    }
    for (auto& t : clients) t.join();
    done.store(true);
    noise.join();
    const std::uint64_t thrown = thrown_total();
    cfg.rate_ppm = 0;  // inspect the cache with faults off

    std::printf(
        "[%s] %llu fault-injected operations (%d clients x %d), %llu faults thrown (hash %llu, "
        "eq %llu, copy %llu); %llu failed at the call, %llu casts applied, %llu casts failed "
        "on the owner, %llu try_ refusals, %llu reads and %llu counters checked, %llu "
        "transactions committed, %llu aborted, %llu timed out, %llu snapshots checked\n",
        TypeParam::name, static_cast<unsigned long long>(st.ops.load()), kClients, ops,
        static_cast<unsigned long long>(thrown),
        static_cast<unsigned long long>(cfg.thrown_hash.load()),
        static_cast<unsigned long long>(cfg.thrown_eq.load()),
        static_cast<unsigned long long>(cfg.thrown_copy.load()),
        static_cast<unsigned long long>(st.failed_at_call.load()),
        static_cast<unsigned long long>(st.casts_applied.load()),
        static_cast<unsigned long long>(st.casts_failed_on_owner.load()),
        static_cast<unsigned long long>(st.refused.load()),
        static_cast<unsigned long long>(st.reads_checked.load()),
        static_cast<unsigned long long>(st.counters_checked.load()),
        static_cast<unsigned long long>(st.tx_committed.load()),
        static_cast<unsigned long long>(st.tx_aborted.load()),
        static_cast<unsigned long long>(st.timeouts.load()),
        static_cast<unsigned long long>(st.snapshots_checked.load()));
    for (const auto& v : st.violations) ADD_FAILURE() << v;
    EXPECT_EQ(st.violation_count.load(), 0u);
    EXPECT_GT(thrown, 0u);
    if (cfg.owner_eq.load() || !TypeParam::actor_backed) {
      EXPECT_GT(st.casts_failed_on_owner.load(), 0u) << "no cast failed on the owner";
    }
    EXPECT_GT(st.casts_applied.load(), 0u);
    EXPECT_GT(st.tx_committed.load(), 0u);

    // The cache equals the models: every key, the size, and one snapshot of everything.
    std::map<std::uint64_t, std::uint64_t> all = background;
    std::map<std::uint64_t, std::uint64_t> counters;
    for (const auto& m : models) {
      all.insert(m.values.begin(), m.values.end());
      for (const auto& [id, count] : m.counts) {
        if (count != 0) counters[id] = count;
      }
    }
    c.flush();
    EXPECT_EQ(c.size(), all.size());
    for (const auto& [id, value] : all) {
      const auto got = c.get(fkey(id));
      ASSERT_TRUE(got.has_value()) << "key " << id << " lost";
      EXPECT_EQ(got->v, value) << "key " << id;
    }
    const std::size_t matching = c.snapshot([&](auto& view) {
      std::size_t same = 0;
      view.for_each([&](const fkey& k, const fval& v) {
        auto it = all.find(k.id);
        if (it != all.end() && it->second == v.v) ++same;
      });
      return same;
    });
    EXPECT_EQ(matching, all.size());
    EXPECT_EQ(n.size(), counters.size());
    for (const auto& [id, count] : counters) EXPECT_EQ(n.get(fkey(id)), count) << "counter " << id;

    // The owners still serve every call.
    c.put(fkey(5), fval(55));
    c.flush();
    EXPECT_EQ(c.get(fkey(5))->v, 55u);
    EXPECT_EQ(c.transact([](auto& tx) {
      tx.put(fkey(6), fval(66));
      return tx.get(fkey(5))->v;
    }),
              55u);
    EXPECT_EQ(c.transact_for(10s, [](auto& tx) { return tx.contains(fkey(6)); }), true);
    EXPECT_EQ(n.update_counter(fkey(5), 3), 3u);
    c.erase(fkey(5));
    c.flush();
    EXPECT_FALSE(c.contains(fkey(5)));
    EXPECT_EQ(c.size(), all.size() + 1);
  }
  // Destroyed: every key and value the caches held or copied is gone, and nothing the
  // library touched was ever a non-object.
  EXPECT_EQ(cfg.live.load(), live_before) << "fkey/fval instances leaked or destroyed twice";
  EXPECT_EQ(cfg.corrupt.load(), 0u) << "an operation on a key or value that was not alive";
}

// One key whose equality always throws: every owner-side write or lookup of it fails.
TYPED_TEST(Faults, OwnerSurvivesThousandsOfFailures) {
  reset(run_seed() ^ 0x5EED);
  zone_scope as_client(zone::client);
  const std::int64_t live_before = cfg.live.load();
  const int rounds = scaled(300);
  constexpr std::uint64_t kPoison = 7;
  std::uint64_t failures = 0;
  {
    auto c = TypeParam::template make<fval>();
    auto n = TypeParam::template make<std::uint64_t>();
    c.put(fkey(kPoison), fval(100));
    n.update_counter(fkey(kPoison), 5);
    c.flush();
    cfg.poison = kPoison;

    // A well-behaved neighbour: its results stay exact throughout.
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> neighbour_errors{0};
    std::thread neighbour([&] {
      zone_scope client_zone(zone::client);
      std::uint64_t i = 0;
      while (!done.load()) {
        const std::uint64_t id = 1000 + i % 50;
        c.put(fkey(id), fval(i));
        try {
          c.flush();
          if (c.get(fkey(id))->v != i) neighbour_errors.fetch_add(1);
          if (n.update_counter(fkey(id), 1) == 0) neighbour_errors.fetch_add(1);
        } catch (...) {
          neighbour_errors.fetch_add(1);
        }
        ++i;
      }
    });

    for (int round = 0; round < rounds; ++round) {
      for (std::uint64_t i = 0; i < 10; ++i) c.put(fkey(kPoison), fval(i));  // all fail there
      EXPECT_THROW(c.flush(), injected_fault);
      EXPECT_NO_THROW(c.flush());  // reported once
      EXPECT_THROW(n.update_counter(fkey(kPoison), 1), injected_fault);
      EXPECT_THROW(c.transact([&](auto& tx) {
        tx.put(fkey(8), fval(1));
        throw user_error();
      }),
                   user_error);
      EXPECT_THROW(c.transact([&](auto& tx) {
        tx.put(fkey(9), fval(1));
        return tx.get(fkey(kPoison)).has_value();
      }),
                   injected_fault);
      EXPECT_THROW(c.get(fkey(kPoison)), injected_fault);
      failures += 10 + 4;
      c.put(fkey(100 + static_cast<std::uint64_t>(round)), fval(static_cast<std::uint64_t>(round)));
      EXPECT_NO_THROW(c.flush());
    }
    done.store(true);
    neighbour.join();
    cfg.poison = 0;
    std::printf("[%s] %llu owner-side and user failures in %d rounds; the owner still serves\n",
                TypeParam::name, static_cast<unsigned long long>(failures), rounds);

    EXPECT_EQ(neighbour_errors.load(), 0u);
    EXPECT_EQ(c.get(fkey(kPoison))->v, 100u);  // every refused write left no trace
    EXPECT_EQ(n.get(fkey(kPoison)), 5u);
    EXPECT_FALSE(c.contains(fkey(8)));
    EXPECT_FALSE(c.contains(fkey(9)));
    for (int round = 0; round < rounds; ++round) {
      EXPECT_EQ(c.get(fkey(100 + static_cast<std::uint64_t>(round)))->v,
                static_cast<std::uint64_t>(round));
    }
    c.put(fkey(kPoison), fval(101));
    c.flush();
    EXPECT_EQ(c.get(fkey(kPoison))->v, 101u);
    EXPECT_EQ(n.update_counter(fkey(kPoison), 1), 6u);
    EXPECT_EQ(c.transact([](auto& tx) {
      tx.erase(fkey(kPoison));
      return 1;
    }),
              1);
    EXPECT_FALSE(c.contains(fkey(kPoison)));
    EXPECT_EQ(c.snapshot([](auto& view) {
      std::size_t entries = 0;
      view.for_each([&](const fkey&, const fval&) { ++entries; });
      return entries;
    }),
              c.size());
  }
  EXPECT_EQ(cfg.live.load(), live_before);
  EXPECT_EQ(cfg.corrupt.load(), 0u);
}

}  // namespace
}  // namespace warden_faults
