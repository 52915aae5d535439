// Reads without copies or temporaries: string_view and const char* lookups on std::string
// keys build no std::string (this binary counts every allocation with a replaced global
// operator new), and visit() hands the value over in place. Separate from the unit tests
// because the replacement operator new applies to the whole program.
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

// This operator new/delete pair is malloc/free underneath; GCC cannot see that they match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  // relaxed: a counter read by the same thread after the measured calls.
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// Counts allocations made by this thread's calls in `fn` (owners are idle meanwhile).
template <class F>
std::size_t allocations_in(F&& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations.load();
}

struct counted {
  static inline std::atomic<int> copies{0};
  int v = 0;
  counted() = default;
  explicit counted(int x) : v(x) {}
  counted(const counted& o) : v(o.v) { ++copies; }
  counted(counted&&) noexcept = default;
  counted& operator=(const counted& o) {
    v = o.v;
    ++copies;
    return *this;
  }
  counted& operator=(counted&&) noexcept = default;
};

template <class C>
void string_view_lookups_allocate_nothing(C& c) {
  const std::string long_key(64, 'k');  // beyond the small-string buffer: a copy would allocate
  c.put(long_key, 7);
  c.put("short", 8);
  c.flush();
  (void)c.get(std::string_view(long_key));  // first use: the thread's slot and queue
  const std::string_view view(long_key);
  int sum = 0;
  EXPECT_EQ(allocations_in([&] {
              for (int i = 0; i < 100; ++i) {
                sum += c.get(view).value_or(0);
                sum += c.contains("short") ? 1 : 0;
                c.visit(view, [&](const int& v) { sum += v; });
              }
            }),
            0u);
  EXPECT_EQ(sum, 100 * (7 + 1 + 7));
  EXPECT_FALSE(c.contains(std::string_view("absent")));
}

TEST(Lookup, TableStringViewLookupsAllocateNothing) {
  warden::table<std::string, int> t;
  string_view_lookups_allocate_nothing(t);
  EXPECT_EQ(t.snapshot([](const auto& v) { return v.get(std::string_view("short")); }), 8);
}

TEST(Lookup, ActorStringViewLookupsFindTheKey) {
  warden::actor<std::string, int> a;  // a call per read: allocation-free is not promised
  a.put(std::string(64, 'k'), 7);
  EXPECT_EQ(a.get(std::string_view(std::string(64, 'k'))), 7);
  EXPECT_TRUE(a.contains("" + std::string(64, 'k')));
}

TEST(Lookup, VisitNeverCopiesTheValue) {
  warden::table<int, counted> t;
  t.put(1, counted(5));
  t.flush();
  counted::copies = 0;
  int seen = 0;
  EXPECT_TRUE(t.visit(1, [&](const counted& c) { seen = c.v; }));
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(counted::copies.load(), 0);
  warden::actor<int, counted> a;
  a.put(1, counted(6));
  counted::copies = 0;
  EXPECT_TRUE(a.visit(1, [&](const counted& c) { seen = c.v; }));
  EXPECT_EQ(seen, 6);
  EXPECT_EQ(counted::copies.load(), 0);
  EXPECT_EQ(t.snapshot([](const auto& v) { return v.find(1)->v; }), 5);
}

}  // namespace
