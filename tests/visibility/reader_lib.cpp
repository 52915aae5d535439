#include "shared.hpp"

std::uint64_t warden_vis_read(const warden_vis::table* t, const std::atomic<bool>* stop) {
  std::uint64_t torn = 0;
  // relaxed: a stop flag; the result is handed over by the thread's join.
  while (!stop->load(std::memory_order_relaxed)) {
    torn += t->snapshot([](const auto& view) {
      return view.get(1).value_or(0) + view.get(2).value_or(0) != warden_vis::kTotal ? 1 : 0;
    });
    const warden_vis::table::pinned pin = t->pin();
    for (int i = 0; i < 16; ++i) {
      if (pin.get(1).value_or(0) + pin.get(2).value_or(0) != warden_vis::kTotal) ++torn;
    }
  }
  return torn;
}

const void* warden_vis_reader_registry() { return &warden::detail::registry::instance(); }
