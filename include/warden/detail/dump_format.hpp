// The format of dump() / restore(), the same on every backend:
//
//   "WARDENDP"  8 bytes   magic
//   version     u32 LE    kDumpVersion
//   key type    u32 LE length, then that many bytes   (codec_type_name<K>)
//   value type  u32 LE length, then bytes             (codec_type_name<V>)
//   count       u64 LE
//   count x     key (codec<K>), value (codec<V>), ttl i64 LE (ns left to live; -1: none)
//   crc32       u32 LE    zlib's CRC-32 of every byte before it
//
// read_dump() checks the magic, version, types, checksum and that the entries end exactly at
// the checksum, and decodes every entry before the caller changes anything: on any failure
// it throws format_error and nothing has happened.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <istream>
#include <iterator>
#include <ostream>
#include <streambuf>
#include <string>
#include <type_traits>
#include <vector>

#include "warden/codec.hpp"
#include "warden/error.hpp"

namespace warden::detail {

inline constexpr char kDumpMagic[8] = {'W', 'A', 'R', 'D', 'E', 'N', 'D', 'P'};
inline constexpr std::uint32_t kDumpVersion = 1;
inline constexpr std::int64_t kDumpNoTtl = -1;

inline std::uint32_t crc32_of(const char* p, std::size_t n) noexcept {
  return static_cast<std::uint32_t>(
      ::crc32_z(0L, reinterpret_cast<const Bytef*>(p), static_cast<z_size_t>(n)));
}

// A streambuf that appends to a std::string (user codecs write through it).
class string_sink final : public std::streambuf {
 public:
  explicit string_sink(std::string& out) : out_(out) {}

 protected:
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) out_.push_back(static_cast<char>(c));
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }

 private:
  std::string& out_;
};

// A streambuf over bytes in memory (user codecs read through it).
class span_source final : public std::streambuf {
 public:
  span_source(const char* begin, const char* end) {
    char* b = const_cast<char*>(begin);
    setg(b, b, const_cast<char*>(end));
  }
  const char* position() const noexcept { return gptr(); }
};

template <class K, class V>
class dump_writer {
 public:
  dump_writer() {
    buf_.append(kDumpMagic, sizeof kDumpMagic);
    put_le<std::uint32_t>(kDumpVersion);
    put_name(codec_type_name<K>());
    put_name(codec_type_name<V>());
    count_pos_ = buf_.size();
    put_le<std::uint64_t>(0);
  }

  void add(const K& key, const V& value, std::int64_t ttl) {
    put(key);
    put(value);
    put_le<std::int64_t>(ttl);
    ++count_;
  }

  // The finished dump (count and checksum filled in).
  std::string finish() && {
    for (std::size_t i = 0; i < 8; ++i) {
      buf_[count_pos_ + i] = static_cast<char>((count_ >> (8 * i)) & 0xff);
    }
    put_le<std::uint32_t>(crc32_of(buf_.data(), buf_.size()));
    return std::move(buf_);
  }

 private:
  template <class T>
  void put_le(T v) {
    using U = std::make_unsigned_t<T>;
    U u = static_cast<U>(v);
    char bytes[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      bytes[i] = static_cast<char>(u & 0xff);
      if constexpr (sizeof(T) > 1) u = static_cast<U>(u >> 8);
    }
    buf_.append(bytes, sizeof(T));
  }
  void put_name(const std::string& n) {
    put_le<std::uint32_t>(static_cast<std::uint32_t>(n.size()));
    buf_.append(n);
  }
  template <class T>
  void put(const T& v) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      put_le(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      put_le<std::uint64_t>(v.size());
      buf_.append(v);
    } else {
      string_sink sink(buf_);
      std::ostream os(&sink);
      codec<T>::write(os, v);
      if (!os) throw format_error("codec<T>::write failed");
    }
  }

  std::string buf_;
  std::size_t count_pos_ = 0;
  std::uint64_t count_ = 0;
};

template <class K, class V>
struct dump_entry {
  K key;
  V value;
  std::int64_t ttl;  // kDumpNoTtl: none
};

class dump_reader {
 public:
  dump_reader(const char* p, const char* end) : p_(p), end_(end) {}

  template <class T>
  T get_le() {
    need(sizeof(T));
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) {
      if constexpr (sizeof(T) > 1) u = static_cast<U>(u << 8);
      u = static_cast<U>(u | static_cast<unsigned char>(p_[i]));
    }
    p_ += sizeof(T);
    return static_cast<T>(u);
  }

  std::string get_name() {
    const auto n = get_le<std::uint32_t>();
    need(n);
    std::string s(p_, n);
    p_ += n;
    return s;
  }

  template <class T>
  T get(const char* what) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      return get_le<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      const auto n = get_le<std::uint64_t>();
      need(n);
      std::string s(p_, static_cast<std::size_t>(n));
      p_ += n;
      return s;
    } else {
      span_source src(p_, end_);
      std::istream is(&src);
      try {
        T v = codec<T>::read(is);
        if (is.bad()) throw format_error(std::string(what) + ": codec read failed");
        p_ = src.position();
        return v;
      } catch (const format_error&) {
        throw;
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        throw format_error(std::string(what) + ": " + e.what());
      } catch (...) {
        throw format_error(std::string(what) + ": codec read threw");
      }
    }
  }

  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  void need(std::uint64_t n) const {
    if (n > left()) throw format_error("truncated");
  }
  const char* p_;
  const char* end_;
};

// Reads and checks a whole dump; throws format_error (and has changed nothing) if it is not
// a complete, intact dump of K and V.
template <class K, class V>
std::vector<dump_entry<K, V>> read_dump(std::istream& is) {
  std::string data((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  constexpr std::size_t kMin = sizeof kDumpMagic + 4 + 4 + 4 + 8 + 4;
  if (data.size() < kMin) throw format_error("truncated (shorter than a header)");
  if (std::memcmp(data.data(), kDumpMagic, sizeof kDumpMagic) != 0) {
    throw format_error("not a warden dump (magic)");
  }
  const std::size_t body = data.size() - 4;
  dump_reader tail(data.data() + body, data.data() + data.size());
  if (tail.get_le<std::uint32_t>() != crc32_of(data.data(), body)) {
    throw format_error("checksum mismatch (corrupted or truncated)");
  }
  dump_reader r(data.data() + sizeof kDumpMagic, data.data() + body);
  if (const auto v = r.get_le<std::uint32_t>(); v != kDumpVersion) {
    throw format_error("format version " + std::to_string(v) + ", expected " +
                       std::to_string(kDumpVersion));
  }
  if (r.get_name() != codec_type_name<K>()) throw format_error("key type differs");
  if (r.get_name() != codec_type_name<V>()) throw format_error("value type differs");
  const auto count = r.get_le<std::uint64_t>();
  if (count > r.left() / sizeof(std::int64_t)) throw format_error("count exceeds the data");
  std::vector<dump_entry<K, V>> out;
  out.reserve(static_cast<std::size_t>(count));
  for (std::uint64_t i = 0; i < count; ++i) {
    K key = r.get<K>("key");
    V value = r.get<V>("value");
    const auto ttl = r.get_le<std::int64_t>();
    if (ttl < kDumpNoTtl) throw format_error("negative time to live");
    out.push_back(dump_entry<K, V>{std::move(key), std::move(value), ttl});
  }
  if (r.left() != 0) throw format_error("trailing bytes after the entries");
  return out;
}

}  // namespace warden::detail
