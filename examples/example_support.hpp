// What every example shares and none is about: `name=value` command-line arguments and a cheap
// per-thread random generator. Not part of warden.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string_view>
#include <system_error>

namespace warden_example {

// One `name=value` command-line argument: a non-negative integer, at least `min`.
struct arg_field {
  std::string_view name;
  std::size_t* value;
  std::size_t min = 1;
};

// Reads `name=value` arguments into the named fields; false (after a message) on a bad one.
inline bool parse_args(int argc, char** argv, std::initializer_list<arg_field> fields) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const std::size_t eq = arg.find('=');
    bool ok = false;
    for (const arg_field& f : fields) {
      if (eq == std::string_view::npos || arg.substr(0, eq) != f.name) continue;
      const char* end = arg.data() + arg.size();
      const auto [p, ec] = std::from_chars(arg.data() + eq + 1, end, *f.value);
      ok = ec == std::errc() && p == end && *f.value >= f.min;
    }
    if (!ok) {
      std::fprintf(stderr, "bad argument '%s'; expected name=integer, name one of:", argv[i]);
      for (const arg_field& f : fields) {
        std::fprintf(stderr, " %.*s (>= %zu)", static_cast<int>(f.name.size()), f.name.data(),
                     f.min);
      }
      std::fprintf(stderr, "\n");
      return false;
    }
  }
  return true;
}

inline std::uint64_t next_random(std::uint64_t& state) {  // xorshift64: cheap, per thread
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

}  // namespace warden_example
