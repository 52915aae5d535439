// The engine behind warden::table: left-right copies per shard, owners that apply batches to
// the idle copies and publish them with one atomic flip.
//
// Layout. Keys map to shards by a mix of their hash (so a weak user hash such as the
// identity still spreads keys over shards and owners). Each shard holds two map copies, each
// on its own cache lines; shard s belongs to owner `shard_owner[s]`, and only that owner
// writes its copies. The publication word (publication.hpp) names, per owner, the copy
// readers use; readers announce themselves in their slot (read_section.hpp) and never wait.
//
// Writes. Owner i drains its mailbox; before the batch's first write it waits for readers of
// the idle copy (the set of announcements visible at that moment, not one after another) and
// replays the previous batch's log into it, so the two copies are equal again; it applies the
// batch to the idle copy through its owner_state (versions, policy, expiry, change list),
// logging each write; it evicts what exceeds its budget and removes what has expired; then
// it flips bit i (handing the batch's changes to the feed in the same critical section) and
// completes the batch's calls. Each write is thus applied twice (once copied, once moved on
// replay), and the memory is two maps: the price of reads that never wait and never retry.
// Replay is deterministic: it repeats the logged map operations in order, with the logged
// values, so the copies never diverge (a probe where Eq throws rebuilds that shard instead;
// replay_log.hpp).
//
// Operations across owners (transact, erase_if, clear, restore with owners > 1) stop every
// owner at a barrier (table_barriers.hpp): the caller numbers it and posts one part to each
// owner (under `cross_post_mutex`); every owner runs such operations in number order, holding
// back one it finds early (its producers' queues are drained in no global order), so two
// barriers never wait on each other; each owner publishes its pending batch, readies its idle
// copies and arrives; the last to arrive runs the operation over all owners, flips every
// touched bit with one RMW (and hands its changes over as one batch) and releases the others.
//
// A snapshot or pin held open delays only the owner's next write to the copy it reads; the
// owner keeps accepting casts meanwhile and catches up once it closes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "warden/detail/access_log.hpp"
#include "warden/detail/cache_calls.hpp"
#include "warden/detail/call.hpp"
#include "warden/detail/carried.hpp"
#include "warden/detail/entry.hpp"
#include "warden/detail/feed.hpp"
#include "warden/detail/hashing.hpp"
#include "warden/detail/mailbox.hpp"
#include "warden/detail/owner_loop.hpp"
#include "warden/detail/owner_map.hpp"
#include "warden/detail/owner_state.hpp"
#include "warden/detail/publication.hpp"
#include "warden/detail/read_section.hpp"
#include "warden/detail/replay_log.hpp"
#include "warden/detail/thread_state.hpp"
#include "warden/options.hpp"
#include "warden/transaction.hpp"

#if WARDEN_CHECK_COPIES
#include <cstdio>
#include <cstdlib>
#endif

