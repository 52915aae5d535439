// libFuzzer target: decodes the input into cache operations and checks every result against a
// sequential model; any disagreement aborts (libFuzzer saves the input). Built twice:
// WARDEN_FUZZ_ACTOR=0 fuzzes warden::table with options taken from the input,
// WARDEN_FUZZ_ACTOR=1 fuzzes warden::actor; either may be wrapped in any_cache.
//
// The first byte chooses the mode: even, the concurrent scripts below (the rest of the input
// as described here); odd, the cache features (size bound, expiry on a manual clock,
// get_or_load, the ETS-style calls, versions: fuzz_features.cpp).
//
// Scripts input: byte 0 chooses the options (table: shards, owners), byte 1 the mailbox capacity,
// the any_cache wrapper and the number of scripts (1..3); then operations of 3 bytes each
// [kind | script << 4] [key] [value], a transaction followed by its steps (2 bytes each).
//
// Phase 1 runs every operation on one thread over shared keys. Phase 2 runs each script on
// its own thread over its own keys, plus two counters all scripts add to. Both phases check
// each result exactly: a table's reads may lag the thread's own casts until the next flush
// or call, so the model keeps, per key, the values the thread's casts since then would give
// (a history) and accepts a read only if it equals one of them no older than the last one
// read (a reader sees a prefix of the owner's FIFO, and never goes back); the actor's reads
// are calls, so they must see the latest. After both phases the whole cache must equal the
// model.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <warden/warden.hpp>

#include "fuzz_common.hpp"

#ifndef WARDEN_FUZZ_ACTOR
#define WARDEN_FUZZ_ACTOR 0
#endif

namespace {

using u64 = std::uint64_t;
using value = std::optional<u64>;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "warden fuzz: MISMATCH: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string show(const value& v) { return v ? std::to_string(*v) : std::string("absent"); }

struct user_error : std::runtime_error {
  user_error() : std::runtime_error("user error") {}
};

// Per-thread model of the keys one thread writes.
class model {
 public:
  explicit model(bool reads_are_calls) : reads_are_calls_(reads_are_calls) {}

  // A cast this thread sent: readers may see it from now on, and must after a sync.
  void cast(u64 k, value v) { keys_[k].hist.push_back(v); }
  // A flush or a completed call: every earlier cast of this thread is visible.
  void sync() {
    for (auto& [k, s] : keys_) {
      s.hist = {s.hist.back()};
      s.lb = 0;
    }
  }
  value latest(u64 k) const {
    auto it = keys_.find(k);
    return it == keys_.end() ? std::nullopt : it->second.hist.back();
  }
  void set(u64 k, value v) {
    auto& s = keys_[k];
    s.hist = {v};
    s.lb = 0;
  }

  // A read of `k` returned `got`: it must match a value no older than the last one read.
  void observe(const char* what, u64 k, const value& got) {
    state& s = keys_[k];
    if (reads_are_calls_) {
      if (got != s.hist.back()) {
        fail(std::string(what) + " of key " + std::to_string(k) + " = " + show(got) +
             ", expected " + show(s.hist.back()));
      }
      return;
    }
    for (std::size_t j = s.lb; j < s.hist.size(); ++j) {
      if (s.hist[j] == got) {
        s.lb = j;
        return;
      }
    }
    fail(std::string(what) + " of key " + std::to_string(k) + " = " + show(got) +
         ", not one of the values its pending casts allow (latest " + show(s.hist.back()) + ")");
  }
  void observe_presence(const char* what, u64 k, bool present) {
    state& s = keys_[k];
    if (reads_are_calls_) {
      if (present != s.hist.back().has_value())
        fail(std::string(what) + " of key " + std::to_string(k));
      return;
    }
    for (std::size_t j = s.lb; j < s.hist.size(); ++j) {
      if (s.hist[j].has_value() == present) {
        s.lb = j;
        return;
      }
    }
    fail(std::string(what) + " of key " + std::to_string(k) +
         " disagrees with every pending state");
  }
  // Bounds on how many of this model's keys a read may see present.
  std::pair<std::size_t, std::size_t> size_bounds() const {
    std::size_t must = 0, may = 0;
    for (const auto& [k, s] : keys_) {
      bool all = true, any = false;
      const std::size_t from = reads_are_calls_ ? s.hist.size() - 1 : s.lb;
      for (std::size_t j = from; j < s.hist.size(); ++j) {
        all = all && s.hist[j].has_value();
        any = any || s.hist[j].has_value();
      }
      must += all;
      may += any;
    }
    return {must, may};
  }
  std::map<u64, u64> contents() const {
    std::map<u64, u64> out;
    for (const auto& [k, s] : keys_) {
      if (s.hist.back()) out[k] = *s.hist.back();
    }
    return out;
  }

