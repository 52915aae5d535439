// The cache-features mode of warden_fuzz_table / warden_fuzz_actor: one thread drives a cache
// with a size bound, expiry on a warden::manual_clock and the ETS-style calls, and checks every
// result against a sequential model; any disagreement aborts (libFuzzer keeps the input).
//
// Input (after fuzz_cache.cpp's mode byte), read front to back:
//   c0  bit 0: bounded; bits 1-3: max_size - 1 (1..8); bits 4-5: expire_after_write;
//       bits 6-7: expire_after_access (each one of 0, 2 ms, 5 ms, 30 ms)
//   c1  bit 0: record_stats; bit 1: behind any_cache; bits 2-3: the clock's start (0, 0, 1 s,
//       near the int64 limit, where advance saturates); bits 4-5: mailbox capacity (0, 1, 3,
//       16); bit 6: table: asymmetric_fence off
//   c2  table: shards 1 << (c2 & 7) % 5, owners 1 + (c2 >> 3) % min(shards, 3)
//   then up to kMaxOps operations of 3 bytes [kind] [a] [b]; the key is a % 16; kind % 25:
//    0-1 put   2 put with ttl b   3 erase   4-5 get   6 contains   7 get_versioned   8 flush
//    9 advance(b)   10 size   11 get_or_load (loader by b)   12 insert_new   13 take
//    14 update (function by b)   15 erase_if (predicate by a, b)   16 clear
//    17 put_if_version (version by b)   18 update_counter   19 snapshot   20 transact
//    21 stats   22 visit   23 flush, dump and restore   24 flush then advance(b)
//
// The model. Every write is of a fresh value (a serial number << 20, plus an input byte), so a
// value names the write that made it. For each key the model keeps the state as of the last
// synchronisation (a flush, or any call: both wait for this thread's earlier casts) and one
// state per cast sent since. A table's read may return any of them from the last one read on
// (it sees a prefix of the owner's FIFO that never goes back); an actor's read is a call and
// must match the last. Each state is a value (or absent) and bounds [lo, hi] on its deadline:
//  - a cast is applied at an unknown time between its sending and the next synchronisation, so
//    its deadline is known only within that span (exact when no advance() came between);
//  - expire_after_access: a read at t extends the deadline to min(write deadline, t + eaa), to
//    within the 1 ms resolution the contract allows; a table owner learns of the read when it
//    drains its access records (at the latest at the next flush, or a call for that key), so
//    until then a table read may still see the old deadline;
//  - an entry is certainly live while now < lo and certainly gone once now >= hi. A read right
//    after advance() must honour both, and so must the owner-side calls.
// With max_size, any entry may have been evicted (a read may find it absent), except the
// newest write: "an entry just written is present until later writes push it out". An entry
// seen absent when nothing can bring it back (no cast pending, no read extension pending) is
// absent from then on: erased, evicted and expired keys never come back. After every flush
// the whole cache is compared with the model (one snapshot: values, for_each, size), and
// size() <= max_size is checked wherever size is read. get_or_load's loader runs in this
// thread: its result is stored unless the loader itself put or erased the key (that write
// wins); a loader that throws stores nothing. Versions are never 0, one per write, and a stale
// one never lets put_if_version write.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <warden/warden.hpp>

#include "fuzz_common.hpp"
#include "fuzz_dump.hpp"

#ifndef WARDEN_FUZZ_ACTOR
#define WARDEN_FUZZ_ACTOR 0
#endif

namespace warden_fuzz {
namespace {

using u64 = std::uint64_t;
using i64 = std::int64_t;
using value = std::optional<u64>;

constexpr i64 kNever = std::numeric_limits<i64>::max();
constexpr i64 kNone = std::numeric_limits<i64>::min();
constexpr i64 kMs = 1'000'000;
constexpr u64 kKeys = 16;
constexpr std::size_t kMaxOps = 256;

i64 add_sat(i64 t, i64 d) { return d >= kNever - t ? kNever : t + d; }
// An entry with deadline `d` is live at `now` (kNever: always, even when the clock saturates).
bool live_at(i64 now, i64 d) { return d == kNever || now < d; }

struct config {
  bool actor = false;
  std::size_t max_size = 0;  // 0: unbounded
  i64 eaw = 0;               // ns; 0: off
  i64 eaa = 0;
  bool stats = false;
};

// One state of a key: what a write (or an erase) left.
struct state {
  value v;             // nullopt: absent
  u64 epoch = 0;       // the write that made it (0: absent)
  i64 lo = kNever;     // deadline >= lo: certainly live while now < lo
  i64 hi = kNever;     // deadline <= hi: certainly gone once now >= hi (when not open)
  bool open = false;   // a cast not known to be applied: applied at a time in [sent, now]
  i64 dl = kNever;     // deadline offset from the write's time (kNever: none)
  i64 wdl = kNever;    // the write deadline's offset (caps an access extension)
  i64 wd_lo = kNever;  // bounds on the write deadline
  i64 wd_hi = kNever;
  bool fixed = false;  // put with its own ttl: reads never extend it
  i64 ext_lo = kNone;  // table: lower bound from reads, once the owner has drained them
  i64 ext_hi = kNone;  // upper bound from reads (the owner may drain them at any time)
};

struct key_model {
  std::vector<state> s{state{}};  // s[0]: as of the last sync; then one per cast since
  std::size_t lb = 0;             // table: the oldest state a read may still return
  std::map<u64, u64> version_of;  // epoch -> version seen
  std::map<u64, u64> epoch_of;    // version -> epoch
  bool unswept = false;           // seen gone (expired) but perhaps still counted by size()
};

enum class ext { none, may, must };

class model {
 public:
  model(const config& cfg, const warden::manual_clock& clk) : cfg_(cfg), clk_(clk) {}

