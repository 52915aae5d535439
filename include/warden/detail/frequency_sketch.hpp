// A 4-bit count-min sketch that estimates how often a key was seen recently: the popularity
// history behind W-TinyLFU's admission decisions (see wtinylfu.hpp).
//
// Layout and invariants:
//  - `table_` holds 16 four-bit counters per 64-bit word; its length is a power of two and at
//    least 8 words, so it splits into 64-byte blocks of 8 words.
//  - A key (a 64-bit hash the caller computed) owns 4 counters, one per depth, all in one block:
//    depth i uses word 2i or 2i+1 of the block. One cache line per increment or query.
//  - Counters saturate at 15. After `sample_size()` counted increments every counter is halved
//    ("reset"), so the sketch forgets old popularity and stays responsive to a changing workload.
//  - Single-threaded and owner-private: no atomics; no allocation after construction.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace warden::detail {

class frequency_sketch {
 public:
  // Sized for a cache of `maximum` entries: about 16 counters (4 keys' worth) per entry.
  explicit frequency_sketch(std::size_t maximum) {
    // Below 256 entries the table stays at 256 words: a tiny sketch would collide so often
    // that every key looks popular. Above 2^30 entries (Caffeine's cap too) it stops growing.
    const std::size_t capped = std::clamp<std::size_t>(maximum, kMinEntries, std::size_t{1} << 30);
    table_.assign(std::bit_ceil(capped), 0);
    block_mask_ = (table_.size() >> 3) - 1;
    sample_size_ = 10 * capped;
  }

  // Counts one occurrence of the key whose hash is `hash`.
  void increment(std::uint64_t hash) noexcept {
    const std::uint64_t h = spread(hash);
    const std::size_t block = block_of(h);
    const auto lanes = static_cast<std::uint32_t>(h);
    bool added = false;
    for (int depth = 0; depth < 4; ++depth) {
      added |= increment_at(block, depth, lanes >> (8 * depth));
    }
    // Saturated counters do not age the sketch: a flood of one hot key must not flush history.
    if (added && ++additions_ == sample_size_) reset();
  }

  // The estimated count of `hash`, 0..15: the smallest of its four counters.
  int frequency(std::uint64_t hash) const noexcept {
    const std::uint64_t h = spread(hash);
    const std::size_t block = block_of(h);
    const auto lanes = static_cast<std::uint32_t>(h);
    int result = kMaxCount;
    for (int depth = 0; depth < 4; ++depth) {
      const std::uint32_t lane = lanes >> (8 * depth);
      const std::uint64_t word = table_[slot(block, depth, lane)];
      result = std::min(result, static_cast<int>((word >> shift(lane)) & 0xf));
    }
    return result;
  }

  // Counted increments between two halvings.
  std::size_t sample_size() const noexcept { return sample_size_; }

  // Re-mixes a caller's hash so that every output bit depends on every input bit: callers may
  // pass weak hashes (identity for integers). Shared with the policy's shadow LRU.
  static std::uint64_t spread(std::uint64_t x) noexcept {
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
  }

 private:
  static constexpr std::size_t kMinEntries = 256;
  static constexpr int kMaxCount = 15;
  static constexpr std::uint64_t kOneBits = 0x1111111111111111ULL;
  static constexpr std::uint64_t kHalfMask = 0x7777777777777777ULL;

  // The high half of the spread hash picks the block and the low half the counters, which
  // keeps the two independent.
  std::size_t block_of(std::uint64_t h) const noexcept {
    return (static_cast<std::size_t>(h >> 32) & block_mask_) << 3;
  }
  // Bit 0 of a lane picks one of the depth's two words, bits 1-4 the counter inside it.
  static std::size_t slot(std::size_t block, int depth, std::uint32_t lane) noexcept {
    return block + 2 * static_cast<std::size_t>(depth) + (lane & 1);
  }
  static unsigned shift(std::uint32_t lane) noexcept { return ((lane >> 1) & 15) << 2; }

  bool increment_at(std::size_t block, int depth, std::uint32_t lane) noexcept {
    std::uint64_t& word = table_[slot(block, depth, lane)];
    const unsigned s = shift(lane);
    if (((word >> s) & 0xf) == kMaxCount) return false;
    word += std::uint64_t{1} << s;
    return true;
  }

  // Halves every counter. Each odd counter loses half a count to truncation; subtracting those
  // losses (a quarter per counter, as one key has four) keeps the additions count honest.
  void reset() noexcept {
    std::size_t odd = 0;
    for (std::uint64_t& word : table_) {
      odd += static_cast<std::size_t>(std::popcount(word & kOneBits));
      word = (word >> 1) & kHalfMask;
    }
    additions_ = (additions_ - odd / 4) / 2;
  }

  std::vector<std::uint64_t> table_;
  std::size_t block_mask_ = 0;
  std::size_t sample_size_ = 0;
  std::size_t additions_ = 0;
};

}  // namespace warden::detail
