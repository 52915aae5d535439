// The control: the same includes and calls, written correctly, compile.
#include <memory>
#include <warden/warden.hpp>
int main() {
  warden::table<int, int> t;
  const int r = t.snapshot([](auto& v) { return v.find(1) ? *v.find(1) : 0; });
  warden::any_cache<int, int> a(std::move(t));
  return r + a.transact([](auto&) { return 0; });
}
