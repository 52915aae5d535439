// session_store: Plug.Session.ETS-style sessions in a warden::table<std::string, session>.
//
// The Elixir pattern: a web server keeps sessions in an ETS table; login inserts the session,
// every request looks it up (from whichever process serves the request), logout deletes it.
// Here several worker threads play the request handlers: each logs users in (put), serves
// requests that read their own sessions and other workers' sessions (get, in the caller's
// thread, lock-free), records each request in the session (put, a cast) and logs most users
// out again (erase).
//
// The point to notice: put and erase are casts. They return before the owner has applied them,
// so a handler that needs the next request (perhaps on another thread) to see the login, or
// the logout to be final, calls flush() first; that is what login and logout do below. The
// per-request update is left as a plain cast: a later read may see the previous request count
// for a moment ("stale reads" in the output), which is harmless for a last-seen counter.
//
// What to look at in the output: the counts, and that there are no mismatches. The program
// checks that every session read back (own or another worker's) is exactly the one written for
// that id, that a logged-out session is gone after flush, and that at the end every live
// session holds its final request count and size() equals the number of live sessions.
//
// Usage: session_store [threads=4] [sessions=20000] [requests=8]
//   threads: worker threads; sessions: logins per worker; requests: requests per session.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "example_support.hpp"

namespace {

using warden_example::next_random;
using warden_example::parse_args;

struct session {
  std::uint64_t user_id = 0;
  std::string user_name;
  std::int64_t expires_at = 0;  // unix seconds
  std::uint32_t requests = 0;   // requests served in this session so far
};

// Everything about session `i` of worker `t` except its request count follows from its id, so
// any thread can tell a correct read from a wrong one.
std::string session_id(std::size_t t, std::size_t i) {
  return "sid-" + std::to_string(t) + "-" + std::to_string(i);
}
session expected_session(std::size_t t, std::size_t i, std::uint32_t requests) {
  const std::uint64_t user = t * 1'000'000 + i + 1;
  return session{user, "user" + std::to_string(user),
                 1'700'000'000 + static_cast<std::int64_t>(user % 86'400), requests};
}
bool same_user(const session& a, const session& b) {
  return a.user_id == b.user_id && a.user_name == b.user_name && a.expires_at == b.expires_at;
}
// Every `kKeepEvery`-th session stays logged in at the end; the rest log out.
constexpr std::size_t kKeepEvery = 4;

struct config {
  std::size_t threads = 4;
  std::size_t sessions = 20000;
  std::size_t requests = 8;
};

struct worker_stats {
  std::uint64_t logins = 0, requests = 0, logouts = 0;
  std::uint64_t stale_reads = 0;                   // own session, previous request count
  std::uint64_t other_hits = 0, other_misses = 0;  // other workers' sessions
  std::uint64_t mismatches = 0;                    // a read that returned a wrong session
};

void worker(warden::table<std::string, session>& store, const config& cfg, std::size_t t,
            worker_stats& st) {
  std::uint64_t rng = 0x9E3779B97F4A7C15ULL * (t + 1);
  for (std::size_t i = 0; i < cfg.sessions; ++i) {
    const std::string sid = session_id(t, i);

    // Login: insert, then flush so that the user's next request sees the session whichever
    // thread serves it.
    store.put(sid, expected_session(t, i, 0));
    store.flush();
    ++st.logins;

    for (std::size_t r = 0; r < cfg.requests; ++r) {
      // Each request looks its session up (lock-free, in this thread) ...
      const std::optional<session> s = store.get(sid);
      const session want = expected_session(t, i, static_cast<std::uint32_t>(r));
      if (!s || !same_user(*s, want) || s->requests > r) {
        ++st.mismatches;
      } else if (s->requests != r) {
        ++st.stale_reads;  // the previous request's cast is not applied yet: allowed
      }
      // ... and records itself in it: a cast, not flushed.
      session updated = want;
      updated.requests = static_cast<std::uint32_t>(r + 1);
      store.put(sid, std::move(updated));
      ++st.requests;

      // Meanwhile, some other worker's user shows up on this thread: absent (not logged in
      // yet, or logged out) or exactly that user's session, never another one.
      const std::size_t ot = next_random(rng) % cfg.threads;
      const std::size_t oi = next_random(rng) % cfg.sessions;
      if (const std::optional<session> o = store.get(session_id(ot, oi))) {
        if (!same_user(*o, expected_session(ot, oi, 0))) ++st.mismatches;
        ++st.other_hits;
      } else {
        ++st.other_misses;
      }
    }

    if (i % kKeepEvery != 0) {
      // Logout: erase, then flush, after which no thread can find the session.
      store.erase(sid);
      store.flush();
      ++st.logouts;
      if (store.get(sid).has_value()) ++st.mismatches;
    }
  }
  store.flush();  // the last requests' casts
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  if (!parse_args(
          argc, argv,
          {{"threads", &cfg.threads}, {"sessions", &cfg.sessions}, {"requests", &cfg.requests}})) {
    return 2;
  }
  std::printf("session_store: %zu worker threads x %zu logins, %zu requests per session\n",
              cfg.threads, cfg.sessions, cfg.requests);

  worker_stats total;
  std::uint64_t final_mismatches = 0, live = 0;
  std::size_t size = 0;
  {
    warden::table<std::string, session> store;
    std::vector<worker_stats> stats(cfg.threads);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < cfg.threads; ++t) {
      workers.emplace_back([&, t] { worker(store, cfg, t, stats[t]); });
    }
    for (auto& w : workers) w.join();
    for (const worker_stats& s : stats) {
      total.logins += s.logins;
      total.requests += s.requests;
      total.logouts += s.logouts;
      total.stale_reads += s.stale_reads;
      total.other_hits += s.other_hits;
      total.other_misses += s.other_misses;
      total.mismatches += s.mismatches;
    }

    // Every worker flushed before it exited: the table is final.
    for (std::size_t t = 0; t < cfg.threads; ++t) {
      for (std::size_t i = 0; i < cfg.sessions; ++i) {
        const std::optional<session> s = store.get(session_id(t, i));
        if (i % kKeepEvery == 0) {
          ++live;
          const session want = expected_session(t, i, static_cast<std::uint32_t>(cfg.requests));
          if (!s || !same_user(*s, want) || s->requests != want.requests) ++final_mismatches;
        } else if (s) {
          ++final_mismatches;  // logged out, yet still there
        }
      }
    }
    size = store.size();
  }

  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("logins %llu, requests %llu, logouts %llu\n", u(total.logins), u(total.requests),
              u(total.logouts));
  std::printf("own-session reads: %llu saw the previous request count (cast not applied yet)\n",
              u(total.stale_reads));
  std::printf("other workers' sessions: %llu found, %llu absent (not yet in or already out)\n",
              u(total.other_hits), u(total.other_misses));
  std::printf("live sessions at the end: %llu expected, size() = %zu\n", u(live), size);
  std::printf("wrong reads during the run: %llu, wrong sessions at the end: %llu\n",
              u(total.mismatches), u(final_mismatches));

  if (total.mismatches != 0 || final_mismatches != 0 || size != live) {
    std::printf("FAILED: a session read back wrong, survived its logout, or went missing\n");
    return 1;
  }
  std::printf(
      "session_store: OK (every live session reads back correctly; logged-out ones are "
      "gone)\n");
  return 0;
}
