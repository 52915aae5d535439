// Must not compile: any_cache takes its backend over, so an lvalue needs std::move.
#include <warden/warden.hpp>
int main() {
  warden::table<int, int> t;
  warden::any_cache<int, int> a(t);
  return 0;
}
