// change_feed_mirror: a second cache kept in sync from the first one's change feed.
//
// The Elixir pattern: a process mirrors an ETS table somewhere else (a read replica, a search
// index, another node) by receiving a message per change. Each write is its own message, so a
// mirror can hold half of a multi-key update, and a bank mirrored that way shows money
// appearing and vanishing. warden's change feed delivers what the owners publish in whole
// batches, in publication order: a transaction, even one spanning several owner threads, is
// one batch, so a mirror that applies each batch at once is always in a state the source was
// in.
//
// Part 1: a table of account balances (16 shards, 2 owner threads) and several threads moving
// money between two accounts with transact (the sum never changes). A subscriber copies every
// batch into a warden::actor, the mirror, with one transact per batch, and after each batch
// checks that the mirror holds every account and the conserved total. At the end flush() (every
// write of this thread is published) and sub.sync() (every published batch is delivered) leave
// the mirror equal to the table.
//
// Part 2: removals the cache decides on its own are in the feed too, with their cause: a
// bounded table (max_size) evicts, and entries put with a time to live expire (on a
// manual_clock, so the output is the same every run). A mirror that ignored them would keep
// entries the cache has dropped.
//
// What to look at in the output: "every batch whole", the sums and entry counts of table and
// mirror, and the count of each change_cause. The program exits non-zero if a check fails.
//
// Usage: change_feed_mirror [threads=4] [transfers=20000] [accounts=16]
//   threads: transferer threads; transfers: per thread.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::next_random;
using warden_example::parse_args;
using balances = std::map<std::string, std::int64_t>;
using batch = warden::change_batch<std::string, std::int64_t>;

struct insufficient_funds : std::runtime_error {
  insufficient_funds() : std::runtime_error("insufficient funds") {}
};

// Every entry of a cache (either backend) at one instant.
template <warden::cache C>
balances contents(const C& c) {
  return c.snapshot([](const auto& view) {
    balances out;
    view.for_each([&](const std::string& k, std::int64_t v) { out.emplace(k, v); });
    return out;
  });
}

std::int64_t sum_of(const balances& b) {
  std::int64_t sum = 0;
  for (const auto& [account, balance] : b) sum += balance;
  return sum;
}

struct config {
  std::size_t threads = 4;
  std::size_t transfers = 20000;
  std::size_t accounts = 16;
};

constexpr std::int64_t kOpeningBalance = 1000;

