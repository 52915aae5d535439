// feature_flags: the seed's Flags.Server (a GenServer holding the flags: warden::actor) against
// Flags.Ets (an ETS table owned by a GenServer: warden::table), under many clients.
//
// Many client threads check flags with `get` while one admin thread toggles a few of them.
// The client code is written once against warden::any_cache<std::string, bool>, so the very
// same loop runs on both backends. Each check is timed (steady_clock around the get) into a
// per-thread vector; the vectors are merged afterwards.
//
// What to look at in the output: the latency columns. On the actor every check is a message
// to one thread, so checks queue behind each other and the tail (p99, p99.9) grows with the
// number of clients; on the table a check is a lookup in the client's own thread, so its tail
// is what the OS scheduler adds, nothing more. The last lines give actor p99 / table p99.
//
// The second table is the other side of the trade: each toggle is a put followed by flush(),
// timed until every client can see it. On the actor a toggle queues behind the clients'
// checks like any message. On the table the owner publishes at once but, before it writes the
// copy the clients just left, waits for every client still reading it; with far more busy
// clients than cores, some are preempted mid-read, and the toggle waits until the scheduler
// runs them again (the "max" column). Both runs make the same number of checks, so the
// table's run is much shorter and sees fewer toggles.
//
// The program checks that every read returned a flag value that was written (never a missing
// or garbage value) and that, after flush, every flag holds its last toggle.
//
// Usage: feature_flags [clients=64] [checks=20000] [flags=8] [toggled=3] [toggle_us=200]
//   clients: client threads; checks: checks per client; flags: flags in the table;
//   toggled: how many of them the admin thread toggles; toggle_us: pause between toggles.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::next_random;
using warden_example::parse_args;

using flag_cache = warden::any_cache<std::string, bool>;
using clock_type = std::chrono::steady_clock;

struct config {
  std::size_t clients = 64;
  std::size_t checks = 20000;
  std::size_t flags = 8;
  std::size_t toggled = 3;
  std::size_t toggle_us = 200;
};

struct run_result {
  std::vector<std::uint32_t> latency_ns;  // every check, all clients merged, sorted
  double seconds = 0;                     // first check to last check, all clients
  std::uint64_t bad_reads = 0;            // missing flag or a byte that is no bool
  std::uint64_t flips_seen = 0;           // times a client saw a flag change value
  std::vector<std::int64_t> visible_ns;   // per toggle: put + flush, i.e. until all can see it
  std::size_t final_mismatches = 0;       // flags whose final value is not the last toggle

  std::uint32_t percentile(double q) const {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(latency_ns.size()));
    return latency_ns[std::min(i, latency_ns.size() - 1)];
  }
};

// The same client code for both backends: this is why any_cache exists.
run_result run(flag_cache& flags, const config& cfg) {
  std::vector<std::string> names;
  for (std::size_t f = 0; f < cfg.flags; ++f) {
    names.push_back("flag." + std::to_string(f));
    flags.put(names.back(), false);
  }
  flags.flush();  // every flag exists before the first client checks

  const std::size_t toggled = std::min(cfg.toggled, cfg.flags);
  std::vector<bool> last(cfg.flags, false);  // the admin thread's own record of what it wrote
  std::atomic<bool> clients_done{false};
  run_result r;

  std::vector<std::vector<std::uint32_t>> latency(cfg.clients);
  std::vector<std::uint64_t> bad(cfg.clients, 0);
  std::vector<std::uint64_t> flips(cfg.clients, 0);
  std::latch start(static_cast<std::ptrdiff_t>(cfg.clients + 2));

  std::thread admin([&] {
    std::uint64_t rng = 0x2545F4914F6CDD1DULL;
    start.arrive_and_wait();
    // acquire: pairs with main's release store once every client has finished.
    while (!clients_done.load(std::memory_order_acquire)) {
      const std::size_t f = next_random(rng) % toggled;
      last[f] = !last[f];
      const auto t0 = clock_type::now();
      flags.put(names[f], last[f]);  // a cast: returns at once
      flags.flush();                 // returns once every client can see the new value
      r.visible_ns.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count());
      if (cfg.toggle_us != 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(cfg.toggle_us));
      } else {
        std::this_thread::yield();
      }
    }
    flags.flush();  // this thread's toggles are now applied and visible
  });

  std::vector<std::thread> clients;
  for (std::size_t c = 0; c < cfg.clients; ++c) {
    clients.emplace_back([&, c] {
      std::vector<std::uint32_t>& mine = latency[c];
      mine.reserve(cfg.checks);
      std::vector<int> seen(cfg.flags, -1);
      std::uint64_t rng = 0x9E3779B97F4A7C15ULL * (c + 1);
      start.arrive_and_wait();
      for (std::size_t i = 0; i < cfg.checks; ++i) {
        const std::size_t f = next_random(rng) % cfg.flags;
        const auto t0 = clock_type::now();
        const std::optional<bool> on = flags.get(names[f]);
        const auto t1 = clock_type::now();
        mine.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(), UINT32_MAX)));
        if (!on) {
          ++bad[c];
          continue;
        }
        unsigned char byte;  // a torn or unknown value would show up as a byte other than 0/1
        std::memcpy(&byte, &*on, 1);
        if (byte > 1) {
          ++bad[c];
          continue;
        }
        if (seen[f] >= 0 && seen[f] != byte) ++flips[c];
        seen[f] = byte;
      }
    });
  }

  start.arrive_and_wait();
  const auto begin = clock_type::now();
  for (auto& t : clients) t.join();
  r.seconds = std::chrono::duration<double>(clock_type::now() - begin).count();
  clients_done.store(true, std::memory_order_release);  // release: see the admin loop
  admin.join();

  for (std::size_t f = 0; f < cfg.flags; ++f) {
    const std::optional<bool> v = flags.get(names[f]);
    if (!v || *v != last[f]) ++r.final_mismatches;
  }
  for (std::size_t c = 0; c < cfg.clients; ++c) {
    r.latency_ns.insert(r.latency_ns.end(), latency[c].begin(), latency[c].end());
    r.bad_reads += bad[c];
    r.flips_seen += flips[c];
  }
  std::sort(r.latency_ns.begin(), r.latency_ns.end());
  return r;
}