 private:
  struct state {
    std::vector<value> hist{std::nullopt};
    std::size_t lb = 0;
  };
  bool reads_are_calls_;
  std::map<u64, state> keys_;
};

struct op {
  std::uint8_t kind;
  std::uint8_t script;
  std::uint8_t key;
  std::uint8_t val;
  std::vector<std::array<std::uint8_t, 2>> steps;  // transactions
};

constexpr u64 kSharedCounter = 200;

// Runs one script against cache `c`, checking every result against `m`. `base` offsets the
// keys; in phase 2 `shared` collects what this thread added to the shared counters.
template <class C>
class runner {
 public:
  runner(C& c, model& m, u64 base, bool phase2, std::array<u64, 2>* shared)
      : c_(c), m_(m), base_(base), phase2_(phase2), shared_(shared) {}

  void run(const std::vector<op>& ops, int script) {
    for (const op& o : ops) {
      if (phase2_ && o.script != script) continue;
      step(o);
    }
    c_.flush();
    m_.sync();
  }

 private:
  u64 key(std::uint8_t b) const { return base_ + b % 8; }

  void step(const op& o) {
    const u64 k = key(o.key);
    const u64 v = o.val;
    switch (o.kind) {
      case 0:
      case 1:
        c_.put(k, v);
        m_.cast(k, v);
        break;
      case 2:
        c_.erase(k);
        m_.cast(k, std::nullopt);
        break;
      case 3:
        if (c_.try_put(k, v)) m_.cast(k, v);
        break;
      case 4:
        if (c_.try_erase(k)) m_.cast(k, std::nullopt);
        break;
      case 5:
      case 6:
        m_.observe("get", k, c_.get(k));
        break;
      case 7:
        m_.observe_presence("contains", k, c_.contains(k));
        break;
      case 8: {
        const std::size_t n = c_.size();
        if (!phase2_) {
          const auto [must, may] = m_.size_bounds();
          if (n < must || n > may) {
            fail("size " + std::to_string(n) + " outside [" + std::to_string(must) + ", " +
                 std::to_string(may) + "]");
          }
        }
        break;
      }
      case 9:
        c_.flush();
        m_.sync();
        break;
      case 10:
        counter(o);
        break;
      case 11:
        transaction(o, std::nullopt);
        break;
      case 12: {
        static constexpr std::array<std::chrono::nanoseconds, 4> kTimeouts = {
            std::chrono::nanoseconds(0), std::chrono::microseconds(50),
            std::chrono::milliseconds(1), std::chrono::seconds(10)};
        transaction(o, kTimeouts[o.val & 3]);
        break;
      }
      case 13:
      case 14:
        snapshot(o);
        break;
      default:  // two casts to one key back to back
        c_.put(k, v);
        c_.put(k, v + 1);
        m_.cast(k, v);
        m_.cast(k, v + 1);
        break;
    }
  }

