// Must not compile: a snapshot function returning a reference into the copy it read.
#include <warden/warden.hpp>
int main() {
  warden::table<int, int> t;
  const int& r = t.snapshot([](auto& v) -> const int& { return *v.find(1); });
  return r;
}