  i64 now() const { return clk_.now().count(); }
  const config& cfg() const { return cfg_; }
  key_model& key(u64 k) { return keys_[k]; }
  state& cur(u64 k) { return keys_[k].s.back(); }
  bool any_deadline() const { return any_deadline_; }
  bool swept() const { return swept_; }
  void set_swept(bool b) { swept_ = b; }

  u64 fresh(std::uint8_t b) { return (++serial_ << 20) | b; }

  i64 hi_of(const state& c) const {
    const i64 h = c.open ? add_sat(now(), c.dl) : c.hi;
    return std::max(h, c.ext_hi);
  }
  bool evictable(const state& c) const { return cfg_.max_size != 0 && c.epoch != newest_; }
  bool may_live(const state& c) const { return c.v.has_value() && live_at(now(), hi_of(c)); }
  bool must_live(const state& c) const {
    return c.v.has_value() && !evictable(c) && live_at(now(), c.lo);
  }
  bool may_absent(const state& c) const { return !must_live(c); }
  bool matches(const state& c, const value& got) const {
    return got ? (c.v == got && may_live(c)) : may_absent(c);
  }

  // The state a write of `v` leaves: `ttl` its own time to live (else the options'); at a
  // call its time is now, for a cast some time from now until the next sync.
  state written(u64 v, std::optional<i64> ttl, bool at_call) {
    state c;
    c.v = v;
    c.epoch = ++epochs_;
    if (ttl) {
      c.dl = c.wdl = *ttl;
      c.fixed = true;
    } else {
      c.wdl = cfg_.eaw != 0 ? cfg_.eaw : kNever;
      c.dl = std::min(c.wdl, cfg_.eaa != 0 ? cfg_.eaa : kNever);
    }
    if (c.dl != kNever) any_deadline_ = true;
    const i64 t = now();
    c.lo = add_sat(t, c.dl);
    c.wd_lo = add_sat(t, c.wdl);
    if (at_call) {
      c.hi = c.lo;
      c.wd_hi = c.wd_lo;
    } else {
      c.open = true;
    }
    newest_ = c.epoch;  // present until later writes push it out
    return c;
  }
  // Writes where none is the newest (a transaction's).
  void no_newest() { newest_ = 0; }

  void cast(u64 k, state c) { keys_[k].s.push_back(std::move(c)); }
  void set(u64 k, state c) {
    key_model& m = keys_[k];
    m.s = {std::move(c)};
    m.lb = 0;
  }
  // Key `k` was found gone (evicted or expired) with nothing to bring it back: it reads as
  // absent from now on, though an expired entry may count in size() until the next sweep.
  void gone(u64 k) {
    if (cur(k).v) keys_[k].unswept = true;
    set(k, state{});
  }
  // A flush: every owner has removed what had expired.
  void swept_now() {
    swept_ = true;
    for (auto& m : keys_) m.unswept = false;
  }

  // A call or flush: every cast this thread sent is applied now. The owners have drained this
  // thread's access records: all of them at a flush or barrier (`all`), else the call's key's.
  void sync(bool all, std::optional<u64> key = std::nullopt) {
    for (u64 k = 0; k < kKeys; ++k) {
      key_model& m = keys_[k];
      state c = m.s.back();
      if (c.open) {
        c.hi = add_sat(now(), c.dl);
        c.wd_hi = add_sat(now(), c.wdl);
        c.open = false;
      }
      if (all || key == k) {
        c.lo = std::max(c.lo, c.ext_lo);
        c.ext_lo = kNone;
      }
      m.s = {std::move(c)};
      m.lb = 0;
    }
  }

