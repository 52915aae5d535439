// warden::cache_stats: what c.stats() returns. The six counters of the contract are kept only
// when the cache was built with record_stats (otherwise they stay 0); they are summed on
// demand from per-thread parts (each written only by its thread) and per-owner parts (written
// only by their owner), so keeping them never adds a store to a line another reader writes.
// The remaining fields describe the machinery and are always filled in.
#pragma once

#include <cstdint>

namespace warden {

struct cache_stats {
  std::uint64_t hits = 0;           // reads (get, get_or_load, ...) that found a live entry
  std::uint64_t misses = 0;         // reads that did not
  std::uint64_t loads = 0;          // loader runs (get_or_load)
  std::uint64_t load_failures = 0;  // loader runs that threw
  std::uint64_t evictions = 0;      // entries the size policy removed or refused admission
  std::uint64_t expirations = 0;    // entries removed because their time ran out

  std::uint64_t batches = 0;         // batches the owners applied (wake-ups included)
  std::uint64_t writes = 0;          // writes the owners applied
  std::uint64_t publish_ns = 0;      // time owners spent publishing, in total
  std::uint64_t mailbox_depth = 0;   // messages queued now, all owners
  std::uint64_t access_records = 0;  // read records the owners drained (bounded/expiring)
  std::uint64_t access_drops = 0;    // read records dropped because a buffer was full
  std::uint64_t feed_queued = 0;     // change batches handed over, not yet delivered
  std::uint64_t feed_delivered = 0;  // change batches delivered
  std::uint64_t feed_errors = 0;     // exceptions subscribers threw
  std::uint64_t feed_lag_ns = 0;     // hand-over to delivery, last batch
  std::uint64_t feed_max_lag_ns = 0;

  // Writes per batch, on average.
  double mean_batch() const noexcept {
    return batches == 0 ? 0.0 : static_cast<double>(writes) / static_cast<double>(batches);
  }
  double hit_ratio() const noexcept {
    const std::uint64_t n = hits + misses;
    return n == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(n);
  }
};

}  // namespace warden
