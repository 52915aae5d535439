// hit_ratio: replays public cache traces and prints a markdown table of hit ratios, so the
// eviction policy (warden::detail::wtinylfu) can be judged against LRU, Belady's OPT and the
// published W-TinyLFU figures (docs in bench/traces/README.md).
//
// Every trace event is one access; a miss inserts the key. LRU and OPT are exact. The policy is
// driven single-threaded (present -> record_hit; absent -> record_miss, add, evict_excess) over
// an arena of reused node indices, as the cache's owner drives it; those columns are
// deterministic. The columns "table" and "actor" replay the trace through the real cache as a
// user would (get; on a miss put and flush), and "4 threads" from four threads at once (taking
// turns through one trace on one cache, or each its own copy of the trace on its own keys on a
// cache four times the size): access records are lossy, so these may move a little.
//
// Usage: hit_ratio [--trace name=path[:lirs|arc]]... [--sizes 1000,2000] [--dir traces_dir]
//                  [--policy-only]
// Without --trace it replays every trace of the bundled set (bench/traces) at its usual sizes.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <warden/detail/wtinylfu.hpp>
#include <warden/warden.hpp>

namespace {

enum class trace_format { lirs, arc };

struct trace {
  std::string name;
  std::vector<std::uint64_t> keys;  // the original keys, for hashing
  std::vector<std::uint32_t> ids;   // the same accesses as dense ids 0..distinct-1
  std::size_t distinct = 0;
};

// Opens `path` for reading, through the system's decompressor when its suffix asks for one.
std::FILE* open_trace(const std::string& path, bool& piped) {
  const std::string_view p(path);
  const char* tool = nullptr;
  if (p.ends_with(".zst")) tool = "zstd -dc";
  if (p.ends_with(".xz")) tool = "xz -dc";
  if (p.ends_with(".gz")) tool = "gzip -dc";
  piped = tool != nullptr;
  if (!piped) return std::fopen(path.c_str(), "r");
  std::string quoted = "'";
  for (char c : path) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  return popen((std::string(tool) + " " + quoted).c_str(), "r");
}

// Parses one unsigned integer at the start of `s` (after blanks); nullopt if there is none.
std::optional<std::uint64_t> parse_u64(const char*& s) {
  while (*s == ' ' || *s == '\t') ++s;
  if (*s < '0' || *s > '9') return std::nullopt;
  std::uint64_t v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + static_cast<std::uint64_t>(*s++ - '0');
  return v;
}

std::optional<trace> load_trace(const std::string& name, const std::string& path,
                                trace_format format) {
  bool piped = false;
  std::FILE* f = open_trace(path, piped);
  if (f == nullptr) return std::nullopt;
  trace t;
  t.name = name;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    const char* s = line;
    const auto first = parse_u64(s);
    if (!first) continue;  // LIRS traces hold '*' markers and blank lines
    if (format == trace_format::lirs) {
      t.keys.push_back(*first);
      continue;
    }
    const auto count = parse_u64(s);
    if (!count) continue;
    for (std::uint64_t i = 0; i < *count; ++i) t.keys.push_back(*first + i);
  }
  const int rc = piped ? pclose(f) : std::fclose(f);
  if (rc != 0 || t.keys.empty()) return std::nullopt;
  std::unordered_map<std::uint64_t, std::uint32_t> dense;
  dense.reserve(t.keys.size());
  t.ids.reserve(t.keys.size());
  for (std::uint64_t k : t.keys) {
    t.ids.push_back(dense.try_emplace(k, static_cast<std::uint32_t>(dense.size())).first->second);
  }
  t.distinct = dense.size();
  return t;
}

double percent(std::size_t hits, std::size_t total) {
  return total == 0 ? 0.0 : 100.0 * static_cast<double>(hits) / static_cast<double>(total);
}

