#include "shared.hpp"

warden_vis::table* warden_vis_make() {
  auto* t = new warden_vis::table({.shards = 2});
  t->put(1, warden_vis::kTotal);
  t->put(2, 0);
  t->flush();
  return t;
}

void warden_vis_transfer(warden_vis::table* t, int transfers) {
  for (int i = 0; i < transfers; ++i) {
    t->transact([](auto& tx) {
      std::uint64_t a = tx.get(1).value_or(0), b = tx.get(2).value_or(0);
      if (a == 0) std::swap(a, b);  // move the other way once one side is empty
      tx.put(1, a - 1);
      tx.put(2, b + 1);
    });
  }
}

void warden_vis_destroy(warden_vis::table* t) { delete t; }

const void* warden_vis_owner_registry() { return &warden::detail::registry::instance(); }
