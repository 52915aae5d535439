// projection: the seed's "ETS as a read-only projection of a GenServer's state".
//
// The Elixir pattern: a GenServer owns some state (here an inventory) and is the only one who
// changes it; to spare it the read traffic it mirrors the state into an ETS table that any
// process may read. The catch in ETS: an update touching several rows is several inserts, so a
// reader can see some of them and not the others. With warden the server mirrors each change
// with one `transact`, so readers see every change whole.
//
// The server keeps, per item, stock{total, reserved, available}, and a summary row "_all" with
// the sums over all items. Its operations touch several rows at once:
//   order   reserve 1-3 items (all or none): available -= q, reserved += q on each
//   ship    the oldest open order leaves:     reserved -= q, total -= q on each
//   restock one item arrives:                 total += q, available += q
// and every one also updates "_all". Reader threads meanwhile check, on one instant of the
// table, the invariants
//   per item:  reserved + available == total, none negative
//   across:    the per-item sums equal the "_all" row
// half of them with `snapshot` (for_each over the whole table), half with `pin()` (a pinned
// read section: many `get`s at one instant), plus plain single-key `get`s for the per-item one.
//
// The run is made twice: first mirroring the ETS way (one put per row, each made visible at
// once with flush), then with one transact per change.
//
// What to look at in the output: the "saw half" column. The ETS way usually shows many reads
// that caught a change half applied (how many depends on the scheduling, so it is not
// asserted); with transact it must be 0. The program checks that, that no single row was ever
// seen with its own invariant broken, and that after each run the projection equals the
// server's own state.
//
// The server is the main thread. Readers pause `pause_us` between rounds, as request handlers
// would between requests; with pause_us=0 and more busy readers than cores the server slows
// to a crawl (see the note in bank_transfer.cpp: the owner waits for preempted readers).
//
// Usage: projection [readers=4] [orders=100000] [items=16] [pause_us=20]
//   orders: operations the server applies (orders, shipments and restocks together);
//   pause_us: sleep between one reader's rounds (0: none).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
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

struct stock {
  std::int64_t total = 0;
  std::int64_t reserved = 0;
  std::int64_t available = 0;

  bool balanced() const {
    return reserved + available == total && total >= 0 && reserved >= 0 && available >= 0;
  }
  bool operator==(const stock&) const = default;
  stock& operator+=(const stock& o) {
    total += o.total;
    reserved += o.reserved;
    available += o.available;
    return *this;
  }
};

const std::string kSummary = "_all";

struct config {
  std::size_t readers = 4;
  std::size_t orders = 100000;
  std::size_t items = 16;
  std::size_t pause_us = 20;
};

using projection_table = warden::table<std::string, stock>;

// The GenServer: owns the inventory (plain, unshared data) and mirrors every change.
class inventory_server {
 public:
  // How a change reaches the projection: one row at a time, each visible as soon as it is
  // written (what a series of :ets.insert calls does), or all rows in one transaction.
  enum class mirroring { separate_puts, transact };

