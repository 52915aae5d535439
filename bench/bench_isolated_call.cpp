// An isolated call on an idle cache, as a request now and then sees it: one update_counter
// every 5 ms (the owner parks between them), each timed alone; p50 / p99 over 400 calls on
// the table, the table with symmetric fences (its readers fence, so a publication needs no
// membarrier()), and the actor. Such a call finds its owner parked and runs the owner's cycle
// in the calling thread (combining: owner_loop.hpp). Beside them, the floor a hand-off to a
// parked thread would pay here: wake a thread parked on a futex (std::atomic::wait) after the
// same idle time and wait, parked, for its answer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include <warden/actor.hpp>
#include <warden/table.hpp>

namespace {

constexpr int kRounds = 400;
constexpr auto kIdle = std::chrono::milliseconds(5);

void report(const char* name, std::vector<double>& us) {
  std::sort(us.begin(), us.end());
  std::printf("%-28s p50 %6.1f us   p99 %6.1f us\n", name, us[us.size() / 2],
              us[us.size() * 99 / 100]);
}

template <class C>
void isolated_calls(const char* name, C c) {
  for (std::uint64_t k = 0; k < 1000; ++k) c.put(k, k);
  c.flush();
  std::vector<double> us;
  for (int i = 0; i < kRounds; ++i) {
    std::this_thread::sleep_for(kIdle);
    const auto t0 = std::chrono::steady_clock::now();
    c.update_counter(static_cast<std::uint64_t>(i % 1000), 1);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  report(name, us);
}

void futex_round_trips() {
  std::atomic<int> request{0};
  std::atomic<int> reply{0};
  std::thread peer([&] {
    for (int i = 1; i <= kRounds; ++i) {
      request.wait(i - 1);  // seq_cst throughout: the strongest order, nothing to argue
      reply.store(i);
      reply.notify_one();
    }
  });
  std::vector<double> us;
  for (int i = 1; i <= kRounds; ++i) {
    std::this_thread::sleep_for(kIdle);
    const auto t0 = std::chrono::steady_clock::now();
    request.store(i);
    request.notify_one();
    reply.wait(i - 1);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  peer.join();
  report("futex round trip (floor)", us);
}

}  // namespace

int main() {
  futex_round_trips();
  using table = warden::table<std::uint64_t, std::uint64_t>;
  isolated_calls("table update_counter", table());
  isolated_calls("table, symmetric fences",
                 table(warden::table_options{.asymmetric_fence = false}));
  isolated_calls("actor update_counter", warden::actor<std::uint64_t, std::uint64_t>());
}
