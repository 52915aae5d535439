// Construction options for warden's backends: plain aggregates, validated when a cache is
// constructed (std::invalid_argument naming the field and the rule).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace warden {

class clock;
class owner_pool;

struct table_options {
  // Number of shards (a power of two, 1..65536). More shards bound the pause of a rehash and
  // let several owners split the writes; each shard costs two small hash-map headers.
  std::size_t shards = 16;
  // Owner threads (1 <= owners <= min(shards, 32)). A key's owner is fixed by its shard;
  // owners apply writes in parallel. Transactions spanning owners stop all of them briefly.
  std::size_t owners = 1;
  // Casts queued per owner before put/erase wait for room (try_put/try_erase refuse instead);
  // 0 means unbounded. Calls are not counted: each thread has at most one call in flight.
  std::size_t mailbox_capacity = 0;
  // Read-side fence. true: adaptive. While an owner publishes rarely, a get announces itself
  // with a plain store and the owner pays a membarrier() syscall per publication (fence-free
  // reads); while it publishes often (calls, a stream of small batches), it switches the
  // readers of its shards to fencing their own announcement, and back once writes quieten.
  // false: every get pays the fence (an xchg on x86) and owners never call membarrier().
  // Without kernel membarrier support, true behaves as false.
  bool asymmetric_fence = true;

  // ---- the cache (all off by default) ----
  // Most entries held; 0 = unbounded. The owners evict (W-TinyLFU) before they publish, so
  // no reader ever sees size() > max_size. With several owners the budget is split between
  // them (each gets max_size / owners, the first max_size % owners one more), so
  // max_size >= owners.
  std::size_t max_size = 0;
  // An entry expires this long after its last write; 0 = never.
  std::chrono::nanoseconds expire_after_write{0};
  // An entry expires this long after its last read or write; 0 = never.
  std::chrono::nanoseconds expire_after_access{0};
  // The time source for expiry; nullptr = std::chrono::steady_clock. Must outlive the cache.
  const warden::clock* clock = nullptr;
  // Keep the counters of stats().
  bool record_stats = false;
  // Change batches handed to the notifier and not yet delivered before an owner waits for
  // room (push-back on the owners instead of growth); 0 = unbounded, the default, so that a
  // slow subscriber never slows writes down (stats().feed_queued shows it falling behind).
  std::size_t feed_capacity = 0;
  // Owner threads shared with other caches (owner_pool.hpp); null = this table's own
  // `owners` threads. A pooled table has one owner (owners == 1).
  std::shared_ptr<owner_pool> pool{};
};

struct actor_options {
  // As table_options::mailbox_capacity.
  std::size_t mailbox_capacity = 0;

  // ---- the cache (all off by default) ----
  // Most entries held; 0 = unbounded. The owners evict (W-TinyLFU) before they publish, so
  // no reader ever sees size() > max_size.
  std::size_t max_size = 0;
  // An entry expires this long after its last write; 0 = never.
  std::chrono::nanoseconds expire_after_write{0};
  // An entry expires this long after its last read or write; 0 = never.
  std::chrono::nanoseconds expire_after_access{0};
  // The time source for expiry; nullptr = std::chrono::steady_clock. Must outlive the cache.
  const warden::clock* clock = nullptr;
  // Keep the counters of stats().
  bool record_stats = false;
  // Change batches handed to the notifier and not yet delivered before an owner waits for
  // room (push-back on the owners instead of growth); 0 = unbounded, the default, so that a
  // slow subscriber never slows writes down (stats().feed_queued shows it falling behind).
  std::size_t feed_capacity = 0;
  // Owner threads shared with other caches (owner_pool.hpp); null = a thread of its own.
  std::shared_ptr<owner_pool> pool{};
};

namespace detail {

inline constexpr std::size_t kMaxShards = 65536;
// Two bits each in the 64-bit publication word: the copy readers use, and the fence mode.
inline constexpr std::size_t kMaxOwners = 32;

template <class Options>
void validate_cache_fields(const Options& o, const char* type) {
  if (o.expire_after_write.count() < 0 || o.expire_after_access.count() < 0) {
    throw std::invalid_argument(std::string("warden::") + type +
                                "::expire_after_write and expire_after_access must be >= 0");
  }
}

inline void validate(const table_options& o) {
  if (o.shards == 0 || (o.shards & (o.shards - 1)) != 0 || o.shards > kMaxShards) {
    throw std::invalid_argument("warden::table_options::shards must be a power of two in [1, " +
                                std::to_string(kMaxShards) + "], got " + std::to_string(o.shards));
  }
  if (o.owners < 1 || o.owners > o.shards || o.owners > kMaxOwners) {
    throw std::invalid_argument(
        "warden::table_options::owners must satisfy 1 <= owners <= shards and owners <= " +
        std::to_string(kMaxOwners) + ", got owners=" + std::to_string(o.owners) +
        " with shards=" + std::to_string(o.shards));
  }
  if (o.pool != nullptr && o.owners != 1) {
    throw std::invalid_argument(
        "warden::table_options::owners must be 1 with a pool (a barrier across several owners "
        "could wait for a pool thread held by another), got owners=" +
        std::to_string(o.owners));
  }
  if (o.max_size != 0 && o.max_size < o.owners) {
    throw std::invalid_argument(
        "warden::table_options::max_size must be 0 (unbounded) or >= owners (each owner keeps "
        "at least one entry), got max_size=" +
        std::to_string(o.max_size) + " with owners=" + std::to_string(o.owners));
  }
  validate_cache_fields(o, "table_options");
}

inline void validate(const actor_options& o) { validate_cache_fields(o, "actor_options"); }

}  // namespace detail
}  // namespace warden
