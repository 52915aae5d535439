// Fault injection for warden's fault, shutdown and lifecycle tests: a key type and a value
// type whose Hash, equality and copies (constructor and assignment) throw at random, seeded,
// at a global rate that a test turns to 0 to inspect the cache afterwards. Their moves never
// throw (warden requires nothrow-movable keys and values). Every instance is counted and
// carries a canary, so an operation on something that was never constructed (or a leak) shows
// up as a nonzero `live` count or `corrupt` count once every cache is gone.
//
// Threads the library starts (owners) are in zone::owner; test threads declare themselves
// clients (a transaction or snapshot function that runs on an owner on a client's behalf
// does too). Faults fire in both zones; WARDEN_FAULTS_CLIENT_ONLY=1 keeps copies on owner
// threads from throwing, to tell the two apart when diagnosing. The shutdown tests use the
// zone to see which values an owner has moved. `poison` makes one key's equality always
// throw, for tests that need an owner-side failure every time.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include <absl/hash/hash.h>

namespace warden_faults {

// What the injected faults throw; nothing else in these tests throws it.
struct injected_fault : std::runtime_error {
  explicit injected_fault(const char* what) : std::runtime_error(what) {}
};

// A user exception thrown on purpose by a transact function.
struct user_error : std::runtime_error {
  user_error() : std::runtime_error("user error") {}
};

enum kind : unsigned { kHash = 1, kEq = 2, kCopy = 4, kAll = 7 };

enum class zone : std::uint8_t { owner, client };

struct settings {
  std::atomic<std::uint32_t> rate_ppm{0};  // faults per million chances; 0 turns them off
  std::atomic<unsigned> kinds{kAll};
  std::atomic<bool> owner_copies{true};
  std::atomic<bool> owner_eq{true};  // equality faults on owner threads
  // Nonzero: comparing two distinct objects that both hold this key always throws. (An
  // object compared with itself still answers: absl's debug assertions do that right after
  // an insert, and a key that can never be inserted would only test must_succeed's abort.)
  std::atomic<std::uint64_t> poison{0};
  std::atomic<std::uint64_t> seed{1};
  std::atomic<std::uint64_t> threads_seen{0};
  std::atomic<std::uint64_t> thrown_hash{0}, thrown_eq{0}, thrown_copy{0};
  std::atomic<std::int64_t> live{0};      // fkey/fval instances alive
  std::atomic<std::uint64_t> corrupt{0};  // operations on an object that is not alive
};
inline settings cfg;

inline thread_local zone t_zone = zone::owner;

// Keys and values at or above this never fault (background traffic whose model is exact).
inline constexpr std::uint64_t kImmune = std::uint64_t{1} << 62;
inline constexpr std::uint32_t kAlive = 0xA11FE5u;
inline constexpr std::uint32_t kDead = 0xDEADu;

// The seed of this process's run: WARDEN_FAULTS_SEED replays one, otherwise random; printed.
inline std::uint64_t run_seed() {
  static const std::uint64_t seed = [] {
    const char* s = std::getenv("WARDEN_FAULTS_SEED");
    const std::uint64_t v = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    std::printf("warden faults seed: %llu (replay with WARDEN_FAULTS_SEED=%llu)\n",
                static_cast<unsigned long long>(v), static_cast<unsigned long long>(v));
    std::fflush(stdout);
    return v;
  }();
  return seed;
}

// Loop counts are multiplied by this: WARDEN_FAULTS_SCALE (default 1), divided down under
// ThreadSanitizer, which runs these tests about ten times slower.
inline double scale() {
  const char* s = std::getenv("WARDEN_FAULTS_SCALE");
  double v = s ? std::atof(s) : 1.0;
#if defined(__SANITIZE_THREAD__)
  v /= 5;
#elif defined(__SANITIZE_ADDRESS__)
  v /= 2;
#endif
  return v > 0 ? v : 1.0;
}
inline int scaled(int n) { return std::max(1, static_cast<int>(n * scale())); }

inline bool env_flag(const char* name) {
  const char* s = std::getenv(name);
  return s != nullptr && s[0] == '1';
}

inline std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct thread_rng {
  std::uint64_t state = 0;
  std::uint64_t seed_used = 0;
};
inline thread_local thread_rng t_rng;

inline std::uint64_t next_random() {
  const std::uint64_t seed = cfg.seed.load(std::memory_order_relaxed);
  if (t_rng.seed_used != seed || t_rng.state == 0) {
    t_rng.seed_used = seed;
    t_rng.state = seed ^ (0xD1B54A32D192ED03ull *
                          (cfg.threads_seen.fetch_add(1, std::memory_order_relaxed) + 1));
  }
  return splitmix(t_rng.state);
}

inline bool should_throw(unsigned k) {
  const std::uint32_t rate = cfg.rate_ppm.load(std::memory_order_relaxed);
  if (rate == 0 || (cfg.kinds.load(std::memory_order_relaxed) & k) == 0) return false;
  if (t_zone == zone::owner) {
    if (k == kCopy && !cfg.owner_copies.load(std::memory_order_relaxed)) return false;
    if (k == kEq && !cfg.owner_eq.load(std::memory_order_relaxed)) return false;
  }
  return next_random() % 1000000 < rate;
}

inline void maybe_throw_copy(std::uint64_t payload) {
  if (payload < kImmune && should_throw(kCopy)) {
    cfg.thrown_copy.fetch_add(1, std::memory_order_relaxed);
    throw injected_fault("injected: copy");
  }
}

// Sets this thread's zone for a scope.
class zone_scope {
 public:
  explicit zone_scope(zone z) : saved_(t_zone) { t_zone = z; }
  ~zone_scope() { t_zone = saved_; }
  zone_scope(const zone_scope&) = delete;
  zone_scope& operator=(const zone_scope&) = delete;

