// libFuzzer target warden_fuzz_restore: feeds arbitrary bytes to restore() on a cache that
// already holds some entries, and judges the outcome with an independent reader of the dump
// format (detail/dump_format.hpp describes it): restore must succeed exactly when the reader
// accepts the bytes, and then the cache must hold the union (its earlier entries, overwritten
// by every entry of the dump, in order, with the time each had left to live); otherwise it
// must throw warden::format_error and leave the cache as it was. Anything else (another
// exception, a crash, a hang, a partial restore) is a failure. A successful restore is also
// dumped again and restored into the other backend, which must then hold the same.
//
// Input: [config] [preload] [the bytes restore() reads...]
//   config  bits 0-1: the cache: table<u64, u64>, table<string, string>, actor<u64, u64>,
//           actor<string, string>; bit 2: before restoring, overwrite the last 4 bytes with
//           the right CRC-32 of the others (so that mutations get past the checksum);
//           bit 3: expire_after_write 10 s (an entry dumped without a ttl takes it);
//           bit 4: max_size 4 (entries may be evicted: the check is then one of subsets);
//           bit 5: the clock starts 1000 s before the int64 limit (ttls saturate to none);
//           bit 6: behind any_cache; bit 7: table: 4 shards, 2 owners
//   preload bits 0-2: entries put first (keys 0..7, values of the key), bits 3-7: which of
//           them get a 5 s ttl
//
// With WARDEN_FUZZ_WRITE_SEEDS=<dir> in the environment the target writes seed inputs (valid
// dumps of each type and some corruptions) into <dir> and exits; tests/fuzz/corpus/restore/
// holds its output.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <warden/warden.hpp>

#include "fuzz_common.hpp"
#include "fuzz_dump.hpp"

