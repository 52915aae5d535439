// bank_transfer: "move 10 from alice to bob" as one transaction, audited while it runs.
//
// The Elixir pattern: ETS gives no atomicity across keys (two :ets.insert calls can be seen
// half done), so a bank on ETS funnels transfers through one GenServer, and an auditor that
// reads the accounts one by one can still catch a transfer in the middle. warden's table
// closes both gaps: `transact` runs the transfer on the owner and publishes its two writes as
// one, and `snapshot` lets an auditor read every account at one instant, lock-free, in its own
// thread.
//
// A transfer that would overdraw is refused by throwing from the transaction function. The
// function below stages the debit *before* it checks the balance, on purpose: the throw must
// discard it, leave no trace, and reach the caller unchanged.
//
// The code is generic over the warden::cache concept and runs on a table with one owner, a
// table with 16 shards split among 4 owner threads (a transaction over accounts of several
// owners stops them all briefly and is still atomic), and the actor.
//
// What to look at in the output: per backend, transfers done and refused, audits run, and
// "total always N". The program checks that every audit saw exactly the initial total and no
// negative balance, and that a refused transfer changed nothing.
//
// Auditors pause `pause_us` between audits, as a periodic audit would. With pause_us=0 and as
// many auditors as cores, each one always inside a snapshot, the transfers crawl (about 1-2 ms
// each on a 2-core machine): an owner reuses a copy only after every reader of it has left,
// and a reader preempted inside its snapshot leaves only when the scheduler runs it again.
// Snapshots are cheap for readers, but a reader that never stops reading, on a machine with
// no spare core, holds the writer back.
//
// Usage: bank_transfer [transferers=4] [auditors=2] [transfers=50000] [accounts=8] [pause_us=20]
//   transfers: per transferer thread; pause_us: sleep between one auditor's audits (0: none).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::next_random;
using warden_example::parse_args;

struct insufficient_funds : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Moves `amount` from one account to another, all or nothing.
template <warden::cache Bank>
void transfer(Bank& bank, const std::string& from, const std::string& to, std::int64_t amount) {
  bank.transact([&](auto& tx) {
    const std::int64_t balance = tx.get(from).value();
    tx.put(from, balance - amount);  // staged first on purpose: a throw must discard it
    if (balance < amount) {
      throw insufficient_funds(from + " has " + std::to_string(balance) + ", needs " +
                               std::to_string(amount));
    }
    tx.put(to, tx.get(to).value() + amount);
  });
}

struct audit {
  std::int64_t total = 0;
  std::size_t accounts = 0;
  bool negative = false;
};

// Sums every account at one instant.
template <warden::cache Bank>
audit run_audit(const Bank& bank) {
  return bank.snapshot([](const auto& view) {
    audit a;
    view.for_each([&](const std::string&, std::int64_t balance) {
      a.total += balance;
      ++a.accounts;
      a.negative = a.negative || balance < 0;
    });
    return a;
  });
}

struct config {
  std::size_t transferers = 4;
  std::size_t auditors = 2;
  std::size_t transfers = 50000;
  std::size_t accounts = 8;
  std::size_t pause_us = 20;
};

constexpr std::int64_t kOpeningBalance = 100;

// The story in four lines, before the stress run.
template <warden::cache Bank>
bool demo(Bank& bank) {
  bank.put("alice", 100);
  bank.put("bob", 0);
  bank.flush();
  transfer(bank, "alice", "bob", 10);
  std::printf("  move 10 from alice to bob:   alice %lld, bob %lld\n",
              static_cast<long long>(bank.get("alice").value()),
              static_cast<long long>(bank.get("bob").value()));
  try {
    transfer(bank, "bob", "alice", 500);
    std::printf("FAILED: an overdraft was accepted\n");
    return false;
  } catch (const insufficient_funds& e) {
    std::printf("  move 500 from bob to alice:  refused (%s); alice %lld, bob %lld\n", e.what(),
                static_cast<long long>(bank.get("alice").value()),
                static_cast<long long>(bank.get("bob").value()));
  }
  if (bank.get("alice") != 90 || bank.get("bob") != 10) {
    std::printf("FAILED: the refused transfer left a trace\n");
    return false;
  }
  bank.erase("alice");
  bank.erase("bob");
  bank.flush();
  return true;
}