namespace warden::detail {

static_assert(sizeof(std::size_t) == 8, "warden's shard selection assumes 64-bit hashes");

// Spreads a user hash over shards (multiply-xorshift); the maps still probe with the hash
// itself.
WARDEN_ALWAYS_INLINE std::uint64_t shard_mix(std::uint64_t h) noexcept {
  h ^= h >> 32;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

// Time to wait before draining access records again after a drain that found some.
inline constexpr auto kAccessDrainTick = std::chrono::milliseconds(1);
// With a clock other than steady_clock, how often an owner with timers looks at the time.
inline constexpr auto kForeignClockTick = std::chrono::milliseconds(10);

template <class Engine>
struct table_writes;  // table_writes.hpp
template <class Engine>
struct table_barriers;  // table_barriers.hpp

template <class K, class V, class Hash, class Eq>
class table_engine {
 public:
  using key_type = K;
  using mapped_type = V;
  using entry = stored<V>;
  using map_type = owner_map<K, entry, Hash, Eq>;
  using state_type = owner_state<K, V, Hash, Eq>;
  using tx_type = transaction<K, V, Hash, Eq>;
  using feed_type = feed<K, V>;

  struct alignas(kFalseSharingRange) copy_slot {
    map_type map;
  };
  struct shard {
    copy_slot copies[2];
  };

  struct owner;
  using call_t = call<owner>;

  struct put_op {
    carried<K> key;
    carried<V> value;
    std::size_t hash;
    std::int64_t ttl;  // kNoTtl: the options decide
  };
  struct erase_op {
    carried<K> key;
    std::size_t hash;
  };
  struct touch_op {  // an access record that did not fit its ring (expire_after_access)
    std::uint64_t hash;
    std::int64_t time;
  };
  struct message {
    std::variant<put_op, erase_op, touch_op, call_t*> op;
    cache_slot* sender = nullptr;  // for a cast's error; null for calls
    std::uint64_t generation = 0;
  };

  // A map operation applied to the idle copy, kept to replay onto the other copy
  // (replay_log.hpp).
  using logged =
      log_entry<K, logged_upsert<K, entry>, logged_erase<K>, logged_deadline<K>, logged_clear>;

  // What a key held before a write applied all or nothing (nullopt: it was absent); the key
  // is the one in oplog[log_index].
  struct undo_record {
    std::size_t log_index;
    std::optional<entry> old;
  };

  // The owner's view of its idle copies, as owner_state's Store.
  struct store {
    table_engine& e;
    owner& o;
    entry* find(const K& key, std::size_t h) {
      e.ensure_idle_ready(o);
      map_type& m = e.idle_map(e.shard_of(h));
      auto it = m.find(prehashed_key<K>{&key, h});
      return it == m.end() ? nullptr : &it->second;
    }
    void upsert(std::size_t h, K&& key, entry&& value) {
      e.write(o, h, std::move(key), std::move(value));
    }
    void erase(K&& key, std::size_t h) noexcept { e.remove(o, h, std::move(key)); }
    void set_deadline(const K& key, std::size_t h, std::int64_t d) noexcept {
      e.set_deadline(o, h, key, d);
    }
    template <class F>
    void for_each(F&& f) {
      e.ensure_idle_ready(o);
      for (std::uint32_t s : o.shards) {
        for (const auto& [k, v] : e.idle_map(s)) f(k, v);
      }
    }
    void clear() noexcept { e.clear_owner(o); }
  };

  struct owner {
    owner(table_engine* e, std::uint32_t i, std::size_t capacity, std::size_t budget,
          std::shared_ptr<owner_pool> pool)
        : engine(e),
          index(i),
          state(e->config, i, budget, e->hasher, e->equal),
          thread(capacity, std::move(pool)) {}
    table_engine* const engine;
    const std::uint32_t index;
    std::vector<std::uint32_t> shards;  // the shards this owner writes
    state_type state;
    std::vector<logged> oplog;      // writes the idle copy has and the published one lacks, or
                                    // (after a flip) the reverse
    std::vector<undo_record> undo;  // see reserve_all_or_nothing
    bool undoing = false;
    bool idle_ready = true;        // the idle copy equals the published one
    bool dirty = false;            // the idle copy has unpublished writes
    bool records_pending = false;  // the last drain of access records found some
    publication::fence_state fence;
    std::vector<pending_word> scratch;
    std::vector<call_t*> replies;  // calls to complete after the next publication
    std::vector<std::shared_ptr<load_state<V>>> load_wakes;  // ended loads, likewise
    std::uint64_t next_barrier = 1;             // the barrier call this owner may run next
    std::map<std::uint64_t, call_t*> deferred;  // barrier calls found ahead of their turn
    owner_thread<message> thread;               // last: started after everything it uses exists

    // The owner loop's hooks (owner_loop.hpp).
    void apply(std::vector<message>& batch) noexcept { engine->apply(*this, batch); }
    void after_applied() noexcept { engine->expire_due(*this); }
    void publish() noexcept { engine->publish_owner(*this); }
    // The batch's log (oplog) is replayed onto the copy readers left lazily, at the owner's
    // next write (ensure_idle_ready), so that readers get time to leave it.
    void after_published() noexcept { engine->reply(*this); }
    std::chrono::steady_clock::time_point idle() noexcept { return engine->idle(*this); }
  };

  table_engine(const table_options& opts, Hash hash, Eq eq)
      : slots(registry::instance().next_serial(), opts.asymmetric_fence),
        shard_mask(opts.shards - 1),
        light_readers(opts.asymmetric_fence),
        records_reads(opts.max_size != 0 || opts.expire_after_access.count() != 0),
        record_stats(opts.record_stats),
        access_expiry(opts.expire_after_access.count() != 0),
        clock(opts.clock),
        shards(std::make_unique<shard[]>(opts.shards)),
        shard_owner(std::make_unique<std::uint8_t[]>(opts.shards)),
        hasher(std::move(hash)),
        equal(std::move(eq)),
        config(make_config(opts)),
        owner_count(static_cast<std::uint32_t>(opts.owners)),
        change_feed(std::make_shared<feed_type>(opts.feed_capacity)) {
    for (std::size_t s = 0; s < opts.shards; ++s) {
      shard_owner[s] = static_cast<std::uint8_t>(s % opts.owners);
      for (auto& c : shards[s].copies) {
        c.map = map_type(0, inner_hash<K, Hash>{hasher}, inner_eq<K, Eq>{equal});
      }
    }
    if (records_reads) {
      slots.set_on_create(
          [](cache_slot& s, const void* ctx) {
            s.rings = new access_ring[static_cast<const table_engine*>(ctx)->owner_count];
          },
          this);
      slots.set_on_destroy([](cache_slot& s) { delete[] s.rings; });
    }
    owners.reserve(opts.owners);
    for (std::uint32_t i = 0; i < opts.owners; ++i) {
      const std::size_t budget =
          opts.max_size == 0 ? 0 : opts.max_size / opts.owners + (i < opts.max_size % opts.owners);
      owners.push_back(std::make_unique<owner>(this, i, opts.mailbox_capacity, budget, opts.pool));
    }
    for (std::size_t s = 0; s < opts.shards; ++s) {
      owners[shard_owner[s]]->shards.push_back(static_cast<std::uint32_t>(s));
    }
    for (auto& o : owners) o->thread.start(*o);
  }

  table_engine(const table_engine&) = delete;
  table_engine& operator=(const table_engine&) = delete;

  // Drains: every accepted message is applied before the owners exit. A pin or snapshot the
  // destroying thread still holds is not waited for: that thread is here, not reading.
  ~table_engine() {
    // relaxed: read by owners only after the mailbox close below (mutex) orders it.
    destroying_slot.store(slots.existing(), std::memory_order_relaxed);
    for (auto& o : owners) o->thread.close();
    for (auto& o : owners) o->thread.stop();
    lingering.wait_until_empty();
    change_feed->stop();
  }

  static cache_config make_config(const table_options& opts) {
    cache_config c;
    c.max_size = opts.max_size;
    c.expire_after_write = opts.expire_after_write.count();
    c.expire_after_access = opts.expire_after_access.count();
    c.clock = opts.clock;
    c.record_stats = opts.record_stats;
    return c;
  }

  // ---- read side -------------------------------------------------------------------------
  // Hash of a key, or of a lookup key for one (hashing.hpp), by the table's Hash.
  template <class Q>
  WARDEN_ALWAYS_INLINE std::size_t hash(const Q& key) const {
    return lookup_hash<K, Hash, Eq>(hasher, key);
  }
  std::size_t shard_count() const noexcept { return shard_mask + 1; }
  std::uint64_t fence_mode_switches() const noexcept { return published.switches(); }

  // The read path is forced inline: a call per get costs the lookups in flight.
  WARDEN_ALWAYS_INLINE std::size_t shard_of(std::size_t h) const {
    return (shard_mix(h) >> 32) & shard_mask;
  }
  WARDEN_ALWAYS_INLINE std::uint32_t owner_of(std::size_t h) const {
    return shard_owner[shard_of(h)];
  }

  WARDEN_ALWAYS_INLINE const map_type& published_map(std::uint64_t pub, std::size_t s) const {
    return shards[s].copies[(pub >> shard_owner[s]) & 1].map;
  }

  // Must be called inside a read section, with `pub` loaded after entering it. Q: K, or a
  // lookup key for it (hashing.hpp).
  template <class Q>
  WARDEN_ALWAYS_INLINE const entry* find_published(std::uint64_t pub, const Q& key,
                                                   std::size_t h) const {
    const map_type& m = published_map(pub, shard_of(h));
    auto it = m.find(prehashed_key<Q>{&key, h});
    return it == m.end() ? nullptr : &it->second;
  }

  std::int64_t now() const noexcept { return now_ns(clock); }

  // The calling thread's slot; owner threads of this table are refused (a read from inside
  // an owner-side callback, like every call and cast there).
  WARDEN_ALWAYS_INLINE cache_slot& my_slot() const {
    return slots.mine([this] {
      if (is_owner_thread()) {
        throw reentrancy_error("a read of a table from inside its own owner-side callback");
      }
    });
  }

  // R1 and R2 (read_section.hpp) for a scoped section: returns the word index and the
  // publication word to read under it.
  struct opened {
    unsigned word;
    std::uint64_t pub;
  };
  WARDEN_ALWAYS_INLINE opened open_scoped(cache_slot& s) const {
    const unsigned w = enter_scoped(s);
    std::uint64_t pub = published.load();
    if (WARDEN_UNLIKELY(protocol::needs_fence(pub))) {
      fence_announcement(s, w);
      pub = published.load();
    }
    return {w, pub};
  }
  opened open_pin(cache_slot& s) const {
    const unsigned w = enter_pin(s);
    std::uint64_t pub = published.load();
    if (protocol::needs_fence(pub)) {
      fence_announcement(s, w);
      pub = published.load();
    }
    return {w, pub};
  }

  // After a read outside its section: access records and stats, when the table keeps them.
  WARDEN_ALWAYS_INLINE void after_read(cache_slot& s, std::size_t h, bool hit,
                                       std::int64_t t) const {
    if (WARDEN_LIKELY(!records_reads && !record_stats)) return;
    note_read(s, h, hit, t);
  }

  WARDEN_NOINLINE void note_read(cache_slot& s, std::size_t h, bool hit, std::int64_t t) const {
    if (record_stats) cache_slot::bump(hit ? s.hits : s.misses);
    if (!records_reads) return;
    const std::uint32_t o = owner_of(h);
    const std::int64_t when = hit ? (access_expiry ? (t != 0 ? t : now()) : 0) : kMissRecord;
    if (WARDEN_LIKELY(s.rings[o].try_push(h, when))) return;
    auto& box = const_cast<owner_thread<message>&>(owners[o]->thread).box();
    if (access_expiry && hit) {
      // Lossless for expiry: the record goes through the mailbox (never waits for room).
      try {
        box.push_call(queue(s, o), message{touch_op{h, when}, nullptr, 0});
      } catch (const closed_error&) {
      }
      return;
    }
    // Dropped (the policy learns from a sample); ask the owner to drain now, so a thread
    // reading many keys between two writes loses as few records as possible.
    cache_slot::bump(s.drops);
    box.nudge();
  }

  // ---- reentrancy ------------------------------------------------------------------------
  bool is_owner_thread() const noexcept {
    for (const auto& o : owners) {
      if (o->thread.is_current()) return true;
    }
    return false;
  }
  // Refuses, with reentrancy_error, a call or cast that would wait on an owner from a place
  // the owner itself waits on.
  void check_may_call(const char* what) const {
    if (is_owner_thread()) {
      throw reentrancy_error(std::string(what) + " from inside the table's owner-side callback");
    }
    check_not_on_pool(what);
    if (const cache_slot* s = slots.existing(); s != nullptr && s->held_by_caller()) {
      throw reentrancy_error(std::string(what) + " inside a snapshot or pin of the same table");
    }
    if (change_feed->bounded() && change_feed->on_notifier_thread()) {
      throw reentrancy_error(std::string(what) +
                             " from a subscriber of a table with a bounded change feed");
    }
  }

  // A pooled table's calls, and casts that wait for room, are refused on the pool's own
  // threads and in its owners' callbacks (owner_pool.hpp, P4; owner_thread::caller_holds_pool).
  void check_not_on_pool(const char* what) const {
    if (owners.front()->thread.caller_holds_pool()) {
      throw reentrancy_error(
          std::string(what) +
          " from a thread, or an owner-side callback, of the owner_pool the table runs on");
    }
  }

  // ---- owner side ------------------------------------------------------------------------
  // Only the owner of `s` (or a barrier coordinator while that owner waits) calls this.
  map_type& idle_map(std::size_t s) {
    return shards[s].copies[((published.owner_view() >> shard_owner[s]) & 1) ^ 1].map;
  }

  // Waits for readers to leave the idle copies, then replays the log onto them. Replay only
  // moves (nothrow); Eq may still throw in a probe, and a shard where that happened is
  // rebuilt from its published copy instead.
  void ensure_idle_ready(owner& o) noexcept {
    if (o.idle_ready) return;
    const bool light =
        published.before_scan(o.fence, o.index, light_readers && asymmetric_fences(), fences);
    // relaxed: set before the owners were stopped (see ~table_engine).
    if (!wait_for_readers(slots, destroying_slot.load(std::memory_order_relaxed), light,
                          o.scratch)) {
      // membarrier() failed. A light reader may have announced after that scan's barrier
      // and before the fence bit below: one more process-wide barrier after setting the bit
      // makes its announcement visible to every later scan (found by the model check,
      // tests/model).
      published.make_fence_permanent(o.fence, o.index);
      fallback_process_barrier();
    }
    std::vector<std::uint32_t> failed;
    const std::size_t n = o.oplog.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kPrefetchDistance < n) {
        const logged& ahead = o.oplog[i + kPrefetchDistance];
        if (const K* k = ahead.key()) prefetch_probe(idle_map(ahead.shard), *k, ahead.hash);
      }
      logged& e = o.oplog[i];
      try {
        e.replay(idle_map(e.shard));
      } catch (...) {
        must_succeed([&] { failed.push_back(e.shard); }, "recording a shard to rebuild");
      }
    }
    clear_keeping_working_set(o.oplog, n, kLogKeepCapacity);
    for (std::uint32_t s : failed) resync_shard(s);
    o.idle_ready = true;
#if WARDEN_CHECK_COPIES
    check_copies_agree(o);
#endif
  }

#if WARDEN_CHECK_COPIES
  // Debug check (tests define WARDEN_CHECK_COPIES=1): after the replay, each of o's idle
  // copies holds exactly the published one (keys, versions, deadlines), so evictions and
  // expirations, which reach the idle copy only through the log, were replayed identically.
  // O(entries) per batch: never on in production builds.
  void check_copies_agree(owner& o) noexcept {
    const std::uint64_t pub = published.owner_view();
    for (std::size_t s = 0; s <= shard_mask; ++s) {
      if (shard_owner[s] != o.index) continue;
      const map_type& live = published_map(pub, s);
      const map_type& idle = idle_map(s);
      bool same = live.size() == idle.size();
      for (auto it = live.begin(); same && it != live.end(); ++it) {
        const auto found = idle.find(it->first);
        same = found != idle.end() && found->second.version == it->second.version &&
               found->second.deadline == it->second.deadline;
      }
      if (!same) {
        std::fprintf(stderr, "warden: the two copies of shard %zu differ after a replay\n", s);
        std::abort();
      }
      // relaxed: a statistic for tests, read after the caches that counted are gone.
      copies_checked_total.fetch_add(1, std::memory_order_relaxed);
    }
  }
#endif