  // A read of `k` returned `got`; returns the index of the state it matched. A hit extends
  // an access deadline (`e`: surely, perhaps, or not at all).
  std::size_t observe(const char* what, u64 k, const value& got, ext e) {
    key_model& m = keys_[k];
    const std::size_t from = cfg_.actor ? m.s.size() - 1 : m.lb;
    for (std::size_t j = from; j < m.s.size(); ++j) {
      if (!matches(m.s[j], got)) continue;
      m.lb = j;
      if (got) {
        extend(m.s[j], e);
      } else if (m.s.size() == 1 && m.s[0].ext_lo <= m.s[0].lo) {
        gone(k);  // nothing can bring it back
      }
      return j;
    }
    std::string states;
    for (std::size_t j = from; j < m.s.size(); ++j) {
      const state& c = m.s[j];
      states += " [" + show(c.v) + " lo " + std::to_string(c.lo) + " hi " +
                std::to_string(hi_of(c)) + (c.open ? " open" : "") +
                (evictable(c) ? " evictable" : "") + "]";
    }
    fail(std::string(what) + " of key " + std::to_string(k) + " = " + show(got) + " at " +
         std::to_string(now()) + "; the model allows:" + states);
  }

  // As observe, for a read that tells presence only.
  void observe_presence(const char* what, u64 k, bool present) {
    key_model& m = keys_[k];
    const std::size_t from = cfg_.actor ? m.s.size() - 1 : m.lb;
    for (std::size_t j = from; j < m.s.size(); ++j) {
      if (!(present ? may_live(m.s[j]) : may_absent(m.s[j]))) continue;
      observe(what, k, present ? m.s[j].v : value(), ext::must);
      return;
    }
    fail(std::string(what) + " of key " + std::to_string(k) + " = " +
         (present ? "present" : "absent") + ", which no state the model allows shows");
  }

  // A hit at now on state `c` (expire_after_access).
  void extend(state& c, ext e) {
    if (e == ext::none || cfg_.eaa == 0 || c.fixed || !c.v || c.lo == kNever) return;
    const i64 t = now();
    const i64 wd_hi = c.open ? add_sat(t, c.wdl) : c.wd_hi;
    c.ext_hi = std::max(c.ext_hi, std::min(wd_hi, add_sat(t, cfg_.eaa)));
    if (e == ext::may) return;
    const i64 lo = std::min(c.wd_lo, add_sat(t, cfg_.eaa)) - kMs;  // the 1 ms resolution
    if (cfg_.actor) {
      c.lo = std::max(c.lo, lo);  // the actor's reads run on the owner
    } else {
      c.ext_lo = std::max(c.ext_lo, lo);
    }
  }

  void version(u64 k, u64 epoch, u64 ver) {
    key_model& m = keys_[k];
    check(ver != 0, "get_versioned of key " + std::to_string(k) + ": version 0");
    const auto [a, new_a] = m.version_of.emplace(epoch, ver);
    check(a->second == ver, "the version of key " + std::to_string(k) +
                                " changed without a write: " + std::to_string(a->second) +
                                " then " + std::to_string(ver));
    const auto [b, new_b] = m.epoch_of.emplace(ver, epoch);
    check(b->second == epoch,
          "two writes of key " + std::to_string(k) + " share version " + std::to_string(ver));
  }

