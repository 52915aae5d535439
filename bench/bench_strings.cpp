// Realistic keys and values: 10,000 string keys of 16-32 characters, looked up by
// std::string_view, mapped to a ~100-byte struct holding a string. Each subject is measured
// reading in place (the value is inspected where it lives, no copy) and copying the value out,
// at 1, 2 and 64 threads (64 on 2 cores: contention and preemption), with the wall-clock
// throughput of all threads together (ops_per_s), plus bytes per entry:
//   table       warden::table, get(string_view) (copy) and visit(string_view) (in place)
//   table_pin   warden::table, a pin per 64 lookups, find(string_view) (in place)
//   actor       warden::actor, get (copy) and visit (in place; runs on the owner)
//   shmtx       absl::flat_hash_map<std::string, profile> behind std::shared_mutex, found by
//               string_view under a shared lock (absl's string hash is transparent; Debian's
//               abseil has its own absl::string_view, so the lookup converts to it)
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "peers/memory.hpp"

namespace warden_bench {
namespace {

struct profile {
  std::string name;  // 24-40 characters: on the heap
  std::uint64_t id = 0;
  std::uint32_t plan = 0;
  std::uint32_t flags = 0;
  double score = 0;
  std::uint64_t created = 0, updated = 0, quota = 0, used = 0;
};
static_assert(sizeof(profile) >= 80);

constexpr std::size_t kKeys = 10000;
constexpr int kBatch = 64;

struct dataset {
  std::vector<std::string> keys;
  std::vector<std::uint32_t> order;  // kStreamLen indices into keys, uniform
};

const dataset& data() {
  static const dataset d = [] {
    dataset d;
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    for (std::size_t i = 0; i < kKeys; ++i) {
      std::string k = "tenant-" + std::to_string(next() % 1000) + "/user-" + std::to_string(i);
      while (k.size() < 16 + next() % 17) k += static_cast<char>('a' + next() % 26);
      d.keys.push_back(std::move(k));
    }
    d.order.resize(kStreamLen);
    for (auto& o : d.order) o = static_cast<std::uint32_t>(next() % kKeys);
    return d;
  }();
  return d;
}

profile profile_of(std::size_t i) {
  profile p;
  p.name = "user " + std::to_string(i) + " of a tenant with a long name";
  p.id = i;
  p.plan = static_cast<std::uint32_t>(i % 4);
  return p;
}

class shmtx_map {
 public:
  void put(const std::string& k, const profile& v) {
    std::unique_lock lock(mu_);
    map_.insert_or_assign(k, v);
  }
  template <class F>
  bool visit(std::string_view k, F&& f) const {
    std::shared_lock lock(mu_);
    auto it = map_.find(absl::string_view(k.data(), k.size()));
    if (it == map_.end()) return false;
    f(it->second);
    return true;
  }
  std::optional<profile> get(std::string_view k) const {
    std::shared_lock lock(mu_);
    auto it = map_.find(absl::string_view(k.data(), k.size()));
    return it == map_.end() ? std::nullopt : std::optional<profile>(it->second);
  }

 private:
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<std::string, profile> map_;
};

using table_t = warden::table<std::string, profile>;
using actor_t = warden::actor<std::string, profile>;

template <class C>
C& filled() {
  static C* c = [] {
    auto* c = new C();
    for (std::size_t i = 0; i < kKeys; ++i) c->put(data().keys[i], profile_of(i));
    if constexpr (!std::is_same_v<C, shmtx_map>) c->flush();
    return c;
  }();
  return *c;
}

enum class mode { in_place, copy, pinned };

// Sums a field of every value read, so neither the read nor the copy can be optimized out.
template <class C>
void lookups(benchmark::State& state, mode m) {
  C& c = filled<C>();
  const dataset& d = data();
  std::size_t pos = stream_start(state.thread_index());
  std::uint64_t sum = 0;
  run_loop(state, kBatch, [&] {
    if constexpr (std::is_same_v<C, table_t>) {
      if (m == mode::pinned) {
        const auto pin = c.pin();
        for (int j = 0; j < kBatch; ++j) {
          const std::string_view k = d.keys[d.order[(pos + j) & kStreamMask]];
          if (const profile* p = pin.find(k)) sum += p->name.size() + p->plan;
        }
        pos += kBatch;
        return;
      }
    }
    for (int j = 0; j < kBatch; ++j) {
      const std::string_view k = d.keys[d.order[(pos + j) & kStreamMask]];
      if (m == mode::copy) {
        if (auto p = c.get(k)) sum += p->name.size() + p->plan;
      } else {
        c.visit(k, [&](const profile& p) { sum += p.name.size() + p.plan; });
      }
    }
    pos += kBatch;
  });
  benchmark::DoNotOptimize(sum);
}

// Live bytes a cache of every key holds (counting operator new), per entry: the keys' and
// values' own heap memory included. Runs before any timed benchmark stops the counting.
template <class C>
void bytes(benchmark::State& state) {
  for (auto _ : state) {
    if (!counting_allocations()) {
      state.SkipWithError("allocation counting already stopped");
      return;
    }
    const std::int64_t before = live_bytes();
    auto c = std::make_unique<C>();
    for (std::size_t i = 0; i < kKeys; ++i) c->put(data().keys[i], profile_of(i));
    if constexpr (!std::is_same_v<C, shmtx_map>) c->flush();
    state.counters["bytes_per_entry"] =
        static_cast<double>(live_bytes() - before) / static_cast<double>(kKeys);
  }
}

template <class C>
void register_subject(const std::string& name, std::initializer_list<mode> modes) {
  for (mode m : modes) {
    const char* how = m == mode::copy ? "copy" : m == mode::pinned ? "pin_find" : "in_place";
    for (int threads : {1, 2, 64}) {
      add("strings/read:" + std::string(how) + "/subject:" + name,
          [m](benchmark::State& st) { lookups<C>(st, m); })
          ->Setup([](const benchmark::State&) {
            stop_counting_allocations();  // timed code must not pay for the shared counter
            g_clock.reset();
          })
          ->Threads(threads)
          ->UseRealTime();
    }
  }
}

void register_all() {
  data();
  add("strings_memory/subject:table", bytes<table_t>)->Iterations(1);
  add("strings_memory/subject:actor", bytes<actor_t>)->Iterations(1);
  add("strings_memory/subject:shmtx", bytes<shmtx_map>)->Iterations(1);
  register_subject<table_t>("table", {mode::in_place, mode::copy, mode::pinned});
  register_subject<actor_t>("actor", {mode::in_place, mode::copy});
  register_subject<shmtx_map>("shmtx", {mode::in_place, mode::copy});
}

}  // namespace
}  // namespace warden_bench

WARDEN_BENCH_MAIN(warden_bench::register_all)
