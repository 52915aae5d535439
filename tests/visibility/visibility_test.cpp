// Readers in one shared library, the owner in another, both built with -fvisibility=hidden
// and -fvisibility-inlines-hidden, so each has its own copy of warden's inline variables
// (thread records, their registry, the thread_local state): checked first, or the test would
// test nothing. The owner must still see every reader of its table (the reader slots belong
// to the table, not to a process-wide registry), so no snapshot or pin ever sees the two
// keys' sum broken while transactions move units between them. Exits non-zero otherwise.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "shared.hpp"

int main() {
  if (warden_vis_owner_registry() == warden_vis_reader_registry()) {
    std::puts("visibility: FAILED, the two libraries share warden's state; nothing is tested");
    return 1;
  }
  warden_vis::table* t = warden_vis_make();
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> torn(2, 0);
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < torn.size(); ++i) {
    readers.emplace_back([&, i] { torn[i] = warden_vis_read(t, &stop); });
  }
  warden_vis_transfer(t, 1000);
  stop.store(true, std::memory_order_relaxed);  // relaxed: see warden_vis_read
  for (auto& r : readers) r.join();
  warden_vis_destroy(t);
  const std::uint64_t total = torn[0] + torn[1];
  if (total != 0) {
    std::printf("visibility: FAILED, %llu reads saw a broken sum\n",
                static_cast<unsigned long long>(total));
    return 1;
  }
  std::puts("visibility: OK, the owner saw every reader of the other library");
  return 0;
}