 private:
  zone saved_;
};

// Both types count their instances and carry a canary that every operation checks. They are
// standard-layout, so owners keep them in flat maps; regression_test.cpp covers keys that
// are not (owners keep those in node maps: see detail/owner_map.hpp).
inline void born() noexcept { cfg.live.fetch_add(1, std::memory_order_relaxed); }
inline void died(std::uint32_t& canary) noexcept {
  if (canary != kAlive) cfg.corrupt.fetch_add(1, std::memory_order_relaxed);
  canary = kDead;
  cfg.live.fetch_sub(1, std::memory_order_relaxed);
}

struct fkey {
  std::uint64_t id = 0;
  std::uint32_t canary = kAlive;

  fkey() noexcept { born(); }
  explicit fkey(std::uint64_t i) noexcept : id(i) { born(); }
  fkey(const fkey& o) : id(o.id) {
    o.check();
    maybe_throw_copy(o.id);  // before born(): a copy that throws constructs nothing
    born();
  }
  fkey(fkey&& o) noexcept : id(o.id) {
    o.check();
    born();
  }
  fkey& operator=(const fkey& o) {
    check();
    o.check();
    maybe_throw_copy(o.id);
    id = o.id;
    return *this;
  }
  fkey& operator=(fkey&& o) noexcept {
    check();
    o.check();
    id = o.id;
    return *this;
  }
  ~fkey() { died(canary); }
  void check() const noexcept {
    if (canary != kAlive) cfg.corrupt.fetch_add(1, std::memory_order_relaxed);
  }
};

struct fval {
  std::uint64_t v = 0;
  std::uint32_t canary = kAlive;

  fval() noexcept { born(); }
  explicit fval(std::uint64_t x) noexcept : v(x) { born(); }
  fval(const fval& o) : v(o.v) {
    o.check();
    maybe_throw_copy(o.v);
    born();
  }
  fval(fval&& o) noexcept : v(o.v) {
    o.check();
    born();
  }
  fval& operator=(const fval& o) {
    check();
    o.check();
    maybe_throw_copy(o.v);
    v = o.v;
    return *this;
  }
  fval& operator=(fval&& o) noexcept {
    check();
    o.check();
    v = o.v;
    return *this;
  }
  ~fval() { died(canary); }
  void check() const noexcept {
    if (canary != kAlive) cfg.corrupt.fetch_add(1, std::memory_order_relaxed);
  }
};

static_assert(std::is_standard_layout_v<fkey> && std::is_standard_layout_v<fval>);

struct fhash {
  std::size_t operator()(const fkey& k) const {
    k.check();
    if (k.id < kImmune && should_throw(kHash)) {
      cfg.thrown_hash.fetch_add(1, std::memory_order_relaxed);
      throw injected_fault("injected: hash");
    }
    return absl::Hash<std::uint64_t>{}(k.id);
  }
};

struct feq {
  bool operator()(const fkey& a, const fkey& b) const {
    a.check();
    b.check();
    const std::uint64_t p = cfg.poison.load(std::memory_order_relaxed);
    if (p != 0 && a.id == p && b.id == p && &a != &b) {
      cfg.thrown_eq.fetch_add(1, std::memory_order_relaxed);
      throw injected_fault("injected: poisoned equality");
    }
    if (a.id < kImmune && b.id < kImmune && should_throw(kEq)) {
      cfg.thrown_eq.fetch_add(1, std::memory_order_relaxed);
      throw injected_fault("injected: equality");
    }
    return a.id == b.id;
  }
};

// Puts the fault settings back to "off" and clears the counters; call at a test's start.
inline void reset(std::uint64_t seed) {
  cfg.rate_ppm = 0;
  cfg.kinds = kAll;
  cfg.owner_copies = !env_flag("WARDEN_FAULTS_CLIENT_ONLY");
  cfg.owner_eq = true;
  cfg.poison = 0;
  cfg.seed = seed == 0 ? 1 : seed;
  cfg.thrown_hash = 0;
  cfg.thrown_eq = 0;
  cfg.thrown_copy = 0;
  cfg.corrupt = 0;
}

inline std::uint64_t thrown_total() {
  return cfg.thrown_hash.load() + cfg.thrown_eq.load() + cfg.thrown_copy.load();
}

// Aborts the process with a message if a phase takes longer than its limit, so a hang fails
// the test instead of hanging CI. tick() starts a new phase.
class watchdog {
 public:
  watchdog(std::string name, std::chrono::seconds limit)
      : name_(std::move(name)), limit_(limit), thread_([this] { run(); }) {}
  ~watchdog() {
    stop_.store(true);
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  void tick(long phase) {
    phase_.store(phase);
    started_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  }

 private:
  void run() {
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const auto started = std::chrono::steady_clock::time_point(
          std::chrono::steady_clock::duration(started_.load()));
      if (std::chrono::steady_clock::now() - started > limit_) {
        std::fprintf(stderr,
                     "warden watchdog: %s: iteration %ld has run longer than %lld s: a hang; "
                     "aborting (seed %llu)\n",
                     name_.c_str(), phase_.load(), static_cast<long long>(limit_.count()),
                     static_cast<unsigned long long>(run_seed()));
        std::fflush(stderr);
        std::abort();
      }
    }
  }

  std::string name_;
  std::chrono::seconds limit_;
  std::atomic<long> phase_{0};
  std::atomic<std::chrono::steady_clock::rep> started_{
      std::chrono::steady_clock::now().time_since_epoch().count()};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace warden_faults