bool mirror_transfers(const config& cfg) {
  warden::table<std::string, std::int64_t> bank({.shards = 16, .owners = 2});
  warden::actor<std::string, std::int64_t> mirror;
  const auto total = static_cast<std::int64_t>(cfg.accounts) * kOpeningBalance;

  // Written only by the subscriber (on the table's notifier thread); read here after
  // sub.sync(), which returns once the subscriber has returned.
  std::uint64_t batches = 0, bad_batches = 0, out_of_order = 0, last_sequence = 0;
  warden::subscription sub = bank.subscribe([&](const batch& b) {
    if (last_sequence != 0 && b.sequence() != last_sequence + 1) ++out_of_order;
    last_sequence = b.sequence();
    ++batches;
    // The whole batch in one transaction: the mirror's own readers never see half of it.
    mirror.transact([&](auto& tx) {
      for (const auto& change : b) {
        if (change.cause == warden::change_cause::write) {
          tx.put(change.key, *change.value);
        } else {  // erase, evict or expire: gone from the source, so gone from the mirror
          tx.erase(change.key);
        }
      }
    });
    const balances now = contents(mirror);
    if (now.empty()) return;  // nothing opened yet
    if (now.size() != cfg.accounts || sum_of(now) != total) {
      if (bad_batches++ == 0) {
        std::printf("FAILED: after batch %llu the mirror holds %zu accounts summing to %lld\n",
                    static_cast<unsigned long long>(b.sequence()), now.size(),
                    static_cast<long long>(sum_of(now)));
      }
    }
  });

  // Open every account in one transaction, so the mirror goes from empty to complete at once.
  std::vector<std::string> accounts;
  for (std::size_t i = 0; i < cfg.accounts; ++i) accounts.push_back("acct-" + std::to_string(i));
  bank.transact([&](auto& tx) {
    for (const std::string& a : accounts) tx.put(a, kOpeningBalance);
  });

  std::vector<std::thread> threads;
  std::vector<std::uint64_t> refused(cfg.threads);
  for (std::size_t t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t rng = 0x9E3779B97F4A7C15ULL * (t + 1);
      for (std::size_t i = 0; i < cfg.transfers; ++i) {
        const std::size_t f = next_random(rng) % cfg.accounts;
        const std::size_t g = (f + 1 + next_random(rng) % (cfg.accounts - 1)) % cfg.accounts;
        const std::string& from = accounts[f];
        const std::string& to = accounts[g];
        const auto amount = static_cast<std::int64_t>(1 + next_random(rng) % 300);
        try {
          bank.transact([&](auto& tx) {  // two keys, possibly of two owners: one batch
            const std::int64_t balance = *tx.get(from);
            if (balance < amount) throw insufficient_funds();  // no batch at all
            tx.put(from, balance - amount);
            tx.put(to, *tx.get(to) + amount);
          });
        } catch (const insufficient_funds&) {
          ++refused[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();

  bank.flush();  // every cast of this thread is published (transact already waits) ...
  sub.sync();    // ... and every published batch is delivered and applied to the mirror
  const balances source = contents(bank), copy = contents(mirror);
  std::uint64_t refusals = 0;
  for (std::uint64_t r : refused) refusals += r;
  std::printf("  %zu threads x %zu transfers (%llu refused for lack of funds)\n", cfg.threads,
              cfg.transfers, static_cast<unsigned long long>(refusals));
  std::printf(
      "  %llu batches delivered (%llu out of order); after %llu of them the mirror's "
      "sum was off\n",
      static_cast<unsigned long long>(batches), static_cast<unsigned long long>(out_of_order),
      static_cast<unsigned long long>(bad_batches));
  std::printf("  table:  %zu accounts, sum %lld\n", source.size(),
              static_cast<long long>(sum_of(source)));
  std::printf("  mirror: %zu accounts, sum %lld\n", copy.size(),
              static_cast<long long>(sum_of(copy)));
  if (bad_batches != 0 || out_of_order != 0 || source != copy || sum_of(source) != total) {
    std::printf("FAILED: the mirror diverged from the table, or the total changed\n");
    return false;
  }
  return true;
}

bool mirror_removals() {
  using namespace std::chrono_literals;
  constexpr std::size_t kMaxSize = 8, kKeys = 20, kTimed = 5;
  warden::manual_clock clock;
  warden::table<std::string, std::int64_t> cache(
      {.max_size = kMaxSize, .clock = &clock, .record_stats = true});
  balances mirror;               // a plain map is enough here: only the subscriber writes it
  std::uint64_t causes[4] = {};  // indexed by change_cause
  warden::subscription sub = cache.subscribe([&](const batch& b) {
    for (const auto& change : b) {
      ++causes[static_cast<int>(change.cause)];
      if (change.cause == warden::change_cause::write) {
        mirror[change.key] = *change.value;
      } else {
        mirror.erase(change.key);
      }
    }
  });
  bool ok = true;
  const auto check_mirror = [&](const char* when) {
    cache.flush();
    sub.sync();
    const balances source = contents(cache);
    std::printf("  %-38s cache %zu entries, mirror %zu entries%s\n", when, source.size(),
                mirror.size(), source == mirror ? ", equal" : "");
    ok = ok && source == mirror;
  };

  // 20 keys into room for 8: the size policy evicts (or refuses) 12 of them.
  for (std::size_t i = 0; i < kKeys; ++i) {
    cache.put("key-" + std::to_string(i), static_cast<std::int64_t>(i));
    cache.flush();
  }
  check_mirror("20 puts, max_size 8:");
  cache.clear();  // removes the 8 survivors: erase
  check_mirror("clear():");
  for (std::size_t i = 0; i < kTimed; ++i) {
    cache.put("temp-" + std::to_string(i), static_cast<std::int64_t>(i), 30s);
  }
  check_mirror("5 puts with a 30 s time to live:");
  clock.advance(1min);  // past every deadline; the owner removes them at its next batch
  check_mirror("clock advanced 1 min:");

  const warden::cache_stats st = cache.stats();
  const auto n = [&](warden::change_cause c) {
    return static_cast<unsigned long long>(causes[static_cast<int>(c)]);
  };
  std::printf("  changes by cause: write %llu, erase %llu, evict %llu, expire %llu\n",
              n(warden::change_cause::write), n(warden::change_cause::erase),
              n(warden::change_cause::evict), n(warden::change_cause::expire));
  std::printf("  stats(): evictions %llu, expirations %llu\n",
              static_cast<unsigned long long>(st.evictions),
              static_cast<unsigned long long>(st.expirations));
  if (!ok || n(warden::change_cause::evict) != kKeys - kMaxSize ||
      n(warden::change_cause::erase) != kMaxSize || n(warden::change_cause::expire) != kTimed ||
      st.evictions != kKeys - kMaxSize || st.expirations != kTimed) {
    std::printf("FAILED: the feed's removals disagree with the cache or its stats\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv,
                  {{"threads", &cfg.threads},
                   {"transfers", &cfg.transfers},
                   {"accounts", &cfg.accounts, 2}})) {
    return 2;
  }
  std::printf("change_feed_mirror: %zu accounts of %lld mirrored into an actor\n", cfg.accounts,
              static_cast<long long>(kOpeningBalance));
  if (!mirror_transfers(cfg)) return 1;
  std::printf("removals in the feed: a bounded table with per-entry ttl on a manual_clock\n");
  if (!mirror_removals()) return 1;
  std::printf(
      "change_feed_mirror: OK (the mirror never saw a transfer half done, and ends equal to the "
      "table)\n");
  return 0;
}