  // Makes the idle copy of `s` equal to the published one (after a replay that failed there),
  // by building a fresh map: every copy is made outside the map, which this absl version does
  // not keep consistent when a copy throws inside an insert. Publishing a divergent copy would
  // hand readers a state that never was, so this must succeed (see must_succeed).
  void resync_shard(std::size_t s) noexcept {
    const std::uint64_t pub = published.owner_view();
    must_succeed(
        [&] {
          const map_type& src = published_map(pub, s);
          // The inserts below never grow it.
          map_type fresh(capacity_for(src.size()), src.hash_function(), src.key_eq());
          for (const auto& [k, v] : src) {
            K key(k);
            entry value(v);
            upsert(fresh, std::move(key), std::move(value));
          }
          idle_map(s) = std::move(fresh);
        },
        "rebuilding a shard's idle copy (Eq or a copy)");
  }

  // Applies one write to the idle copy of its shard and logs it for the replay. Strong
  // guarantee: the log entry is copied before the map is touched, and the map receives only
  // moves; a map operation that throws (Eq in a probe, out of memory growing) leaves the map
  // as it was (owner_map.hpp), and the log entry is dropped. Between begin_undo and end_undo
  // it also keeps what the key held, moved out, for rollback().
  void write(owner& o, std::size_t h, K&& key, entry&& value) {
    ensure_idle_ready(o);
    const auto s = static_cast<std::uint32_t>(shard_of(h));
    o.oplog.push_back(logged{s, h, logged_upsert<K, entry>{key, value}});
    map_type& m = idle_map(s);
    try {
      if (!o.undoing) {
        upsert(m, h, std::move(key), std::move(value));
      } else if (auto it = m.find(prehashed_key<K>{&key, h}); it != m.end()) {
        o.undo.push_back(undo_record{o.oplog.size() - 1, std::move(it->second)});  // reserved
        it->second = std::move(value);
      } else {
        o.undo.push_back(undo_record{o.oplog.size() - 1, std::nullopt});  // reserved
        try {
          upsert(m, h, std::move(key), std::move(value));
        } catch (...) {
          o.undo.pop_back();
          throw;
        }
      }
    } catch (...) {
      o.oplog.pop_back();
      throw;
    }
    o.dirty = true;
  }

