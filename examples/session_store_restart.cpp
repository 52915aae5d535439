// session_store_restart: sessions with a time to live that survive a restart through
// dump() and restore().
//
// The Elixir pattern: an ETS session table dies with its node, so a deploy logs everybody out
// unless the table is saved first (:ets.tab2file / :ets.file2tab). warden's dump() writes
// every entry at one instant, with the time each has left to live, and restore() puts them
// all back as one batch. The dump depends only on the key and value types (and their codecs),
// not on the backend: here a warden::table writes it and a warden::actor reads it.
//
// The story: the old server logs four sessions in, each with its own time to live (put with a
// ttl; one, a service session, never expires), lets five minutes pass, dumps to a file and
// shuts down. The new server, on a clock that reads a different time, restores the file: each
// session keeps the time it had *left*, not its original deadline. After a few changes on the
// new server, two damaged copies of the file (truncated, and one bit flipped) are refused with
// warden::format_error, leaving the store exactly as it was. Then the clock moves and each
// session still there expires when its remaining time to live runs out, to the second.
//
// Time is a warden::manual_clock, so the output is the same on every run. The program exits
// non-zero if any check fails.
//
// Usage: session_store_restart (no arguments)
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <warden/warden.hpp>

namespace {

struct session {
  std::string user;
  std::uint32_t cart_items = 0;
  bool operator==(const session&) const = default;
};

}  // namespace

// dump() and restore() need a codec for every type they write; arithmetic types and
// std::string have one, so a struct's codec just writes its fields in order. `name` goes into
// the dump, so a file of other types (or an older session layout) is refused.
template <>
struct warden::codec<session> {
  static constexpr const char* name = "session/1";
  static void write(std::ostream& os, const session& s) {
    codec<std::string>::write(os, s.user);
    codec<std::uint32_t>::write(os, s.cart_items);
  }
  static session read(std::istream& is) {
    session s;
    s.user = codec<std::string>::read(is);
    s.cart_items = codec<std::uint32_t>::read(is);
    return s;
  }
};

namespace {

using namespace std::chrono_literals;
using std::chrono::seconds;
using store_contents = std::map<std::string, session>;

std::string hms(seconds s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s.count() / 3600),
                static_cast<long long>(s.count() / 60 % 60),
                static_cast<long long>(s.count() % 60));
  return buf;
}

template <warden::cache C>
store_contents contents(const C& c) {
  return c.snapshot([](const auto& view) {
    store_contents out;
    view.for_each([&](const std::string& id, const session& s) { out.emplace(id, s); });
    return out;
  });
}

void print(const char* title, const store_contents& sessions) {
  std::printf("%s: %zu session%s\n", title, sessions.size(), sessions.size() == 1 ? "" : "s");
  for (const auto& [id, s] : sessions) {
    std::printf("  %-10s %-16s cart %u\n", id.c_str(), s.user.c_str(), s.cart_items);
  }
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A session that expires, and the time it has left after the restart.
struct timed {
  std::string id;
  seconds left;
};

// The old server: logs sessions in, lets time pass, dumps, shuts down. Returns what it dumped.
store_contents old_server(const std::filesystem::path& file) {
  warden::manual_clock clock(9h);  // the old server's clock reads 9:00:00
  warden::table<std::string, session> store({.clock = &clock});
  store.put("s-alice", {"alice", 3}, 30min);
  store.put("s-bob", {"bob", 0}, 10min);
  store.put("s-carol", {"carol", 7}, 2h);
  store.put("s-export", {"nightly-export", 0});  // no ttl: never expires
  store.flush();
  clock.advance(5min);
  store.put("s-alice", {"alice", 4}, 30min);  // a request: a new cart, and 30 min again
  store.flush();

  std::ofstream out(file, std::ios::binary);
  store.dump(out);  // a snapshot: writers could keep going meanwhile
  out.close();
  const store_contents dumped = contents(store);
  print("old server (a table) at 9:05:00, dumped", dumped);
  std::printf("  time left: s-alice 0:30:00, s-bob 0:05:00, s-carol 1:55:00, s-export none\n");
  return dumped;
}  // the table is destroyed here: the "process" is gone

// Restores a damaged copy of the dump; true if it was refused and changed nothing.
template <warden::cache C>
bool refused_intact(C& store, const std::filesystem::path& copy, const char* what) {
  const store_contents before = contents(store);
  try {
    std::ifstream in(copy, std::ios::binary);
    store.restore(in);
    std::printf("FAILED: a %s dump was restored\n", what);
    return false;
  } catch (const warden::format_error& e) {
    const bool same = contents(store) == before;
    std::printf("restore(%s copy): format_error \"%s\"; store %s\n", what, e.what(),
                same ? "unchanged" : "CHANGED");
    return same;
  }
}

bool run(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "sessions.dump";
  const store_contents dumped = old_server(file);
  std::printf("dump file: %ju bytes\n",
              static_cast<std::uintmax_t>(std::filesystem::file_size(file)));

  // The new server: the other backend, and a clock that reads 17:30:00.
  warden::manual_clock clock(17h + 30min);
  warden::actor<std::string, session> store({.clock = &clock});
  {
    std::ifstream in(file, std::ios::binary);
    store.restore(in);  // one batch: the sessions appear together
  }
  const store_contents restored = contents(store);
  print("new server (an actor) at 17:30:00, restored", restored);
  bool ok = restored == dumped;

  // Life goes on: carol logs out, dave logs in. A damaged restore must not bring carol back.
  store.erase("s-carol");
  store.put("s-dave", {"dave", 1}, 1h);
  store.flush();

  const std::string bytes = read_file(file);
  write_file(dir / "truncated.dump", bytes.substr(0, bytes.size() / 2));
  std::string flipped = bytes;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x04);
  write_file(dir / "flipped.dump", flipped);
  ok = refused_intact(store, dir / "truncated.dump", "truncated") && ok;
  ok = refused_intact(store, dir / "flipped.dump", "bit-flipped") && ok;

  // Each session expires exactly when the time it had left runs out: one second before, it is
  // there; at its deadline, it is gone (with manual_clock, right after advance()).
  const std::vector<timed> deadlines = {{"s-bob", 5min}, {"s-alice", 30min}, {"s-dave", 1h}};
  seconds elapsed{0};
  for (const timed& t : deadlines) {
    clock.advance(t.left - 1s - elapsed);
    const bool before = store.contains(t.id);
    clock.advance(1s);
    elapsed = t.left;
    const bool after = store.contains(t.id);
    std::printf("+%s  %-8s %s; +%s gone: %s\n", hms(t.left - 1s).c_str(), t.id.c_str(),
                before ? "still here" : "MISSING", hms(t.left).c_str(), after ? "NO" : "yes");
    ok = ok && before && !after;
  }
  clock.advance(24h);
  store.flush();  // the owner removes what has expired; size() then counts none
  const store_contents left = contents(store);
  print("a day later", left);
  ok = ok && left.size() == 1 && store.size() == 1 && left.count("s-export") == 1;
  return ok;
}

}  // namespace

int main() {
  std::printf("session_store_restart: sessions with a time to live, saved across a restart\n");
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("warden_session_store_restart." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  bool ok = false;
  try {
    ok = run(dir);
  } catch (const std::exception& e) {
    std::printf("FAILED: %s\n", e.what());
  }
  std::filesystem::remove_all(dir);
  if (!ok) {
    std::printf("FAILED: a session was lost, outlived its time, or a damaged dump got in\n");
    return 1;
  }
  std::printf(
      "session_store_restart: OK (sessions kept their time to live across backends; damaged "
      "dumps changed nothing)\n");
  return 0;
}