std::string human_ns(double ns) {
  char buf[32];
  if (ns < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv,
                  {{"clients", &cfg.clients},
                   {"checks", &cfg.checks},
                   {"flags", &cfg.flags},
                   {"toggled", &cfg.toggled},
                   {"toggle_us", &cfg.toggle_us, 0}})) {
    return 2;
  }
  std::printf(
      "feature_flags: %zu client threads x %zu checks, %zu flags (%zu toggled every %zu us)"
      ", %u hardware threads\n\n",
      cfg.clients, cfg.checks, cfg.flags, std::min(cfg.toggled, cfg.flags), cfg.toggle_us,
      std::thread::hardware_concurrency());
  struct backend {
    const char* name;
    flag_cache (*make)();
  };
  const backend backends[] = {
      {"actor (Flags.Server)", [] { return flag_cache(warden::actor<std::string, bool>()); }},
      {"table (Flags.Ets)", [] { return flag_cache(warden::table<std::string, bool>()); }},
  };

  run_result results[2];
  for (int b = 0; b < 2; ++b) {
    flag_cache flags = backends[b].make();
    results[b] = run(flags, cfg);
  }  // each cache drains and stops its thread at the end of its iteration

  std::printf("flag checks (clients: get)\n");
  std::printf("%-22s %10s %10s %10s %14s\n", "backend", "p50", "p99", "p99.9", "checks/s");
  for (int b = 0; b < 2; ++b) {
    const run_result& r = results[b];
    std::printf("%-22s %10s %10s %10s %14.0f\n", backends[b].name,
                human_ns(r.percentile(0.50)).c_str(), human_ns(r.percentile(0.99)).c_str(),
                human_ns(r.percentile(0.999)).c_str(),
                static_cast<double>(r.latency_ns.size()) / r.seconds);
  }
  std::printf("\nflag toggles (admin: put + flush, i.e. until every client can see it)\n");
  std::printf("%-22s %10s %10s %10s %14s\n", "backend", "toggles", "p50", "max", "flips seen");
  for (int b = 0; b < 2; ++b) {
    const run_result& r = results[b];
    std::vector<std::int64_t> v = r.visible_ns;
    std::sort(v.begin(), v.end());
    std::printf("%-22s %10zu %10s %10s %14llu\n", backends[b].name, v.size(),
                v.empty() ? "-" : human_ns(static_cast<double>(v[v.size() / 2])).c_str(),
                v.empty() ? "-" : human_ns(static_cast<double>(v.back())).c_str(),
                static_cast<unsigned long long>(r.flips_seen));
  }

  bool ok = true;
  for (int b = 0; b < 2; ++b) {
    const run_result& r = results[b];
    if (r.bad_reads != 0) {
      std::printf("FAILED: %s: %llu checks read a missing or unknown flag value\n",
                  backends[b].name, static_cast<unsigned long long>(r.bad_reads));
      ok = false;
    }
    if (r.final_mismatches != 0) {
      std::printf("FAILED: %s: %zu flags do not hold their last toggle after flush\n",
                  backends[b].name, r.final_mismatches);
      ok = false;
    }
  }
  const double p99[2] = {static_cast<double>(results[0].percentile(0.99)),
                         static_cast<double>(results[1].percentile(0.99))};
  std::printf("\nactor p99 / table p99 = %.0fx\n", p99[0] / std::max(p99[1], 1.0));
  if (!ok) return 1;
  std::printf(
      "feature_flags: OK (every check read a written value; flags hold their last toggle)\n");
  return 0;
}