  // Removes `key` from the idle copy; the key moves into the log. Cannot fail: a throwing
  // Eq is retried (hashing.hpp), out of memory for the log ends the owner (never inside
  // begin_undo/end_undo, whose log and undo records are reserved).
  void remove(owner& o, std::size_t h, K&& key) noexcept {
    ensure_idle_ready(o);
    const auto s = static_cast<std::uint32_t>(shard_of(h));
    logged entry{s, h, logged_erase<K>{std::move(key)}};
    // Strong guarantee (logged moves without throwing): a retry still has the key.
    must_succeed([&] { o.oplog.push_back(std::move(entry)); }, "logging an erase");
    const K& k = *o.oplog.back().key();
    map_type& m = idle_map(s);
    must_succeed(
        [&] {
          auto it = m.find(prehashed_key<K>{&k, h});
          if (it == m.end()) return;
          if (o.undoing) {
            o.undo.push_back(undo_record{o.oplog.size() - 1, std::move(it->second)});  // reserved
          }
          m.erase(it);
        },
        "erasing a key (Eq)");
    if (!o.undoing) shrink_if_sparse(m);
    o.dirty = true;
  }

  void set_deadline(owner& o, std::size_t h, const K& key, std::int64_t d) noexcept {
    ensure_idle_ready(o);
    const auto s = static_cast<std::uint32_t>(shard_of(h));
    must_succeed(
        [&] {
          map_type& m = idle_map(s);
          auto it = m.find(prehashed_key<K>{&key, h});
          if (it == m.end()) return;
          o.oplog.push_back(logged{s, h, logged_deadline<K>{key, d}});
          it->second.deadline = d;
        },
        "extending an entry's deadline");
    o.dirty = true;
  }