  void counter(const op& o) {
    const u64 delta = u64{o.val} + 1;
    if (phase2_ && (o.val & 1)) {  // a counter every script adds to
      const std::size_t i = o.key & 1;
      const u64 got = c_.update_counter(kSharedCounter + i, delta);
      if (got < mine_[i] + delta) fail("a shared counter lost this thread's increments");
      mine_[i] += delta;
      (*shared_)[i] += delta;
      m_.sync();
      return;
    }
    const u64 k = key(o.key);
    const u64 got = c_.update_counter(k, delta);
    m_.sync();  // a call: every earlier cast of this thread applied before it
    const u64 want = m_.latest(k).value_or(0) + delta;
    if (got != want) {
      fail("update_counter of key " + std::to_string(k) + " = " + std::to_string(got) +
           ", expected " + std::to_string(want));
    }
    m_.set(k, got);
  }

  void transaction(const op& o, std::optional<std::chrono::nanoseconds> timeout) {
    std::map<u64, value> staged;
    int runs = 0;
    bool throws = false;
    u64 sum_inside = 0;
    auto fn = [&](auto& tx) -> u64 {
      ++runs;
      staged.clear();
      u64 sum = 0;
      auto current = [&](u64 k) {
        auto it = staged.find(k);
        return it != staged.end() ? it->second : m_.latest(k);
      };
      for (const auto& s : o.steps) {
        const u64 k = key(s[0] >> 3);
        const u64 v = s[1];
        switch (s[0] % 6) {
          case 0: {
            const value got = tx.get(k);
            if (got != current(k)) {
              fail("tx.get of key " + std::to_string(k) + " = " + show(got) + ", expected " +
                   show(current(k)));
            }
            sum += got.value_or(1000);
            break;
          }
          case 1:
            if (tx.contains(k) != current(k).has_value()) fail("tx.contains");
            break;
          case 2:
            tx.put(k, v);
            staged[k] = v;
            break;
          case 3:
            tx.erase(k);
            staged[k] = std::nullopt;
            break;
          case 4:
            throws = true;
            throw user_error();
          default:  // re-entrant call: refused, never a deadlock
            try {
              c_.flush();
              fail("flush inside a transaction was not refused");
            } catch (const warden::reentrancy_error&) {
            }
            break;
        }
      }
      sum_inside = sum;
      return sum;
    };
    try {
      const u64 got = timeout ? c_.transact_for(*timeout, fn) : c_.transact(fn);
      if (runs != 1 || throws || got != sum_inside) fail("transaction result");
    } catch (const user_error&) {
      if (runs != 1 || !throws) fail("user_error from nowhere");
      m_.sync();  // the call ran: the thread's earlier casts are applied
      return;
    } catch (const warden::timeout_error&) {
      if (!timeout) fail("timeout_error without a deadline");
      if (runs != 0) fail("a transaction that timed out ran");
      return;  // cancelled: nothing happened, earlier casts may still be pending
    }
    m_.sync();
    for (const auto& [k, v] : staged) m_.set(k, v);
  }

  void snapshot(const op& o) {
    const bool reenter = o.val & 1;
    c_.snapshot([&](auto& view) {
      for (std::uint8_t b = 0; b < 8; ++b) m_.observe("snapshot get", key(b), view.get(key(b)));
      std::array<bool, 8> seen{};
      view.for_each([&](const u64& k, const u64& v) {
        if (k < base_ || k >= base_ + 8) return;
        seen[k - base_] = true;
        m_.observe("snapshot for_each", k, v);
      });
      for (std::uint8_t b = 0; b < 8; ++b) {
        if (!seen[b]) m_.observe("snapshot for_each", key(b), std::nullopt);
      }
      if (reenter) {
        try {
          c_.flush();
          fail("flush inside a snapshot was not refused");
        } catch (const warden::reentrancy_error&) {
        }
      }
      return 0;
    });
  }