template <warden::cache Bank>
bool run_bank(const char* name, Bank bank, const config& cfg) {
  std::printf("%s\n", name);
  if (!demo(bank)) return false;

  std::vector<std::string> accounts;
  for (std::size_t i = 0; i < cfg.accounts; ++i) {
    accounts.push_back("acct-" + std::to_string(i));
    bank.put(accounts.back(), kOpeningBalance);
  }
  bank.flush();
  const auto total = static_cast<std::int64_t>(cfg.accounts) * kOpeningBalance;

  std::atomic<std::size_t> transferers_left{cfg.transferers};
  std::atomic<std::uint64_t> done{0}, refused{0}, audits{0}, bad_audits{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < cfg.transferers; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t rng = 0x9E3779B97F4A7C15ULL * (t + 1);
      std::uint64_t my_done = 0, my_refused = 0;
      for (std::size_t i = 0; i < cfg.transfers; ++i) {
        const std::size_t from = next_random(rng) % cfg.accounts;
        const std::size_t to = (from + 1 + next_random(rng) % (cfg.accounts - 1)) % cfg.accounts;
        const auto amount = static_cast<std::int64_t>(1 + next_random(rng) % 60);
        try {
          transfer(bank, accounts[from], accounts[to], amount);
          ++my_done;
        } catch (const insufficient_funds&) {
          ++my_refused;
        }
      }
      // relaxed: plain counters, read after join().
      done.fetch_add(my_done, std::memory_order_relaxed);
      refused.fetch_add(my_refused, std::memory_order_relaxed);
      // release: pairs with the auditors' acquire load; nothing else rides on it.
      transferers_left.fetch_sub(1, std::memory_order_release);
    });
  }
  for (std::size_t a = 0; a < cfg.auditors; ++a) {
    threads.emplace_back([&] {
      std::uint64_t mine = 0, bad = 0;
      // acquire: see above. The do-while audits at least once even if transfers finished.
      do {
        const audit seen = run_audit(bank);
        if (seen.total != total || seen.accounts != cfg.accounts || seen.negative) {
          if (bad++ == 0) {
            std::printf("FAILED: an audit saw total %lld over %zu accounts%s\n",
                        static_cast<long long>(seen.total), seen.accounts,
                        seen.negative ? " with a negative balance" : "");
          }
        }
        ++mine;
        if (cfg.pause_us != 0) std::this_thread::sleep_for(std::chrono::microseconds(cfg.pause_us));
      } while (transferers_left.load(std::memory_order_acquire) != 0);
      audits.fetch_add(mine, std::memory_order_relaxed);  // relaxed: read after join()
      bad_audits.fetch_add(bad, std::memory_order_relaxed);
    });
  }
  for (auto& t : threads) t.join();

  const audit last = run_audit(bank);
  const bool ok = bad_audits.load() == 0 && last.total == total && !last.negative &&
                  done.load() + refused.load() == cfg.transferers * cfg.transfers;
  std::printf("  transfers done %llu, refused %llu; audits run %llu\n",
              static_cast<unsigned long long>(done.load()),
              static_cast<unsigned long long>(refused.load()),
              static_cast<unsigned long long>(audits.load()));
  if (!ok) {
    std::printf("FAILED: %s: the total changed, or a transfer went missing\n", name);
    return false;
  }
  std::printf("  total always %lld\n", static_cast<long long>(total));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv,
                  {{"transferers", &cfg.transferers},
                   {"auditors", &cfg.auditors},
                   {"transfers", &cfg.transfers},
                   {"accounts", &cfg.accounts, 2},
                   {"pause_us", &cfg.pause_us, 0}})) {
    return 2;
  }
  std::printf(
      "bank_transfer: %zu accounts of %lld, %zu transferer threads x %zu transfers, "
      "%zu auditor threads\n",
      cfg.accounts, static_cast<long long>(kOpeningBalance), cfg.transferers, cfg.transfers,
      cfg.auditors);

  bool ok = true;
  ok = run_bank("table, 1 owner", warden::table<std::string, std::int64_t>(), cfg) && ok;
  ok = run_bank("table, 16 shards, 4 owners",
                warden::table<std::string, std::int64_t>({.shards = 16, .owners = 4}), cfg) &&
       ok;
  ok = run_bank("actor", warden::actor<std::string, std::int64_t>(), cfg) && ok;
  if (!ok) return 1;
  std::printf(
      "bank_transfer: OK (no audit ever saw a transfer half done; refusals left no "
      "trace)\n");
  return 0;
}
