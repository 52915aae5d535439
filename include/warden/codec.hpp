// warden::codec<T>: how dump() writes and restore() reads keys and values. Arithmetic types
// and std::string work out of the box (little-endian, fixed width; strings length-prefixed);
// other types need a specialization:
//
//   template <> struct warden::codec<point> {
//     static void write(std::ostream& os, const point& p);  // any bytes
//     static point read(std::istream& is);                   // throw on bad input
//     static constexpr const char* name = "point/1";         // optional: the type identity
//   };
//
// A dump records the identity of its key and value types (a codec's `name`, else the
// implementation's type name), so a dump restores only into a cache of the same K and V, on
// either backend.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace warden {

template <class T>
struct codec;  // specialize for your types (see above)

namespace detail {

template <class T>
void write_le(std::ostream& os, T v) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  char bytes[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    bytes[i] = static_cast<char>(u & 0xff);
    if constexpr (sizeof(T) > 1) u = static_cast<U>(u >> 8);
  }
  os.write(bytes, sizeof(T));
}

template <class T>
T read_le(std::istream& is) {
  using U = std::make_unsigned_t<T>;
  unsigned char bytes[sizeof(T)];
  if (!is.read(reinterpret_cast<char*>(bytes), sizeof(T))) {
    throw std::ios_base::failure("warden::codec: truncated input");
  }
  U u = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) {
    if constexpr (sizeof(T) > 1) u = static_cast<U>(u << 8);
    u = static_cast<U>(u | bytes[i]);
  }
  return static_cast<T>(u);
}

template <class T>
using bits_of = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

}  // namespace detail

template <class T>
  requires std::is_arithmetic_v<T>
struct codec<T> {
  static void write(std::ostream& os, const T& v) {
    if constexpr (std::is_floating_point_v<T>) {
      static_assert(sizeof(T) == 4 || sizeof(T) == 8, "warden::codec: float or double only");
      detail::bits_of<T> b;
      static_assert(sizeof(b) == sizeof(T));
      __builtin_memcpy(&b, &v, sizeof(T));
      detail::write_le(os, b);
    } else if constexpr (std::is_same_v<T, bool>) {
      detail::write_le<std::uint8_t>(os, v ? 1 : 0);
    } else {
      detail::write_le(os, v);
    }
  }
  static T read(std::istream& is) {
    if constexpr (std::is_floating_point_v<T>) {
      const auto b = detail::read_le<detail::bits_of<T>>(is);
      T v;
      __builtin_memcpy(&v, &b, sizeof(T));
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      const auto b = detail::read_le<std::uint8_t>(is);
      if (b > 1) throw std::ios_base::failure("warden::codec<bool>: not 0 or 1");
      return b == 1;
    } else {
      return detail::read_le<T>(is);
    }
  }
};

template <>
struct codec<std::string> {
  static constexpr const char* name = "std::string";
  static void write(std::ostream& os, const std::string& s) {
    detail::write_le<std::uint64_t>(os, s.size());
    os.write(s.data(), static_cast<std::streamsize>(s.size()));
  }
  static std::string read(std::istream& is) {
    const auto n = detail::read_le<std::uint64_t>(is);
    std::string s;
    // Grow as bytes arrive: a corrupted length must not allocate terabytes up front.
    constexpr std::uint64_t kChunk = 1 << 16;
    for (std::uint64_t done = 0; done < n;) {
      const std::uint64_t step = n - done < kChunk ? n - done : kChunk;
      s.resize(static_cast<std::size_t>(done + step));
      if (!is.read(s.data() + done, static_cast<std::streamsize>(step))) {
        throw std::ios_base::failure("warden::codec<std::string>: truncated input");
      }
      done += step;
    }
    return s;
  }
};

namespace detail {

// Whether T can be dumped: arithmetic, std::string, or a user specialization of codec<T>.
template <class T>
concept has_codec = requires { sizeof(codec<T>); };

// The type identity a dump records for T.
template <class T>
std::string codec_type_name() {
  if constexpr (std::is_arithmetic_v<T>) {
    std::string n = std::is_floating_point_v<T> ? "f"
                    : std::is_same_v<T, bool>   ? "b"
                    : std::is_signed_v<T>       ? "i"
                                                : "u";
    return n + std::to_string(sizeof(T) * 8);
  } else if constexpr (requires { codec<T>::name; }) {
    return codec<T>::name;
  } else {
    return typeid(T).name();
  }
}

}  // namespace detail
}  // namespace warden
