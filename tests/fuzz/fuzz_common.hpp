// Helpers shared by warden's libFuzzer targets: the failure report (print, then abort so that
// libFuzzer keeps the input), a byte reader that consumes the input from the front (so seeds
// can be written by hand in order), and the exception user code throws on purpose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

namespace warden_fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "warden fuzz: MISMATCH: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

inline std::string show(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : std::string("absent");
}

// Thrown by the fuzzers' own callbacks (loaders, update functions, predicates, transactions).
struct user_error : std::runtime_error {
  user_error() : std::runtime_error("user error") {}
};

// Reads the input front to back; past the end it yields zeros.
class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  std::uint8_t next() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  std::size_t left() const { return n_; }
  const std::uint8_t* data() const { return p_; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

// The cache-features mode of warden_fuzz_table / warden_fuzz_actor (fuzz_features.cpp).
void run_features(const std::uint8_t* data, std::size_t size);

}  // namespace warden_fuzz
