// Must not compile: a transact function returning a reference.
#include <warden/warden.hpp>
int main() {
  warden::any_cache<int, int> a(warden::actor<int, int>{});
  static int x = 0;
  int& r = a.transact([](auto&) -> int& { return x; });
  return r;
}