  inventory_server(projection_table& projection, std::size_t items, mirroring how)
      : projection_(projection), how_(how) {
    for (std::size_t i = 0; i < items; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "sku-%03zu", i);
      items_.emplace_back(name);
      state_[name] = stock{100, 0, 100};
    }
    mirror(items_);
  }

  const std::vector<std::string>& items() const { return items_; }
  const std::map<std::string, stock>& state() const { return state_; }
  stock summary() const {
    stock sum;
    for (const auto& [name, s] : state_) sum += s;
    return sum;
  }

  // One random operation; returns what it was, for the counts.
  enum class op { order, rejected, ship, restock };
  op step(std::uint64_t& rng) {
    const std::uint64_t dice = next_random(rng) % 100;
    if (dice < 25 && !open_orders_.empty()) return ship();
    if (dice < 40)
      return restock(items_[next_random(rng) % items_.size()],
                     static_cast<std::int64_t>(10 + next_random(rng) % 41));
    return order(rng);
  }

 private:
  using line = std::pair<std::string, std::int64_t>;

  op order(std::uint64_t& rng) {
    std::vector<line> lines;
    const std::size_t n = 1 + next_random(rng) % 3;
    for (std::size_t l = 0; l < n && l < items_.size(); ++l) {
      const std::string& item = items_[(next_random(rng) + l) % items_.size()];
      bool dup = false;
      for (const auto& x : lines) dup = dup || x.first == item;
      if (!dup) lines.emplace_back(item, static_cast<std::int64_t>(1 + next_random(rng) % 5));
    }
    for (const auto& [item, q] : lines) {
      if (state_[item].available < q) return op::rejected;  // all or none
    }
    std::vector<std::string> changed;
    for (const auto& [item, q] : lines) {
      state_[item].available -= q;
      state_[item].reserved += q;
      changed.push_back(item);
    }
    open_orders_.push_back(std::move(lines));
    mirror(changed);
    return op::order;
  }

  op ship() {
    std::vector<std::string> changed;
    for (const auto& [item, q] : open_orders_.front()) {
      state_[item].reserved -= q;
      state_[item].total -= q;
      changed.push_back(item);
    }
    open_orders_.pop_front();
    mirror(changed);
    return op::ship;
  }

  op restock(const std::string& item, std::int64_t q) {
    state_[item].total += q;
    state_[item].available += q;
    mirror({item});
    return op::restock;
  }

  // Copies the changed rows and the summary row into the projection.
  void mirror(const std::vector<std::string>& changed) {
    const stock sum = summary();
    if (how_ == mirroring::transact) {
      // All rows published as one: no reader can see some of them without the others.
      projection_.transact([&](auto& tx) {
        for (const std::string& item : changed) tx.put(item, state_.at(item));
        tx.put(kSummary, sum);
      });
    } else {
      // The ETS way: each row becomes visible on its own, so readers can see the change half
      // applied. (flush() after each put makes each one visible at once, as :ets.insert does.)
      for (const std::string& item : changed) {
        projection_.put(item, state_.at(item));
        projection_.flush();
      }
      projection_.put(kSummary, sum);
      projection_.flush();
    }
  }

  projection_table& projection_;
  const mirroring how_;
  std::vector<std::string> items_;
  std::map<std::string, stock> state_;
  std::deque<std::vector<line>> open_orders_;
};

struct reader_stats {
  std::uint64_t whole_reads = 0;  // snapshots or pins checked across all rows
  std::uint64_t torn_reads = 0;   // ... that caught a change half applied
  std::uint64_t single_gets = 0;  // single-row gets checked per item
  std::uint64_t bad_rows = 0;     // ... that saw a row whose own invariant was broken
};

// A snapshot or pin view: every row at one instant. True if the invariants hold.
template <class View>
bool consistent(const View& view, const std::vector<std::string>& items) {
  stock sum;
  for (const std::string& item : items) {
    const std::optional<stock> s = view.get(item);
    if (!s || !s->balanced()) return false;
    sum += *s;
  }
  return view.get(kSummary) == sum;
}

}  // namespace

struct phase_result {
  std::uint64_t counts[4] = {0, 0, 0, 0};  // by inventory_server::op
  reader_stats readers;
  bool final_ok = false;  // the projection equals the server's state at the end
};