  C& c_;
  model& m_;
  const u64 base_;
  const bool phase2_;
  std::array<u64, 2>* shared_;
  std::array<u64, 2> mine_{};
};

template <class C>
void check_everything(C& c, const std::map<u64, u64>& want) {
  c.flush();
  if (c.size() != want.size()) {
    fail("final size " + std::to_string(c.size()) + ", expected " + std::to_string(want.size()));
  }
  for (const auto& [k, v] : want) {
    if (c.get(k) != v) fail("final value of key " + std::to_string(k));
  }
  const std::size_t same = c.snapshot([&](auto& view) {
    std::size_t n = 0;
    view.for_each([&](const u64& k, const u64& v) {
      auto it = want.find(k);
      if (it == want.end() || it->second != v) fail("final snapshot: key " + std::to_string(k));
      ++n;
    });
    return n;
  });
  if (same != want.size()) fail("final snapshot size");
}

template <class C>
void run_all(C& c, const std::vector<op>& ops, int scripts, bool reads_are_calls) {
  // Phase 1: one thread, shared keys.
  model m1(reads_are_calls);
  runner<C>(c, m1, 0, false, nullptr).run(ops, 0);
  // Phase 2: a thread per script, own keys, shared counters.
  std::vector<model> models(static_cast<std::size_t>(scripts), model(reads_are_calls));
  std::vector<std::array<u64, 2>> shared(static_cast<std::size_t>(scripts), {0, 0});
  std::vector<std::thread> threads;
  for (int s = 0; s < scripts; ++s) {
    threads.emplace_back([&, s] {
      const auto i = static_cast<std::size_t>(s);
      runner<C>(c, models[i], 16 * (i + 1), true, &shared[i]).run(ops, s);
    });
  }
  for (auto& t : threads) t.join();
  std::map<u64, u64> want = m1.contents();
  for (const auto& m : models) {
    for (const auto& [k, v] : m.contents()) want[k] = v;
  }
  for (std::size_t i = 0; i < 2; ++i) {
    u64 total = 0;
    for (const auto& s : shared) total += s[i];
    if (total != 0) want[kSharedCounter + i] = total;
  }
  check_everything(c, want);
}

template <class C>
void run_maybe_erased(C&& c, bool erase, const std::vector<op>& ops, int scripts, bool calls) {
  if (erase) {
    warden::any_cache<u64, u64> any(std::move(c));
    run_all(any, ops, scripts, calls);
  } else {
    run_all(c, ops, scripts, calls);
  }
}

}  // namespace

namespace {

void run_scripts(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::uint8_t b0 = in.ConsumeIntegral<std::uint8_t>();
  const std::uint8_t b1 = in.ConsumeIntegral<std::uint8_t>();
  static constexpr std::array<std::size_t, 4> kCapacities = {0, 1, 3, 16};
  const std::size_t capacity = kCapacities[b1 & 3];
  const bool erased = (b1 & 4) != 0;
  const int scripts = 1 + (b1 >> 3) % 3;

  std::vector<op> ops;
  while (in.remaining_bytes() > 0 && ops.size() < 160) {
    op o{};
    const std::uint8_t head = in.ConsumeIntegral<std::uint8_t>();
    o.kind = head & 15;
    o.script = static_cast<std::uint8_t>((head >> 4) % scripts);
    o.key = in.ConsumeIntegral<std::uint8_t>();
    o.val = in.ConsumeIntegral<std::uint8_t>();
    if (o.kind == 11 || o.kind == 12) {
      const int steps = o.key % 6;
      for (int i = 0; i < steps && in.remaining_bytes() > 0; ++i) {
        o.steps.push_back({in.ConsumeIntegral<std::uint8_t>(), in.ConsumeIntegral<std::uint8_t>()});
      }
    }
    ops.push_back(std::move(o));
  }

#if WARDEN_FUZZ_ACTOR
  (void)b0;
  run_maybe_erased(warden::actor<u64, u64>({.mailbox_capacity = capacity}), erased, ops, scripts,
                   /*reads_are_calls=*/true);
#else
  const std::size_t shards = std::size_t{1} << (b0 % 5);
  const std::size_t owners = 1 + (b0 >> 3) % std::min<std::size_t>(shards, 4);
  run_maybe_erased(
      warden::table<u64, u64>({.shards = shards, .owners = owners, .mailbox_capacity = capacity}),
      erased, ops, scripts, /*reads_are_calls=*/false);
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if ((data[0] & 1) != 0) {
    warden_fuzz::run_features(data + 1, size - 1);
  } else {
    run_scripts(data + 1, size - 1);
  }
  return 0;
}