// ---- Exact LRU: a doubly linked list over dense ids. ----
double lru_hit_ratio(const trace& t, std::size_t capacity) {
  constexpr std::uint32_t nil = std::numeric_limits<std::uint32_t>::max();
  std::vector<std::uint32_t> prev(t.distinct, nil), next(t.distinct, nil);
  std::vector<bool> present(t.distinct, false);
  std::uint32_t head = nil, tail = nil;  // head = LRU end
  std::size_t size = 0, hits = 0;
  auto unlink = [&](std::uint32_t n) {
    (prev[n] != nil ? next[prev[n]] : head) = next[n];
    (next[n] != nil ? prev[next[n]] : tail) = prev[n];
  };
  auto push = [&](std::uint32_t n) {
    prev[n] = tail;
    next[n] = nil;
    (tail != nil ? next[tail] : head) = n;
    tail = n;
  };
  for (std::uint32_t id : t.ids) {
    if (present[id]) {
      ++hits;
      unlink(id);
      push(id);
      continue;
    }
    present[id] = true;
    push(id);
    if (++size > capacity) {
      const std::uint32_t victim = head;
      unlink(victim);
      present[victim] = false;
      --size;
    }
  }
  return percent(hits, t.ids.size());
}

// ---- Belady's OPT: evict the entry whose next use is farthest (the new key included). ----
double opt_hit_ratio(const trace& t, std::size_t capacity) {
  const std::size_t n = t.ids.size();
  const std::size_t never = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> next_use(n), last(t.distinct, never);
  for (std::size_t i = n; i-- > 0;) {
    next_use[i] = last[t.ids[i]];
    last[t.ids[i]] = i;
  }
  std::set<std::pair<std::size_t, std::uint32_t>> by_next;  // (next use, id)
  std::vector<std::size_t> held(t.distinct, 0);             // held next use + 1; 0 = absent
  std::size_t hits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t id = t.ids[i];
    if (held[id] != 0) {
      ++hits;
      by_next.erase({held[id] - 1, id});
    }
    by_next.insert({next_use[i], id});
    held[id] = next_use[i] + 1;
    if (by_next.size() > capacity) {
      const auto farthest = std::prev(by_next.end());
      held[farthest->second] = 0;
      by_next.erase(farthest);
    }
  }
  return percent(hits, n);
}

// ==== HOOK: replaying a trace through any cache-like thing. ====
// `access(key, dense_id)` performs one access and returns true on a hit. The wtinylfu column
// below uses it with the bare policy; a column "through the real cache" plugs in a lambda that
// does `get`, and on a miss `put` followed by `flush()`, on a warden::table or warden::actor
// built with `max_size = capacity`:
//   replay(t, [&](std::uint64_t key, std::uint32_t) {
//     if (cache.get(key)) return true;
//     cache.put(key, key);
//     cache.flush();
//     return false;
//   });
template <class Access>
double replay(const trace& t, Access&& access) {
  std::size_t hits = 0;
  for (std::size_t i = 0; i < t.ids.size(); ++i) hits += access(t.keys[i], t.ids[i]) ? 1 : 0;
  return percent(hits, t.ids.size());
}

// The policy as the cache's owner drives it: an arena of node indices reused after eviction.
struct policy_run {
  double hit_percent = 0;
  std::size_t final_window = 0;
};

policy_run wtinylfu_hit_ratio(const trace& t, std::size_t capacity) {
  constexpr std::uint32_t absent = std::numeric_limits<std::uint32_t>::max();
  warden::detail::wtinylfu policy(capacity);
  std::vector<std::uint32_t> node_of(t.distinct, absent);  // dense id -> node
  std::vector<std::uint32_t> id_of;                        // node -> dense id
  std::vector<std::uint32_t> free_nodes;
  policy_run run;
  run.hit_percent = replay(t, [&](std::uint64_t key, std::uint32_t id) {
    // Keys are their own hashes: the policy must cope with identity hashes.
    const std::uint64_t hash = key;
    if (node_of[id] != absent) {
      policy.record_hit(node_of[id]);
      return true;
    }
    policy.record_miss(hash);
    std::uint32_t node;
    if (free_nodes.empty()) {
      node = static_cast<std::uint32_t>(id_of.size());
      id_of.push_back(id);
    } else {
      node = free_nodes.back();
      free_nodes.pop_back();
      id_of[node] = id;
    }
    node_of[id] = node;
    policy.add(node, hash);
    policy.evict_excess([&](std::uint32_t victim) {
      node_of[id_of[victim]] = absent;
      free_nodes.push_back(victim);
    });
    return false;
  });
  run.final_window = policy.window_maximum();
  return run;
}

// The trace through a real cache, as a user would drive it: get; on a miss put and flush.
template <class Cache>
double cache_hit_ratio(const trace& t, Cache& cache) {
  return replay(t, [&](std::uint64_t key, std::uint32_t) {
    if (cache.get(key)) return true;
    cache.put(key, key);
    cache.flush();
    return false;
  });
}

