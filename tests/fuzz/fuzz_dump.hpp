// An independent reader of warden's dump format (include/warden/detail/dump_format.hpp
// describes it), written from that description for the fuzzers to judge dump() and restore()
// by: it accepts exactly the intact dumps of K and V (uint64_t or std::string).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace warden_fuzz {

// Little-endian fields from the first `end` bytes of a string, each refused if it overruns.
class byte_span {
 public:
  byte_span(const std::string& s, std::size_t end) : s_(s), end_(end) {}
  bool u32(std::uint32_t& out) { return le(out); }
  bool u64v(std::uint64_t& out) { return le(out); }
  bool i64v(std::int64_t& out) {
    std::uint64_t u = 0;
    if (!le(u)) return false;
    out = static_cast<std::int64_t>(u);
    return true;
  }
  bool bytes(std::uint64_t n, std::string& out) {
    if (n > end_ - pos_) return false;
    out.assign(s_, pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return true;
  }
  bool field(std::uint64_t& out) { return u64v(out); }
  bool field(std::string& out) {
    std::uint64_t n = 0;
    return u64v(n) && bytes(n, out);
  }
  bool done() const { return pos_ == end_; }

 private:
  template <class T>
  bool le(T& out) {
    if (end_ - pos_ < sizeof(T)) return false;
    T v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) {
      v = static_cast<T>(v << 8) | static_cast<unsigned char>(s_[pos_ + i]);
    }
    pos_ += sizeof(T);
    out = v;
    return true;
  }
  const std::string& s_;
  std::size_t end_;
  std::size_t pos_ = 0;
};

template <class T>
const char* type_name() {
  return std::is_same_v<T, std::uint64_t> ? "u64" : "std::string";
}

inline std::uint32_t crc_of(const std::string& s, std::size_t n) {
  return static_cast<std::uint32_t>(
      ::crc32_z(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<z_size_t>(n)));
}

template <class K, class V>
struct dump_entry {
  K key;
  V value;
  std::int64_t ttl;
};

// The entries of `s` if it is an intact dump of K and V, else nullopt.
template <class K, class V>
std::optional<std::vector<dump_entry<K, V>>> parse(const std::string& s) {
  if (s.size() < 12 || s.compare(0, 8, "WARDENDP") != 0) return std::nullopt;
  const std::size_t body = s.size() - 4;
  byte_span crc(s, s.size());
  std::string skip;
  std::uint32_t sum = 0;
  if (!crc.bytes(body, skip) || !crc.u32(sum) || sum != crc_of(s, body)) return std::nullopt;
  byte_span r(s, body);
  std::uint32_t version = 0, n = 0;
  std::string name;
  if (!r.bytes(8, skip) || !r.u32(version) || version != 1) return std::nullopt;
  if (!r.u32(n) || !r.bytes(n, name) || name != type_name<K>()) return std::nullopt;
  if (!r.u32(n) || !r.bytes(n, name) || name != type_name<V>()) return std::nullopt;
  std::uint64_t count = 0;
  if (!r.u64v(count)) return std::nullopt;
  std::vector<dump_entry<K, V>> out;
  for (std::uint64_t i = 0; i < count; ++i) {
    dump_entry<K, V> e{};
    if (!r.field(e.key) || !r.field(e.value) || !r.i64v(e.ttl) || e.ttl < -1) return std::nullopt;
    out.push_back(std::move(e));
  }
  if (!r.done()) return std::nullopt;
  return out;
}

}  // namespace warden_fuzz