  void clear_owner(owner& o) noexcept {
    ensure_idle_ready(o);
    for (std::uint32_t s : o.shards) {
      must_succeed([&] { o.oplog.push_back(logged{s, 0, logged_clear{}}); }, "logging a clear");
      idle_map(s).clear();
    }
    o.dirty = true;
  }

  // ---- writes applied all or nothing (a transaction, restore) ------------------------------
  // reserve_all_or_nothing(o, writes, puts_per_shard) readies o's idle copies and reserves all
  // that `writes` writes (with puts_per_shard[s] inserts into shard s) may allocate: log
  // entries, undo records and map room (grow_ahead). It throws (std::bad_alloc) having changed
  // nothing a reader or a later batch depends on. Then begin_undo; the writes, each moving
  // what its key held into an undo record; and end_undo, or rollback, which puts those back
  // in reverse order with moves alone: it allocates nothing, and its re-inserts find room,
  // since each map was at least that full during the writes.
  void reserve_all_or_nothing(owner& o, std::size_t writes,
                              const std::vector<std::size_t>& puts_per_shard) {
    ensure_idle_ready(o);
    o.oplog.reserve(o.oplog.size() + writes);
    o.undo.reserve(writes);
    for (std::uint32_t s : o.shards) {
      if (puts_per_shard[s] != 0) grow_ahead(idle_map(s), puts_per_shard[s]);
    }
  }
  std::size_t begin_undo(owner& o) noexcept {
    o.undo.clear();
    o.undoing = true;
    return o.oplog.size();
  }
  void end_undo(owner& o) noexcept {
    o.undoing = false;
    o.undo.clear();
  }
  void rollback(owner& o, std::size_t mark) noexcept {
    for (auto u = o.undo.rbegin(); u != o.undo.rend(); ++u) {
      logged& l = o.oplog[u->log_index];
      K& key = *l.key();  // the log's own copy, moved out at most once
      map_type& m = idle_map(l.shard);
      must_succeed(
          [&] {
            auto it = m.find(prehashed_key<K>{&key, l.hash});
            if (!u->old) {
              if (it != m.end()) m.erase(it);
            } else if (it != m.end()) {
              it->second = std::move(*u->old);
            } else {
              upsert(m, l.hash, std::move(key), std::move(*u->old));
            }
          },
          "rolling back a transaction (Eq)");
    }
    o.oplog.erase(o.oplog.begin() + static_cast<std::ptrdiff_t>(mark), o.oplog.end());
    end_undo(o);
  }

