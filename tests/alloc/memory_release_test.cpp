// Memory goes back after mass erasure: a cache that held many entries and lost nearly all of
// them holds a fraction of its peak (absl's maps never shrink on erase; the owners rebuild a
// map that falls under 1/8 full). Live bytes are counted by a replaced global operator new
// (its own binary, as the replacement applies to the whole program).
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

// This operator new/delete pair is malloc/free underneath; GCC cannot see that they match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<std::int64_t> g_live{0};  // bytes handed out and not yet freed, all threads
}  // namespace

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  // relaxed: a statistic read after flush(), whose reply orders the owner's allocations.
  g_live.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  // relaxed: as above.
  g_live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace {

constexpr std::uint64_t kEntries = 200000;
constexpr std::uint64_t kKept = 1000;

std::int64_t live() { return g_live.load(std::memory_order_relaxed); }  // relaxed: as above

// Returns {bytes held with every entry, bytes held once all but kKept are erased}.
template <class C>
std::pair<std::int64_t, std::int64_t> footprints(C& c) {
  const std::int64_t empty = live();
  for (std::uint64_t i = 0; i < kEntries; ++i) {
    c.put(i, i);
    if (i % 4096 == 0) c.flush();
  }
  c.flush();
  c.put(0, 0);  // a second batch: the table's other copy replays the first
  c.flush();
  const std::int64_t full = live() - empty;
  for (std::uint64_t i = kKept; i < kEntries; ++i) {
    c.erase(i);
    if (i % 4096 == 0) c.flush();
  }
  c.flush();
  c.put(0, 0);
  c.flush();
  const std::int64_t after = live() - empty;
  std::printf("%lld bytes with %llu entries, %lld after erasing all but %llu\n",
              static_cast<long long>(full), static_cast<unsigned long long>(kEntries),
              static_cast<long long>(after), static_cast<unsigned long long>(kKept));
  for (std::uint64_t i = 0; i < kKept; ++i) EXPECT_EQ(c.get(i).value_or(~0ull), i);
  EXPECT_EQ(c.size(), kKept);
  return {full, after};
}

TEST(MemoryRelease, TableGivesMemoryBackAfterMassErasure) {
  warden::table<std::uint64_t, std::uint64_t> t;
  const auto [full, after] = footprints(t);
  EXPECT_LT(after, full / 10) << "held " << full << " bytes full, " << after << " after erasing";
}

TEST(MemoryRelease, ActorGivesMemoryBackAfterMassErasure) {
  warden::actor<std::uint64_t, std::uint64_t> a;
  const auto [full, after] = footprints(a);
  EXPECT_LT(after, full / 10) << "held " << full << " bytes full, " << after << " after erasing";
}

}  // namespace