namespace warden_fuzz {
namespace {

using u64 = std::uint64_t;
using i64 = std::int64_t;
using namespace std::chrono_literals;

constexpr i64 kNever = std::numeric_limits<i64>::max();
constexpr i64 kEaw = 10'000'000'000;  // 10 s
constexpr i64 kPreTtl = 5'000'000'000;

// What a dump says a cache holds: key -> (value, time left to live; -1: none).
template <class K, class V>
using contents_t = std::map<K, std::pair<V, i64>>;

template <class K, class V, class C>
contents_t<K, V> contents(const C& c) {
  std::ostringstream os;
  c.dump(os);
  const auto entries = parse<K, V>(os.str());
  check(entries.has_value(), "dump() wrote something the reader rejects");
  contents_t<K, V> out;
  for (const auto& e : *entries) {
    check(out.emplace(e.key, std::make_pair(e.value, e.ttl)).second, "dump() has a key twice");
    check(e.ttl != 0, "dump() has an entry with no time left");
  }
  return out;
}

template <class T>
T key_of(int i) {
  if constexpr (std::is_same_v<T, u64>) {
    return static_cast<u64>(i);
  } else {
    return "k" + std::to_string(i);
  }
}
template <class T>
T value_of(int i) {
  if constexpr (std::is_same_v<T, u64>) {
    return static_cast<u64>(100 + i);
  } else {
    return "value " + std::to_string(i);
  }
}

struct setup {
  bool eaw = false;
  bool bounded = false;
  i64 start = 0;
  bool erased = false;
  bool owners2 = false;
  std::uint8_t preload = 0;
};

constexpr std::size_t kMaxSize = 4;

template <class K, class V, bool Actor>
auto make_cache(const setup& s, const warden::manual_clock& clk, bool bounded) {
  const std::chrono::nanoseconds eaw(s.eaw ? kEaw : 0);
  const std::size_t max_size = bounded ? kMaxSize : 0;
  if constexpr (Actor) {
    return warden::actor<K, V>({.max_size = max_size, .expire_after_write = eaw, .clock = &clk});
  } else {
    return warden::table<K, V>({.shards = s.owners2 ? 4u : 1u,
                                .owners = s.owners2 ? 2u : 1u,
                                .max_size = max_size,
                                .expire_after_write = eaw,
                                .clock = &clk});
  }
}

// The deadline a restored entry gets, as time left now (-1: none; 0: already gone).
i64 restored_ttl(i64 ttl, const setup& s, i64 now) {
  if (ttl == -1) {
    if (!s.eaw) return -1;
    ttl = kEaw;
  }
  if (ttl >= kNever - now) return -1;  // the deadline saturates: never
  return ttl;
}

template <class K, class V, bool Actor, class C>
void check_restore(C& c, const setup& s, const warden::manual_clock& clk,
                   const std::string& bytes) {
  for (int i = 0; i < (s.preload & 7); ++i) {
    if ((s.preload >> (3 + i % 5)) & 1) {
      c.put(key_of<K>(i), value_of<V>(i), std::chrono::nanoseconds(kPreTtl));
    } else {
      c.put(key_of<K>(i), value_of<V>(i));
    }
  }
  c.flush();
  const contents_t<K, V> before = contents<K, V>(c);
  const auto want = parse<K, V>(bytes);
  std::istringstream is(bytes);
  try {
    c.restore(is);
  } catch (const warden::format_error& e) {
    if (std::getenv("WARDEN_FUZZ_TRACE") != nullptr)
      std::fprintf(stderr, "refused: %s\n", e.what());
    check(!want.has_value(), std::string("restore refused an intact dump: ") + e.what());
    check(contents<K, V>(c) == before, "a refused restore changed the cache");
    c.flush();
    check(c.size() == before.size(), "size() changed by a refused restore");
    return;
  }
  check(want.has_value(), "restore accepted bytes that are not an intact dump");
  if (std::getenv("WARDEN_FUZZ_TRACE") != nullptr) {
    std::fprintf(stderr, "restored %zu entries\n", want->size());
  }
  const i64 now = clk.now().count();
  contents_t<K, V> expected = before;
  for (const auto& e : *want) {
    const i64 ttl = restored_ttl(e.ttl, s, now);
    if (ttl == 0) {
      expected.erase(e.key);
    } else {
      expected.insert_or_assign(e.key, std::make_pair(e.value, ttl));
    }
  }
  const contents_t<K, V> after = contents<K, V>(c);
  c.flush();
  const std::size_t size = c.size();
  if (!s.bounded) {
    check(after == expected, "after restore the cache holds " + std::to_string(after.size()) +
                                 " entries, not the expected " + std::to_string(expected.size()) +
                                 " (or other values)");
    check(size == after.size(), "size() " + std::to_string(size) + " after restore and flush, " +
                                    std::to_string(after.size()) + " live entries");
    // A dump restores into the other backend and back.
    setup plain = s;
    plain.eaw = false;  // (a dumped entry without a ttl must stay without one)
    auto other = make_cache<K, V, !Actor>(plain, clk, false);
    std::ostringstream os;
    c.dump(os);
    std::istringstream again(os.str());
    other.restore(again);
    check(contents<K, V>(other) == after, "a dump restored into the other backend differs");
  } else {
    check(size <= kMaxSize && after.size() <= kMaxSize, "a bounded cache holds more than max_size");
    for (const auto& [k, v] : after) {
      const auto it = expected.find(k);
      check(it != expected.end() && it->second == v,
            "after restore a bounded cache holds an entry that is neither restored nor kept");
    }
  }
}

template <class K, class V, bool Actor>
void run(const setup& s, const std::string& bytes) {
  warden::manual_clock clk{std::chrono::nanoseconds(s.start)};
  auto c = make_cache<K, V, Actor>(s, clk, s.bounded);
  if (s.erased) {
    warden::any_cache<K, V> any(std::move(c));
    check_restore<K, V, Actor>(any, s, clk, bytes);
  } else {
    check_restore<K, V, Actor>(c, s, clk, bytes);
  }
}

// ---- seeds -----------------------------------------------------------------------------------
void write_file(const std::string& path, std::uint8_t config, std::uint8_t preload,
                const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.put(static_cast<char>(config));
  f.put(static_cast<char>(preload));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class K, class V>
std::string sample_dump(int n, bool ttls) {
  warden::manual_clock clk{1s};
  warden::table<K, V> t({.clock = &clk});
  for (int i = 0; i < n; ++i) {
    if (ttls && i % 2 == 1) {
      t.put(key_of<K>(i * 3 % 11), value_of<V>(i + 20), std::chrono::seconds(i));
    } else {
      t.put(key_of<K>(i * 3 % 11), value_of<V>(i + 20));
    }
  }
  t.flush();
  std::ostringstream os;
  t.dump(os);
  return os.str();
}

void write_seeds(const std::string& dir) {
  static constexpr const char* kKinds[] = {"table_u64", "table_string", "actor_u64",
                                           "actor_string"};
  int serial = 0;
  std::uint8_t kind = 0;
  auto out = [&](const char* what, std::uint8_t config, std::uint8_t preload,
                 const std::string& bytes) {
    ++serial;
    write_file(dir + "/" + kKinds[kind] + "_" + what, config, preload, bytes);
  };
  for (kind = 0; kind < 4; ++kind) {
    const bool strings = (kind & 1) != 0;
    const std::string empty =
        strings ? sample_dump<std::string, std::string>(0, false) : sample_dump<u64, u64>(0, false);
    const std::string full =
        strings ? sample_dump<std::string, std::string>(6, true) : sample_dump<u64, u64>(6, true);
    const std::string foreign =
        strings ? sample_dump<u64, u64>(2, false) : sample_dump<std::string, std::string>(2, false);
    out("empty", kind, 0x25, empty);
    out("valid", kind, 0x6b, full);
    out("valid_fixcrc", kind | 4, 0x13, full);
    out("valid_expiring_bounded", kind | 8 | 16, 0x4f, full);
    out("valid_near_clock_limit", kind | 32 | 64, 0x07, full);
    out("foreign_types", kind | 4, 0x03, foreign);
    out("truncated", kind, 0x03, full.substr(0, full.size() - 5));
    std::string flipped = full;
    flipped[flipped.size() / 2] ^= 0x40;
    out("flipped", kind, 0x03, flipped);
    out("flipped_fixcrc", kind | 4, 0x03, flipped);
    out("trailing_fixcrc", kind | 4, 0x03, full.substr(0, full.size() - 4) + "xyzw" + "CRC!");
    std::string count = full;  // an entry count far beyond the data
    const std::size_t at = 8 + 4 + 4 + (strings ? 11 : 3) + 4 + (strings ? 11 : 3) + 7;
    count[at] = '\x7f';
    out("huge_count_fixcrc", kind | 4, 0x03, count);
  }
  std::printf("warden_fuzz_restore: wrote %d seeds to %s\n", serial, dir.c_str());
}

}  // namespace
}  // namespace warden_fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("WARDEN_FUZZ_WRITE_SEEDS")) {
    warden_fuzz::write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace warden_fuzz;
  byte_reader in(data, size);
  const std::uint8_t config = in.next();
  setup s;
  s.preload = in.next();
  s.eaw = (config & 8) != 0;
  s.bounded = (config & 16) != 0;
  s.start = (config & 32) != 0 ? kNever - 1'000'000'000'000 : 0;
  s.erased = (config & 64) != 0;
  s.owners2 = (config & 128) != 0;
  std::string bytes(reinterpret_cast<const char*>(in.data()), in.left());
  if ((config & 4) != 0 && bytes.size() >= 4) {
    const std::uint32_t crc = crc_of(bytes, bytes.size() - 4);
    for (std::size_t i = 0; i < 4; ++i) {
      bytes[bytes.size() - 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    }
  }
  switch (config & 3) {
    case 0:
      run<u64, u64, false>(s, bytes);
      break;
    case 1:
      run<std::string, std::string, false>(s, bytes);
      break;
    case 2:
      run<u64, u64, true>(s, bytes);
      break;
    default:
      run<std::string, std::string, true>(s, bytes);
      break;
  }
  return 0;
}