  // Publishes the owners in `mask` (whose states' changes form one batch), then completes
  // their replies and wakes the loads they ended.
  void publish(std::uint64_t mask, owner* const* involved, std::size_t count) noexcept {
    std::vector<change<K, V>> batch;
    for (std::size_t i = 0; i < count; ++i) {
      owner* o = involved[i];
      auto& ch = o->state.changes();
      if (batch.empty()) {
        batch.swap(ch);
      } else {
        must_succeed(
            [&] {
              batch.insert(batch.end(), std::make_move_iterator(ch.begin()),
                           std::make_move_iterator(ch.end()));
            },
            "collecting a batch's changes");
        ch.clear();
      }
    }
    const auto flip = [&] {
      if (mask != 0) published.flip(mask);
    };
    if (batch.empty()) {
      flip();
    } else {
      must_succeed([&] { change_feed->publish(std::move(batch), flip); }, "handing over a batch");
    }
    for (std::size_t i = 0; i < count; ++i) {
      owner* o = involved[i];
      if ((mask >> o->index) & 1) {
        o->dirty = false;
        o->idle_ready = false;
      }
    }
  }

  void publish_and_reply(owner& o) noexcept {
    publish_owner(o);
    reply(o);
  }

  // Publishes owner `o`'s batch (its changes too, if any).
  void publish_owner(owner& o) noexcept {
    const auto started = std::chrono::steady_clock::now();
    const std::uint64_t mask = o.dirty ? std::uint64_t{1} << o.index : 0;
    owner* self = &o;
    if (mask != 0 || !o.state.changes().empty()) publish(mask, &self, 1);
    if (mask != 0) {
      owner_counters::add(
          o.state.counters().publish_ns,
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()));
    }
  }

  // Completes the published batch's calls and wakes the loads it ended.
  void reply(owner& o) noexcept {
    for (call_t* c : o.replies) complete(*c);
    clear_keeping_working_set(o.replies, o.replies.size(), kLogKeepCapacity);
    for (auto& l : o.load_wakes) l->publish();
    o.load_wakes.clear();
  }

  // Drains every slot's access ring of owner `o`.
  void drain_access(owner& o) noexcept {
    if (!records_reads) return;
    store st{*this, o};
    std::uint32_t found = 0;
    slots.for_each([&](cache_slot& s) {
      found += s.rings[o.index].drain(
          [&](const access_record& r) { o.state.on_access(st, r.hash, r.time); });
    });
    o.records_pending = found != 0;
  }

  // Starts loading the slots a queued write will probe, so that the cache misses of several
  // writes overlap instead of coming one after another.
  void prefetch_write(const message& m) {
    if (auto* p = std::get_if<put_op>(&m.op)) {
      prefetch_probe(idle_map(shard_of(p->hash)), p->key.get(), p->hash);
    } else if (auto* e = std::get_if<erase_op>(&m.op)) {
      prefetch_probe(idle_map(shard_of(e->hash)), e->key.get(), e->hash);
    }
  }

  static void record_cast_error(const message& m, std::exception_ptr e) noexcept {
    if (m.sender != nullptr) m.sender->record_cast_error(m.generation, std::move(e));
  }

  void apply(owner& o, std::vector<message>& batch) noexcept {
    owner_counters::add(o.state.counters().batches, 1);
    o.state.set_collecting(change_feed->has_subscribers());
    drain_access(o);
    store st{*this, o};
    const std::int64_t t = batch.empty() ? 0 : now();
    must_succeed([&] { o.replies.reserve(batch.size()); }, "reserving replies");
    const std::size_t n = batch.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kPrefetchDistance < n) prefetch_write(batch[i + kPrefetchDistance]);
      message& m = batch[i];
      if (auto* p = std::get_if<put_op>(&m.op)) {
        try {
          o.state.put(st, p->hash, std::move(p->key.get()), std::move(p->value.get()), p->ttl, t);
        } catch (...) {
          record_cast_error(m, std::current_exception());
        }
      } else if (auto* e = std::get_if<erase_op>(&m.op)) {
        try {
          o.state.erase(st, e->hash, std::move(e->key.get()));
        } catch (...) {
          record_cast_error(m, std::current_exception());
        }
      } else if (auto* a = std::get_if<touch_op>(&m.op)) {
        o.state.on_access(st, a->hash, a->time);
      } else {
        run_call(o, std::get<call_t*>(m.op));
      }
    }
  }

  void expire_due(owner& o) noexcept {
    store st{*this, o};
    o.state.expire(st, now());
  }

  // Runs a call found in the mailbox. Barrier calls run in their global order: one found
  // ahead of its turn (another producer's earlier barrier is still on its way) waits in
  // `deferred`, so two barriers can never wait for each other across owners.
  void run_call(owner& o, call_t* c) noexcept {
    if (c->barrier_order != 0 && c->barrier_order != o.next_barrier) {
      must_succeed([&] { o.deferred.emplace(c->barrier_order, c); }, "deferring a barrier");
      return;
    }
    for (;;) {
      const bool barrier = c->barrier_order != 0;
      if (start_call(*c)) {  // else cancelled at its deadline (by every owner alike)
        if (c->run != nullptr) c->run(*c, o);
        o.replies.push_back(c);
      }
      if (!barrier) return;
      ++o.next_barrier;
      auto it = o.deferred.find(o.next_barrier);
      if (it == o.deferred.end()) return;
      c = it->second;
      o.deferred.erase(it);
    }
  }

  // The owner's timed work; returns when it must run again.
  std::chrono::steady_clock::time_point idle(owner& o) noexcept {
    using clock_t = std::chrono::steady_clock;
    drain_access(o);
    store st{*this, o};
    const std::int64_t t = now();
    o.state.expire(st, t);
    publish_and_reply(o);
    auto wake = published.on_idle(o.fence, o.index, fences);
    if (o.records_pending) wake = std::min(wake, clock_t::now() + kAccessDrainTick);
    const std::int64_t next = o.state.next_expiry();
    if (next != kNever) {
      clock_t::time_point due;
      if (clock == nullptr) {
        due = clock_t::now() + std::chrono::nanoseconds(std::max<std::int64_t>(next - t, 0));
      } else {
        due = clock_t::now() + kForeignClockTick;
      }
      wake = std::min(wake, due);
    }
    return wake;
  }

  // ---- caller side: posting calls ---------------------------------------------------------
  using queue_type = typename mailbox<message>::producer;

  // The calling thread's queue in owner `o`'s mailbox (made on its first message there).
  queue_type& queue(cache_slot& s, std::uint32_t o) const {
    if (WARDEN_UNLIKELY(s.producers == nullptr)) s.producers = new void*[owner_count]();
    if (WARDEN_UNLIKELY(s.producers[o] == nullptr)) {
      s.producers[o] = &const_cast<owner_thread<message>&>(owners[o]->thread).box().add_producer();
    }
    return *static_cast<queue_type*>(s.producers[o]);
  }

  // Posts call `c` to owners 0..parts-1. A call of one part that nobody may cancel (no
  // claim: no deadline, not detached) goes through post_single and may combine.
  void post_parts(cache_slot& s, call_t& c, int parts) {
    if (parts == 1 && c.claim == nullptr) {
      post_single(s, c, 0);
      return;
    }
    int posted = 0;
    try {
      for (; posted < parts; ++posted) {
        const auto o = static_cast<std::uint32_t>(posted);
        owners[o]->thread.box().push_call(queue(s, o), message{&c, nullptr, 0});
      }
    } catch (...) {
      abandon_after_partial_post(c, posted, parts);
    }
  }

  // Posts `c`, a call of one part, to owner `target`; if that owner is parked, runs its cycle
  // here (combining). Callers have passed check_may_call, which makes that safe, and wait
  // for `c` with no deadline (a batch queued ahead of it could outlast one).
  void post_single(cache_slot& s, call_t& c, std::uint32_t target) {
    auto& thread = owners[target]->thread;
    try {
      if (!thread.box().push_call_unwoken(queue(s, target), message{&c, nullptr, 0})) return;
    } catch (...) {
      abandon_after_partial_post(c, 0, 1);
    }
    thread.serve_parked();
  }

  void post_one(cache_slot& s, thread_record& rec, call_t& c, std::uint32_t target) {
    begin_call<owner>(c, rec, 1);
    post_single(s, c, target);
    await(c);
  }

  // A call is ordered behind this thread's earlier casts to every owner: flush the owners
  // (other than the call's target, whose mailbox orders it anyway) it may have cast to.
  void flush_other_dirty_owners(cache_slot& s, thread_record& rec, std::uint32_t target) {
    if (owner_count == 1) return;
    std::uint64_t dirty = rec.dirty_serial == slots.serial() ? rec.dirty_owners : ~std::uint64_t{0};
    dirty &= ~(std::uint64_t{1} << target);
    for (std::uint32_t i = 0; i < owner_count; ++i) {
      if ((dirty >> i) & 1) {
        call_t c;
        post_one(s, rec, c, i);
      }
    }
    forget_dirty_owners(rec);
  }

  // After a call that flushed every owner, this thread has no unflushed casts to the table.
  void forget_dirty_owners(thread_record& rec) const noexcept {
    rec.dirty_serial = slots.serial();
    rec.dirty_owners = 0;
  }

  void note_cast(thread_record& rec, std::uint32_t target) const noexcept {
    if (owner_count == 1) return;
    if (rec.dirty_serial != slots.serial()) {
      // Tracking covers one table per thread; losing another table's set is safe because a
      // missing entry means "assume every owner is dirty".
      rec.dirty_serial = slots.serial();
      rec.dirty_owners = ~std::uint64_t{0};
    }
    rec.dirty_owners |= std::uint64_t{1} << target;
  }

  // Runs fn(owner&) -> R on owner `target` (the owner of the key it concerns) and returns
  // its result, or rethrows what it threw.
  template <class R, class Fn>
  R call_on(std::uint32_t target, Fn&& fn, const char* what) {
    check_may_call(what);
    cache_slot& slot = my_slot();
    thread_record& rec = current_record();
    linger_count::scope stay(lingering, true);  // see `lingering`
    flush_other_dirty_owners(slot, rec, target);
    struct fn_call : call_t {
      std::remove_reference_t<Fn>* fn;
      call_result<R> result{};
    };
    fn_call c;
    c.fn = &fn;
    c.run = [](call_t& base, owner& o) {
      auto& self = static_cast<fn_call&>(base);
      run_into<R>(self.result, self.error, [&]() -> decltype(auto) { return (*self.fn)(o); });
    };
    post_one(slot, rec, c, target);
    if constexpr (!std::is_void_v<R>) return std::move(*c.result);
  }

  // Runs body(state, store, load_wakes) -> R on the owner of hash `h` (cache_calls.hpp).
  template <class R, class Body>
  R call_keyed(std::size_t h, Body&& body, const char* what) {
    return call_on<R>(
        owner_of(h),
        [&](owner& o) -> R {
          store st{*this, o};
          return body(o.state, st, o.load_wakes);
        },
        what);
  }

  bool stats_recorded() const noexcept { return record_stats; }

  cache_stats stats() const {
    cache_stats st;
    add_caller_stats(slots, st);
    for (const auto& o : owners) {
      add_owner_stats(o->state.counters(), st);
      st.mailbox_depth += o->thread.box().depth();
    }
    drop_unrecorded_stats(record_stats, st);
    add_feed_stats(*change_feed, st);
    return st;
  }

  // Returns once every cast this thread sent before is applied and visible; rethrows the
  // first error of those casts since the last flush.
  void flush() {
    check_may_call("flush");
    thread_record& rec = current_record();
    linger_count::scope stay(lingering, true);
    cache_slot& s = my_slot();
    call_t c;
    begin_call<owner>(c, rec, static_cast<int>(owner_count));
    post_parts(s, c, static_cast<int>(owner_count));
    await(c);
    forget_dirty_owners(rec);
    if (auto err = s.take_cast_error(rec.generation)) std::rethrow_exception(err);
  }

 private:
  friend struct table_writes<table_engine>;
  friend struct table_barriers<table_engine>;

  // ---- state -----------------------------------------------------------------------------
  // Read-side fields first, together: a get touches only this line, its shard's owner byte
  // and the map it probes.
  mutable slot_list slots;
  const std::uint64_t shard_mask;
  const bool light_readers;  // table_options::asymmetric_fence
  const bool records_reads;  // max_size or expire_after_access: readers record accesses
  const bool record_stats;
  const bool access_expiry;
  const warden::clock* const clock;
  const std::unique_ptr<shard[]> shards;
  const std::unique_ptr<std::uint8_t[]> shard_owner;
  const Hash hasher;
  const Eq equal;
  publication published;

  alignas(kFalseSharingRange) const cache_config config;
  const std::uint32_t owner_count;
  const fence_policy fences = fence_policy_defaults;
  std::vector<std::unique_ptr<owner>> owners;
  std::mutex cross_post_mutex;       // numbers cross-owner barriers and posts them in order
  std::uint64_t barrier_orders = 0;  // guarded by cross_post_mutex
  std::shared_ptr<feed_type> change_feed;
  std::atomic<const cache_slot*> destroying_slot{nullptr};
  // Callers that may use the engine after a reply: a second post, dirty-owner bookkeeping,
  // cast errors, and a call that runs its parked owner's cycle (post_single) or wakes it.
  linger_count lingering;

  static constexpr std::size_t kLogKeepCapacity = 4096;  // give a burst's log memory back
};

}  // namespace warden::detail
