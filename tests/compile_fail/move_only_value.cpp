// Must not compile: values are copied (two left-right copies, reads return copies).
#include <memory>
#include <warden/warden.hpp>
int main() {
  warden::table<int, std::unique_ptr<int>> t;
  return 0;
}