 private:
  const config cfg_;
  const warden::manual_clock& clk_;
  std::array<key_model, kKeys> keys_;
  u64 serial_ = 0;
  u64 epochs_ = 0;
  u64 newest_ = 0;
  bool any_deadline_ = false;
  bool swept_ = true;  // no advance() since the last flush: no expired entry is counted
};

struct fop {
  std::uint8_t kind, a, b;
};

constexpr std::array<i64, 10> kAdvances = {0,       1,       kMs - 1,  kMs,           kMs + 1,
                                           2 * kMs, 5 * kMs, 20 * kMs, 1'000'000'000, kNever};

template <class C>
class runner {
 public:
  runner(C& c, warden::manual_clock& clk, const config& cfg) : c_(c), clk_(clk), m_(cfg, clk) {}

  void run(const std::vector<fop>& ops) {
    for (const fop& o : ops) step(o);
    flush();
    check_stats();
  }

 private:
  bool actor() const { return m_.cfg().actor; }
  void actor_sync() {
    if (actor()) m_.sync(true);  // the actor's reads are calls
  }

  void step(const fop& o) {
    const u64 k = o.a % kKeys;
    if (std::getenv("WARDEN_FUZZ_TRACE") != nullptr) {
      std::fprintf(stderr, "op %d key %llu b %d at %lld\n", o.kind % 24,
                   static_cast<unsigned long long>(k), o.b, static_cast<long long>(m_.now()));
    }
    switch (o.kind % 25) {
      case 0:
      case 1: {
        const u64 v = m_.fresh(o.b);
        c_.put(k, v);
        m_.cast(k, m_.written(v, std::nullopt, false));
        break;
      }
      case 2:
        put_ttl(k, o.b);
        break;
      case 3:
        c_.erase(k);
        m_.cast(k, state{});
        break;
      case 4:
      case 5:
        get(k);
        break;
      case 6:
        contains(k);
        break;
      case 7:
        get_versioned(k);
        break;
      case 8:
        flush();
        break;
      case 9:
        advance(o.b);
        break;
      case 10:
        size();
        break;
      case 11:
        get_or_load(k, o.b);
        break;
      case 12:
        insert_new(k, o.b);
        break;
      case 13:
        take(k);
        break;
      case 14:
        update(k, o.b);
        break;
      case 15:
        erase_if(o.a, o.b);
        break;
      case 16:
        c_.clear();
        for (u64 i = 0; i < kKeys; ++i) m_.cast(i, state{});
        break;
      case 17:
        put_if_version(k, o.b);
        break;
      case 18:
        update_counter(k, o.b);
        break;
      case 19:
        snapshot();
        break;
      case 20:
        transact(o.a, o.b);
        break;
      case 21:
        check_stats();
        break;
      case 22:
        visit(k);
        break;
      case 23:
        dump_restore();
        break;
      default:
        flush();
        advance(o.b);
        break;
    }
  }

  // ---- reads --------------------------------------------------------------------------------
  void get(u64 k) {
    actor_sync();
    const value got = c_.get(k);
    m_.observe("get", k, got, ext::must);
    (got ? hits_ : misses_) += 1;
  }

  void contains(u64 k) {
    actor_sync();
    m_.observe_presence("contains", k, c_.contains(k));
  }

  void get_versioned(u64 k) {
    actor_sync();
    const auto got = c_.get_versioned(k);
    const std::size_t j =
        m_.observe("get_versioned", k, got ? value(got->value) : value(), ext::must);
    if (got) m_.version(k, m_.key(k).s[j].epoch, got->version);
  }

  void visit(u64 k) {
    actor_sync();
    int calls = 0;
    u64 seen = 0;
    const bool found = c_.visit(k, [&](const u64& v) {
      ++calls;
      seen = v;
    });
    check(calls == (found ? 1 : 0), "visit called its function " + std::to_string(calls) +
                                        " times and returned " + std::to_string(found));
    m_.observe("visit", k, found ? value(seen) : value(), ext::must);
  }

  void size() {
    const std::size_t n = c_.size();
    const config& cfg = m_.cfg();
    if (cfg.max_size != 0) {
      check(n <= cfg.max_size,
            "size() " + std::to_string(n) + " > max_size " + std::to_string(cfg.max_size));
    }
    if (actor()) m_.sync(true);  // size is a call (and removes the expired first)
    const bool swept = actor() || m_.swept();
    std::size_t must = 0, may = 0;
    for (u64 k = 0; k < kKeys; ++k) {
      key_model& km = m_.key(k);
      bool all = true, any = km.unswept && !swept;
      for (std::size_t j = actor() ? km.s.size() - 1 : km.lb; j < km.s.size(); ++j) {
        const state& c = km.s[j];
        all = all && m_.must_live(c);
        any = any || (c.v.has_value() && (!swept || m_.may_live(c)));
      }
      must += all ? 1 : 0;
      may += any ? 1 : 0;
    }
    check(n >= must && n <= may, "size() " + std::to_string(n) + " outside [" +
                                     std::to_string(must) + ", " + std::to_string(may) + "]");
  }

  // One snapshot of all keys: get, for_each and (table) size agree with each other and with
  // the model.
  void snapshot() {
    actor_sync();
    const config& cfg = m_.cfg();
    const bool exact_size = m_.swept() || actor();
    c_.snapshot([&](auto& view) {
      std::array<value, kKeys> got;
      for (u64 k = 0; k < kKeys; ++k) {
        got[k] = view.get(k);
        check(view.contains(k) == got[k].has_value(), "snapshot contains/get disagree");
        m_.observe("snapshot get", k, got[k], ext::none);
      }
      std::array<bool, kKeys> seen{};
      std::size_t n = 0;
      view.for_each([&](const u64& k, const u64& v) {
        check(k < kKeys, "snapshot for_each: key " + std::to_string(k) + " never written");
        check(!seen[k], "snapshot for_each: key " + std::to_string(k) + " twice");
        seen[k] = true;
        ++n;
        check(got[k] == v, "snapshot for_each of key " + std::to_string(k) + " = " +
                               std::to_string(v) + ", get in the same snapshot = " + show(got[k]));
      });
      for (u64 k = 0; k < kKeys; ++k) {
        check(seen[k] == got[k].has_value(),
              "snapshot for_each missed key " + std::to_string(k) + " that get found");
      }
      if (cfg.max_size != 0) {
        check(n <= cfg.max_size, "snapshot holds " + std::to_string(n) + " > max_size");
      }
      if constexpr (requires { view.size(); }) {
        const std::size_t sz = view.size();
        if (cfg.max_size != 0) check(sz <= cfg.max_size, "snapshot size() > max_size");
        check(sz >= n, "snapshot size() below the live entries it shows");
        if (exact_size) {
          check(sz == n, "snapshot size() " + std::to_string(sz) + " counts expired entries (" +
                             std::to_string(n) + " live) after a flush");
        }
      }
      return 0;
    });
  }

  // ---- casts --------------------------------------------------------------------------------
  void put_ttl(u64 k, std::uint8_t b) {
    using namespace std::chrono;
    const u64 v = m_.fresh(b);
    switch (b % 8) {
      case 0:
        return put_for(k, v, nanoseconds(0), 0);
      case 1:
        return put_for(k, v, nanoseconds(1), 1);
      case 2:
        return put_for(k, v, milliseconds(1), kMs);
      case 3:
        return put_for(k, v, milliseconds(3), 3 * kMs);
      case 4:
        return put_for(k, v, milliseconds(10), 10 * kMs);
      case 5:
        return put_for(k, v, seconds(1), 1000 * kMs);
      case 6:
        return put_for(k, v, hours::max(), kNever);  // saturates: never expires
      default:
        try {
          c_.put(k, v, milliseconds(-1));
          fail("put with a negative ttl was accepted");
        } catch (const std::invalid_argument&) {
        }
        return;
    }
  }
  template <class D>
  void put_for(u64 k, u64 v, D ttl, i64 ns) {
    c_.put(k, v, ttl);
    m_.cast(k, m_.written(v, ns, false));
  }

  void advance(std::uint8_t b) {
    clk_.advance(std::chrono::nanoseconds(kAdvances[b % kAdvances.size()]));
    m_.set_swept(false);
  }

  // ---- calls --------------------------------------------------------------------------------
  void flush() {
    c_.flush();
    m_.sync(true);
    m_.swept_now();
    snapshot();
    size();
  }

  void insert_new(u64 k, std::uint8_t b) {
    m_.sync(false, k);
    const u64 v = m_.fresh(b);
    const bool done = c_.insert_new(k, v);
    state& c = m_.cur(k);
    if (done) {
      check(m_.may_absent(c), "insert_new of key " + std::to_string(k) + " inserted over " +
                                  show(c.v) + " (certainly live)");
      m_.set(k, m_.written(v, std::nullopt, true));
    } else {
      check(m_.may_live(c), "insert_new of key " + std::to_string(k) +
                                " refused, but the model has it " + show(c.v) +
                                ", certainly not live");
      m_.extend(c, ext::may);
    }
  }

  void take(u64 k) {
    m_.sync(false, k);
    const value got = c_.take(k);
    const state& c = m_.cur(k);
    check(m_.matches(c, got),
          "take of key " + std::to_string(k) + " = " + show(got) + ", the model has " + show(c.v));
    if (got) {
      m_.set(k, state{});
    } else {
      m_.gone(k);  // an expired entry stays until the owner sweeps it
    }
  }

  void update_counter(u64 k, std::uint8_t b) {
    m_.sync(false, k);
    const u64 delta = static_cast<u64>(b % 16) + 1;
    const u64 got = c_.update_counter(k, delta);
    const state& c = m_.cur(k);
    const bool from_value = m_.may_live(c) && got == *c.v + delta;
    const bool from_zero = m_.may_absent(c) && got == delta;
    check(from_value || from_zero, "update_counter of key " + std::to_string(k) + " by " +
                                       std::to_string(delta) + " = " + std::to_string(got) +
                                       ", the model has " + show(c.v));
    m_.set(k, m_.written(got, std::nullopt, true));
  }

  void update(u64 k, std::uint8_t b) {
    m_.sync(false, k);
    const int mode = b % 6;
    const u64 fresh = m_.fresh(b);
    int calls = 0;
    value after;
    bool seen_before = false;
    auto fn = [&](const value& before) -> value {
      ++calls;
      seen_before = before.has_value();
      check(m_.matches(m_.cur(k), before), "update of key " + std::to_string(k) + " saw " +
                                               show(before) + ", the model has " +
                                               show(m_.cur(k).v));
      switch (mode) {
        case 0:
          after = fresh;
          break;
        case 1:
          after = std::nullopt;
          break;
        case 2:
          throw user_error();
        case 3:
          after = before ? value(fresh) : std::nullopt;
          break;
        case 4:
          reentrant("update", k);
          after = fresh;
          break;
        default:
          after = before ? std::nullopt : value(fresh);
          break;
      }
      return after;
    };
    value got;
    try {
      got = c_.update(k, fn);
    } catch (const user_error&) {
      check(mode == 2 && calls == 1, "update: an exception nobody threw");
      return;
    }
    check(calls == 1 && mode != 2, "update ran its function " + std::to_string(calls) + " times");
    check(got == after, "update returned " + show(got) + ", its function " + show(after));
    if (after) {
      m_.set(k, m_.written(*after, std::nullopt, true));
    } else if (seen_before) {
      m_.set(k, state{});
    } else {
      m_.gone(k);
    }
  }

  void put_if_version(u64 k, std::uint8_t b) {
    key_model& km = m_.key(k);
    const u64 latest = m_.cur(k).epoch;  // the latest state stays the latest at the sync
    const auto known = km.version_of.find(latest);
    std::optional<u64> stale;
    for (const auto& [epoch, ver] : km.version_of) {
      if (epoch != latest) stale = ver;  // the newest stale one
    }
    u64 version = 0;
    bool is_stale = false;
    switch (b % 4) {
      case 0:
      case 3:
        if (latest != 0 && known != km.version_of.end()) {
          version = known->second;
        } else if (stale) {
          version = *stale;
          is_stale = true;
        }
        break;
      case 1:
        if (!stale) return;
        version = *stale;
        is_stale = true;
        break;
      default:
        break;
    }
    m_.sync(false, k);
    const state& c = m_.cur(k);
    const u64 v = m_.fresh(b);
    const bool wrote = c_.put_if_version(k, v, version);
    const std::string what = "put_if_version of key " + std::to_string(k) + " at version " +
                             std::to_string(version) + (is_stale ? " (stale)" : "") +
                             (wrote ? " wrote" : " refused") + "; the model has " + show(c.v);
    if (is_stale) {
      check(!wrote, what);
    } else if (version == 0) {
      check(wrote ? m_.may_absent(c) : m_.may_live(c), what);
    } else {
      check(wrote ? m_.may_live(c) : m_.may_absent(c), what);
      if (!wrote) m_.gone(k);
    }
    if (wrote) m_.set(k, m_.written(v, std::nullopt, true));
  }

  void erase_if(std::uint8_t a, std::uint8_t b) {
    m_.sync(true);  // a barrier on every owner
    const int mode = a % 6;
    const int throw_at = 1 + (b >> 4) % 4;
    int calls = 0;
    std::array<int, kKeys> seen{};  // 0 not called, 1 false, 2 true
    auto pred = [&](const u64& k, const u64& v) -> bool {
      ++calls;
      check(k < kKeys, "erase_if: key " + std::to_string(k) + " never written");
      check(seen[k] == 0, "erase_if: predicate called twice for key " + std::to_string(k));
      check(m_.matches(m_.cur(k), v), "erase_if: predicate given key " + std::to_string(k) + " = " +
                                          std::to_string(v) + ", the model has " +
                                          show(m_.cur(k).v));
      bool out = false;
      switch (mode) {
        case 0:
          out = true;
          break;
        case 1:
          out = ((v ^ (v >> 20) ^ b) & 1) != 0;
          break;
        case 2:
          out = (k & 1) == (b & 1);
          break;
        case 3:
          if (calls == throw_at) throw user_error();
          out = (k & 2) != 0;
          break;
        case 4:
          if (calls == 1) reentrant("erase_if", k);
          out = ((k ^ b) & 4) != 0;
          break;
        default:
          break;
      }
      seen[k] = out ? 2 : 1;
      return out;
    };
    std::size_t n = 0;
    try {
      n = c_.erase_if(pred);
    } catch (const user_error&) {
      check(mode == 3 && calls == throw_at, "erase_if: an exception nobody threw");
      return;  // nothing removed
    }
    std::size_t removed = 0;
    for (u64 k = 0; k < kKeys; ++k) {
      if (seen[k] == 2) {
        ++removed;
        m_.set(k, state{});
      } else if (seen[k] == 0) {
        check(m_.may_absent(m_.cur(k)), "erase_if never showed key " + std::to_string(k) + " = " +
                                            show(m_.cur(k).v) + " (certainly live)");
        m_.gone(k);
      }
    }
    check(n == removed, "erase_if returned " + std::to_string(n) + ", its predicate chose " +
                            std::to_string(removed));
  }

  void transact(std::uint8_t a, std::uint8_t b) {
    m_.sync(true);  // a barrier on every owner
    const u64 k1 = a % kKeys, k2 = b % kKeys, k3 = (a >> 4) % kKeys;
    const u64 v2 = m_.fresh(b);
    const bool erase3 = (b & 0x10) != 0, reread = (b & 0x20) != 0, throws = (b & 0xc0) == 0xc0;
    int runs = 0;
    auto fn = [&](auto& tx) -> u64 {
      ++runs;
      const value got = tx.get(k1);
      check(m_.matches(m_.cur(k1), got), "tx.get of key " + std::to_string(k1) + " = " + show(got) +
                                             ", the model has " + show(m_.cur(k1).v));
      tx.put(k2, v2);
      if (erase3) tx.erase(k3);
      if (reread) {
        const value want = erase3 && k3 == k2 ? value() : value(v2);
        check(tx.get(k2) == want, "tx.get of a key the transaction wrote");
      }
      if (throws) throw user_error();
      return got.value_or(7);
    };
    try {
      (void)c_.transact(fn);
    } catch (const user_error&) {
      check(throws && runs == 1, "transact: an exception nobody threw");
      return;
    }
    check(runs == 1 && !throws, "transact ran its function " + std::to_string(runs) + " times");
    m_.set(k2, m_.written(v2, std::nullopt, true));
    if (erase3) m_.set(k3, state{});
    m_.no_newest();
  }

  void get_or_load(u64 k, std::uint8_t b) {
    const int mode = b % 6;
    const u64 loaded = m_.fresh(b);
    const u64 other = (k + 1) % kKeys;
    int runs = 0;
    auto loader = [&](const u64& key) -> u64 {
      ++runs;
      check(key == k, "get_or_load gave its loader key " + std::to_string(key));
      // The miss was confirmed by a call on the key's owner: every earlier cast is applied.
      m_.sync(false, k);
      check(m_.may_absent(m_.cur(k)),
            "get_or_load loaded key " + std::to_string(k) +
                ", which the model has certainly live = " + show(m_.cur(k).v));
      m_.gone(k);
      switch (mode) {
        case 1:
          throw user_error();
        case 2: {  // a put during the load wins over the loaded value
          const u64 w = m_.fresh(b);
          c_.put(k, w);
          m_.cast(k, m_.written(w, std::nullopt, false));
          break;
        }
        case 3:  // so does an erase
          c_.erase(k);
          m_.cast(k, state{});
          break;
        case 4:
          try {
            (void)c_.get_or_load(k, [](const u64&) -> u64 { return 1; });
            fail("get_or_load of its own key from inside the loader was not refused");
          } catch (const warden::reentrancy_error&) {
          }
          break;
        case 5: {
          const u64 w = m_.fresh(b);
          c_.put(other, w);
          m_.cast(other, m_.written(w, std::nullopt, false));
          break;
        }
        default:
          break;
      }
      return loaded;
    };
    if (actor()) m_.sync(true);
    const std::size_t pending = m_.key(k).s.size();
    u64 got = 0;
    try {
      got = c_.get_or_load(k, loader);
    } catch (const user_error&) {
      check(mode == 1 && runs == 1, "get_or_load: an exception nobody threw");
      ++loads_;
      ++load_failures_;
      m_.sync(false, k);  // ended by a call: nothing stored
      return;
    }
    if (runs == 0) {
      // A hit: the table's lock-free read (any state from the last one read on), or the
      // call that found the key once the earlier casts were applied (the latest state).
      const std::size_t j = m_.observe("get_or_load", k, got, ext::none);
      // Found by the read (which counts a hit and extends an access deadline) unless the read
      // missed a state that the call then found.
      const bool by_read = actor() || pending == 1 || j + 1 < pending;
      m_.extend(m_.key(k).s[j], by_read ? ext::must : ext::may);
      if (by_read) ++hits_;
      return;
    }
    check(runs == 1, "get_or_load ran its loader " + std::to_string(runs) + " times");
    check(got == loaded,
          "get_or_load returned " + std::to_string(got) + ", its loader " + std::to_string(loaded));
    ++loads_;
    m_.sync(false, k);  // the load ends with a call on the key's owner
    if (mode != 2 && mode != 3) m_.set(k, m_.written(loaded, std::nullopt, true));
  }

  // flush, dump (its values and times to live must agree with the model), and restore the
  // dump: every live entry is written again with the same value and deadline (and, having a
  // ttl of its own now, is no longer extended by reads).
  void dump_restore() {
    flush();
    std::stringstream out;
    c_.dump(out);
    const std::string bytes = out.str();
    const auto entries = parse<u64, u64>(bytes);
    check(entries.has_value(), "dump() wrote something the dump reader rejects");
    const i64 t = m_.now();
    std::array<std::optional<i64>, kKeys> ttl;
    std::array<u64, kKeys> val{};
    for (const auto& e : *entries) {
      check(e.key < kKeys && !ttl[e.key],
            "dump() has key " + std::to_string(e.key) + " twice or never written");
      ttl[e.key] = e.ttl;
      val[e.key] = e.value;
      const state& c = m_.cur(e.key);
      const i64 deadline = e.ttl < 0 ? kNever : add_sat(t, e.ttl);
      check(e.ttl != 0 && m_.may_live(c) && c.v == e.value && deadline >= c.lo &&
                deadline <= m_.hi_of(c),
            "dump() has key " + std::to_string(e.key) + " = " + std::to_string(e.value) + " with " +
                std::to_string(e.ttl) + " ns to live at " + std::to_string(t) + "; the model has " +
                show(c.v) + ", deadline in [" + std::to_string(c.lo) + ", " +
                std::to_string(m_.hi_of(c)) + "]");
    }
    for (u64 k = 0; k < kKeys; ++k) {
      check(ttl[k].has_value() || m_.may_absent(m_.cur(k)),
            "dump() lacks key " + std::to_string(k) + ", certainly live = " + show(m_.cur(k).v));
    }
    std::istringstream in(bytes);
    c_.restore(in);
    m_.sync(true);
    for (u64 k = 0; k < kKeys; ++k) {
      if (!ttl[k]) {
        m_.gone(k);
      } else {
        m_.set(k,
               m_.written(val[k], *ttl[k] < 0 ? std::nullopt : std::optional<i64>(*ttl[k]), true));
      }
    }
    m_.no_newest();  // one batch: the bound may evict any of it
  }

  void reentrant(const char* where, u64 k) {
    try {
      c_.put(k, 1);
      fail(std::string("a put inside ") + where + " was not refused");
    } catch (const warden::reentrancy_error&) {
    }
    try {
      (void)c_.update_counter(k, 1);
      fail(std::string("update_counter inside ") + where + " was not refused");
    } catch (const warden::reentrancy_error&) {
    }
  }

  void check_stats() {
    const warden::cache_stats st = c_.stats();
    const config& cfg = m_.cfg();
    if (!cfg.stats) {
      check(st.hits == 0 && st.misses == 0 && st.loads == 0 && st.load_failures == 0 &&
                st.evictions == 0 && st.expirations == 0,
            "stats counted without record_stats");
      return;
    }
    check(st.loads == loads_, "stats().loads " + std::to_string(st.loads) + ", loader ran " +
                                  std::to_string(loads_) + " times");
    check(st.load_failures == load_failures_,
          "stats().load_failures " + std::to_string(st.load_failures) + ", loader threw " +
              std::to_string(load_failures_) + " times");
    check(st.hits >= hits_, "stats().hits " + std::to_string(st.hits) + " < the " +
                                std::to_string(hits_) + " hits of get and get_or_load");
    check(st.misses >= misses_, "stats().misses " + std::to_string(st.misses) + " < the " +
                                    std::to_string(misses_) + " misses of get");
    if (cfg.max_size == 0) check(st.evictions == 0, "stats().evictions on an unbounded cache");
    if (!m_.any_deadline()) {
      check(st.expirations == 0, "stats().expirations, but no entry ever had a deadline");
    }
  }

  C& c_;
  warden::manual_clock& clk_;
  model m_;
  u64 hits_ = 0, misses_ = 0, loads_ = 0, load_failures_ = 0;
};

template <class C>
void run_maybe_erased(C&& c, bool erase, warden::manual_clock& clk, const config& cfg,
                      const std::vector<fop>& ops) {
  if (erase) {
    warden::any_cache<u64, u64> any(std::move(c));
    runner<warden::any_cache<u64, u64>>(any, clk, cfg).run(ops);
  } else {
    runner<std::remove_cvref_t<C>>(c, clk, cfg).run(ops);
  }
}

constexpr std::array<i64, 4> kExpiries = {0, 2 * kMs, 5 * kMs, 30 * kMs};
constexpr std::array<i64, 4> kStarts = {0, 0, 1'000'000'000, kNever - 50 * kMs};
constexpr std::array<std::size_t, 4> kCapacities = {0, 1, 3, 16};

}  // namespace

void run_features(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  const std::uint8_t c0 = in.next(), c1 = in.next(), c2 = in.next();
  config cfg;
  cfg.actor = WARDEN_FUZZ_ACTOR != 0;
  cfg.max_size = (c0 & 1) != 0 ? 1 + ((c0 >> 1) & 7) : 0;
  cfg.eaw = kExpiries[(c0 >> 4) & 3];
  cfg.eaa = kExpiries[(c0 >> 6) & 3];
  cfg.stats = (c1 & 1) != 0;
  const bool erased = (c1 & 2) != 0;
  warden::manual_clock clk{std::chrono::nanoseconds(kStarts[(c1 >> 2) & 3])};
  const std::size_t capacity = kCapacities[(c1 >> 4) & 3];

  std::vector<fop> ops;
  while (in.left() > 0 && ops.size() < kMaxOps) {
    const std::uint8_t kind = in.next(), a = in.next(), b = in.next();
    ops.push_back({kind, a, b});
  }

#if WARDEN_FUZZ_ACTOR
  (void)c2;
  warden::actor<u64, u64> c({.mailbox_capacity = capacity,
                             .max_size = cfg.max_size,
                             .expire_after_write = std::chrono::nanoseconds(cfg.eaw),
                             .expire_after_access = std::chrono::nanoseconds(cfg.eaa),
                             .clock = &clk,
                             .record_stats = cfg.stats});
#else
  const std::size_t shards = std::size_t{1} << ((c2 & 7) % 5);
  const std::size_t owners = 1 + (c2 >> 3) % std::min<std::size_t>(shards, 3);
  if (cfg.max_size != 0) cfg.max_size = std::max(cfg.max_size, owners);
  warden::table<u64, u64> c({.shards = shards,
                             .owners = owners,
                             .mailbox_capacity = capacity,
                             .asymmetric_fence = (c1 & 0x40) == 0,
                             .max_size = cfg.max_size,
                             .expire_after_write = std::chrono::nanoseconds(cfg.eaw),
                             .expire_after_access = std::chrono::nanoseconds(cfg.eaa),
                             .clock = &clk,
                             .record_stats = cfg.stats});
#endif
  run_maybe_erased(std::move(c), erased, clk, cfg, ops);
}

}  // namespace warden_fuzz