// The same replay from `threads` threads at once. shared: they take turns through one trace,
// in its order (thread i replays accesses i, i + threads, ..., each after the one before it
// is done), on one cache of `capacity`: the accesses are the trace's, only the threads and
// their per-thread access buffers differ. disjoint: each replays the whole trace on its own
// keys, freely interleaved, on one cache of threads x capacity. Returns the overall hit %.
double concurrent_hit_ratio(const trace& t, std::size_t capacity, int threads, bool shared) {
  warden::table<std::uint64_t, std::uint64_t> cache(
      {.owners = 1, .max_size = shared ? capacity : capacity * static_cast<std::size_t>(threads)});
  std::atomic<std::size_t> hits{0}, total{0};
  std::atomic<std::size_t> turn{0};  // shared: the next access of the trace to perform
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      std::size_t h = 0, n = 0;
      const std::uint64_t salt = shared ? 0 : static_cast<std::uint64_t>(i) << 48;
      const std::size_t step = shared ? static_cast<std::size_t>(threads) : 1;
      for (std::size_t j = shared ? static_cast<std::size_t>(i) : 0; j < t.keys.size(); j += step) {
        if (shared) {
          // acquire: the previous access (another thread's) is complete.
          while (turn.load(std::memory_order_acquire) != j) std::this_thread::yield();
        }
        const std::uint64_t key = t.keys[j] ^ salt;
        ++n;
        if (cache.get(key)) {
          ++h;
        } else {
          cache.put(key, key);
          cache.flush();
        }
        if (shared) turn.store(j + 1, std::memory_order_release);  // release: see above
      }
      hits += h;
      total += n;
    });
  }
  for (auto& th : pool) th.join();
  return percent(hits.load(), total.load());
}

// ---- The bundled traces, their usual sizes, and the published W-TinyLFU figures. ----
struct known_trace {
  const char* name;
  const char* file;
  trace_format format;
  std::vector<std::size_t> sizes;
};

const std::vector<known_trace>& bundled() {
  static const std::vector<known_trace> traces = {
      {"OLTP", "OLTP.lis.xz", trace_format::arc, {1000, 2000}},
      {"gli", "gli.trace.xz", trace_format::lirs, {250, 500, 1000, 2000}},
      {"multi1", "multi1.trace.xz", trace_format::lirs, {500, 1000, 2000}},
      {"multi2", "multi2.trace.xz", trace_format::lirs, {500, 1000, 2000}},
      {"multi3", "multi3.trace.xz", trace_format::lirs, {500, 1000, 2000}},
      {"cs", "cs.trace.xz", trace_format::lirs, {100, 300, 500}},
      {"cpp", "cpp.trace.xz", trace_format::lirs, {100, 200, 400}},
      {"ps", "ps.trace.xz", trace_format::lirs, {200, 500, 1000}},
      {"loop", "loop.trace.xz", trace_format::lirs, {256, 512, 1024}},
      {"2_pools", "2_pools.trace.xz", trace_format::lirs, {200, 400, 800}},
      {"sprite", "sprite.trace.xz", trace_format::lirs, {100, 500, 1000}},
      {"zigzag", "zigzag.trace.xz", trace_format::lirs, {500, 1000, 2000}},
      {"backf", "backf.trace.xz", trace_format::lirs, {500, 1000, 2000}},
      {"scan", "scan.trace.xz", trace_format::lirs, {500, 1000, 2000}},
  };
  return traces;
}

// Published W-TinyLFU hit % (docs: /work/shared/CACHE-NOTES.md), from single-threaded
// simulations of Caffeine's design: a static 1% window, and the classic hill climber.
struct published_figures {
  double static_window;
  double hill_climber;
};

std::optional<published_figures> published(std::string_view name, std::size_t size) {
  static const std::map<std::pair<std::string_view, std::size_t>, published_figures> figures = {
      {{"OLTP", 1000}, {35.5, 40.0}},   {{"OLTP", 2000}, {42.0, 45.9}},
      {{"gli", 1000}, {50.8, 50.8}},    {{"multi3", 1000}, {51.3, 51.2}},
      {{"zigzag", 1000}, {43.3, 43.6}}, {{"sprite", 500}, {74.1, 76.4}},
  };
  const auto it = figures.find({name, size});
  if (it == figures.end()) return std::nullopt;
  return it->second;
}