// The server applies cfg.orders operations, mirroring each as `how` says, while readers check.
phase_result run_phase(const config& cfg, inventory_server::mirroring how) {
  phase_result res;
  {
    projection_table projection;
    inventory_server server(projection, cfg.items, how);  // mirrors the opening stock
    const std::vector<std::string>& items = server.items();

    std::atomic<bool> server_done{false};
    std::vector<reader_stats> stats(cfg.readers);
    std::vector<std::thread> readers;
    for (std::size_t r = 0; r < cfg.readers; ++r) {
      readers.emplace_back([&, r] {
        reader_stats& st = stats[r];
        std::uint64_t rng = 0x9E3779B97F4A7C15ULL * (r + 1);
        bool last_round = false;
        while (!last_round) {
          // acquire: pairs with the release store after the server's last operation, so the
          // final round reads the final state.
          last_round = server_done.load(std::memory_order_acquire);
          bool ok;
          if (r % 2 == 0) {
            // A report over the whole table: snapshot + for_each.
            ok = projection.snapshot([&](const auto& view) {
              stock sum;
              std::optional<stock> summary;
              bool rows_ok = true;
              view.for_each([&](const std::string& key, const stock& s) {
                if (key == kSummary) {
                  summary = s;
                } else {
                  rows_ok = rows_ok && s.balanced();
                  sum += s;
                }
              });
              return rows_ok && summary == sum;
            });
          } else {
            // A catalog page: a pinned read section, many gets at one instant.
            auto view = projection.pin();
            ok = consistent(view, items);
          }
          ++st.whole_reads;
          if (!ok) ++st.torn_reads;

          // A product page: one row. A row is always written whole, so this holds either way.
          const std::optional<stock> one = projection.get(items[next_random(rng) % items.size()]);
          ++st.single_gets;
          if (!one || !one->balanced()) ++st.bad_rows;
          if (cfg.pause_us != 0)
            std::this_thread::sleep_for(std::chrono::microseconds(cfg.pause_us));
        }
      });
    }

    std::uint64_t rng = 0x2545F4914F6CDD1DULL;
    for (std::size_t i = 0; i < cfg.orders; ++i) {
      ++res.counts[static_cast<int>(server.step(rng))];
    }
    server_done.store(true, std::memory_order_release);  // release: see the readers
    for (auto& t : readers) t.join();
    for (const reader_stats& s : stats) {
      res.readers.whole_reads += s.whole_reads;
      res.readers.single_gets += s.single_gets;
      res.readers.torn_reads += s.torn_reads;
      res.readers.bad_rows += s.bad_rows;
    }

    // Every mirror call returned after publication: the projection is the server's state now.
    res.final_ok = projection.snapshot([&](const auto& view) {
      bool same =
          view.size() == server.state().size() + 1 && view.get(kSummary) == server.summary();
      for (const auto& [item, s] : server.state()) same = same && view.get(item) == s;
      return same;
    });
  }  // the table drains and stops its owner here
  return res;
}

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(argc, argv,
                  {{"readers", &cfg.readers},
                   {"orders", &cfg.orders},
                   {"items", &cfg.items},
                   {"pause_us", &cfg.pause_us, 0}})) {
    return 2;
  }
  std::printf("projection: %zu items, %zu server operations, %zu reader threads\n\n", cfg.items,
              cfg.orders, cfg.readers);
  std::printf("%-26s %14s %14s %14s %12s\n", "mirrored with", "whole reads", "saw half", "bad rows",
              "final state");

  using mirroring = inventory_server::mirroring;
  const phase_result ets = run_phase(cfg, mirroring::separate_puts);
  const phase_result tx = run_phase(cfg, mirroring::transact);
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  for (const auto& [name, r] :
       {std::pair<const char*, const phase_result&>{"separate puts (ETS way)", ets},
        {"one transact per change", tx}}) {
    std::printf("%-26s %14llu %14llu %14llu %12s\n", name, u(r.readers.whole_reads),
                u(r.readers.torn_reads), u(r.readers.bad_rows), r.final_ok ? "equal" : "DIFFERS");
  }
  std::printf(
      "\nserver (transact run): %llu orders reserved, %llu rejected (out of stock), "
      "%llu shipped, %llu restocks\n",
      u(tx.counts[0]), u(tx.counts[1]), u(tx.counts[2]), u(tx.counts[3]));
  std::printf(
      "\"saw half\": whole-table reads (snapshot or pin) that caught a change half "
      "applied;\n\"bad rows\": single-row gets with reserved + available != total\n");

  bool ok = true;
  if (tx.readers.torn_reads != 0) {
    std::printf("FAILED: a reader saw a transaction half applied\n");
    ok = false;
  }
  if (ets.readers.bad_rows != 0 || tx.readers.bad_rows != 0) {
    std::printf("FAILED: a single row was seen torn\n");
    ok = false;
  }
  if (!ets.final_ok || !tx.final_ok) {
    std::printf("FAILED: the projection differs from the server's state after the run\n");
    ok = false;
  }
  if (!ok) return 1;
  std::printf("projection: OK (with transact, every reader saw every multi-row change whole)\n");
  return 0;
}
