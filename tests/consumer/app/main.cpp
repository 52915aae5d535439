// Uses warden the way an application would: umbrella header, one table, one actor.
#include <cstdio>
#include <string>

#include <warden/warden.hpp>

int main() {
  warden::table<std::string, int> t;
  t.put("answer", 42);
  t.flush();
  warden::any_cache<std::string, int> a = warden::actor<std::string, int>();
  a.put("answer", *t.get("answer"));
  const int got = a.get("answer").value_or(0);
  std::printf("consumer ok: %d\n", got);
  return got == 42 ? 0 : 1;
}