std::vector<std::size_t> parse_sizes(const std::string& s) {
  std::vector<std::size_t> sizes;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t comma = std::min(s.find(',', pos), s.size());
    sizes.push_back(static_cast<std::size_t>(std::stoull(s.substr(pos, comma - pos))));
    pos = comma + 1;
  }
  return sizes;
}

struct job {
  std::string name;
  std::string path;
  trace_format format;
  std::vector<std::size_t> sizes;
};

int usage() {
  std::fprintf(stderr,
               "usage: hit_ratio [--trace name=path[:lirs|arc]]... [--sizes 1000,2000]"
               " [--dir traces_dir] [--policy-only]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(__FILE__).parent_path() / "traces";
  std::vector<job> jobs;
  std::vector<std::size_t> sizes;
  bool real = true;  // the columns through warden's table and actor
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--policy-only") {
      real = false;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (arg == "--sizes") {
      sizes = parse_sizes(value);
    } else if (arg == "--dir") {
      dir = value;
    } else if (arg == "--trace") {
      const std::size_t eq = value.find('=');
      if (eq == std::string::npos) return usage();
      job j{value.substr(0, eq), value.substr(eq + 1), trace_format::lirs, {}};
      const std::size_t colon = j.path.rfind(':');
      const std::string suffix = colon == std::string::npos ? "" : j.path.substr(colon + 1);
      if (suffix == "lirs" || suffix == "arc") {
        j.format = suffix == "arc" ? trace_format::arc : trace_format::lirs;
        j.path.resize(colon);
      } else if (j.path.find(".lis") != std::string::npos) {
        j.format = trace_format::arc;
      }
      jobs.push_back(std::move(j));
    } else {
      return usage();
    }
  }
  if (jobs.empty()) {
    for (const known_trace& k : bundled()) {
      jobs.push_back({k.name, (dir / k.file).string(), k.format, k.sizes});
    }
  }
  std::printf(
      "| trace | size | LRU | OPT | wtinylfu | final window | table | actor | table, 4 threads"
      " shared | table, 4 threads disjoint | published 1%% window | published hill climber |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const job& j : jobs) {
    const auto t = load_trace(j.name, j.path, j.format);
    if (!t) {
      std::fprintf(stderr, "hit_ratio: cannot read trace %s (%s)\n", j.name.c_str(),
                   j.path.c_str());
      return 1;
    }
    const std::vector<std::size_t>& run_sizes = !sizes.empty()     ? sizes
                                                : !j.sizes.empty() ? j.sizes
                                                                   : std::vector<std::size_t>{1000};
    for (std::size_t size : run_sizes) {
      const policy_run w = wtinylfu_hit_ratio(*t, size);
      const auto pub = published(j.name, size);
      char pub_static[16] = "-", pub_climber[16] = "-";
      if (pub) {
        std::snprintf(pub_static, sizeof pub_static, "%.1f", pub->static_window);
        std::snprintf(pub_climber, sizeof pub_climber, "%.1f", pub->hill_climber);
      }
      double table_hits = -1, actor_hits = -1, shared4 = -1, disjoint4 = -1;
      if (real) {
        warden::table<std::uint64_t, std::uint64_t> table({.max_size = size});
        table_hits = cache_hit_ratio(*t, table);
        warden::actor<std::uint64_t, std::uint64_t> actor({.max_size = size});
        actor_hits = cache_hit_ratio(*t, actor);
        shared4 = concurrent_hit_ratio(*t, size, 4, true);
        disjoint4 = concurrent_hit_ratio(*t, size, 4, false);
      }
      const auto cell = [](double v) {
        char buf[16] = "-";
        if (v >= 0) std::snprintf(buf, sizeof buf, "%.2f", v);
        return std::string(buf);
      };
      std::printf("| %s | %zu | %.2f | %.2f | %.2f | %zu | %s | %s | %s | %s | %s | %s |\n",
                  j.name.c_str(), size, lru_hit_ratio(*t, size), opt_hit_ratio(*t, size),
                  w.hit_percent, w.final_window, cell(table_hits).c_str(), cell(actor_hits).c_str(),
                  cell(shared4).c_str(), cell(disjoint4).c_str(), pub_static, pub_climber);
      std::fflush(stdout);
    }
  }
  return 0;
}
