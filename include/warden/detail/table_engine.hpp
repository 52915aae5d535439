// The engine behind warden::table: left-right copies per shard, owners that apply batches to
// the idle copies and publish them with one atomic flip.
//
// Layout. Keys map to shards by hash bits 32..47 (absl's probe uses bits 0..31 of the same
// hash, so the shard choice does not thin out a shard's probe bits). Each shard holds two
// absl::flat_hash_map copies, each on its own cache lines. Shard s belongs to owner
// `shard_owner[s]`; only that owner writes its copies.
//
// Publication. One word, `published`, holds one bit per owner: bit i names the copy of owner
// i's shards that readers use. Readers load the word once per get (or once per snapshot), so
// a snapshot sees every owner's state at the single instant of that load: a batch, or a
// transaction spanning owners (whose bits are flipped together by one fetch_xor), is seen
// whole or not at all.
//
// Readers (see thread_registry.hpp) announce `(sequence, table id)` in a word of their own,
// then load `published`. An owner flips its bit (seq_cst RMW) and, before it next writes the
// copy readers just left, waits until every announcement of this table that it sees has
// changed. That is the Dekker pair that makes it safe: a reader either is seen and waited
// for, or read the new bit. The StoreLoad fence it needs is asymmetric: the owner runs
// membarrier() before scanning and the reader only a compiler barrier (or, where membarrier
// is unavailable, the reader's store is seq_cst), so a get holds no fence that would keep
// independent lookups from overlapping their cache misses. Owners defer that wait to the next
// batch, by which time readers have almost always moved on, so it rarely waits at all.
//
// Fence modes. membarrier() interrupts every CPU running a thread of the process; that is
// cheap on bare metal but costs ~10 us per call on a VM whenever another thread runs (an IPI
// is a VM exit), so an owner publishing tens of thousands of times a second (calls, small
// batches) would spend its time there and slow its readers down. Each owner therefore picks
// a mode, shown by its fence bit in the high half of `published`: clear, the owner issues
// membarrier() before each scan; set, readers that see it fence their own announcement and
// the owner scans without membarrier().
// An owner sets its bit after 8 scans in a row, each within 100 us of the previous one, and
// clears it at the first scan after 2 ms without one (fence_policy). Setting the bit
// is followed by a membarrier() (the scan's own). A reader announces with a plain store and
// then loads `published`: if that load shows no fence bit, it preceded the bit's setting and
// so the membarrier() after it, which made the announcement visible to every later scan; if
// it shows one, the reader fences and loads `published` again (the symmetric Dekker pair).
// Clearing needs nothing more: from then on every scan issues membarrier() again. A fenced
// get costs a plain store, a load, a fence and a load; a light one what it did before.
// table_options::asymmetric_fence = false keeps every owner's readers fenced.
//
// Writes. Owner i drains its mailbox; before the batch's first write it waits for readers of
// the idle copy and replays the previous batch's log into it (the two copies are then equal);
// it applies the batch to the idle copy, logging each write; then flips bit i and completes
// the batch's calls. Each write is thus applied twice (once copied, once moved on replay),
// and the memory is two maps: the price of reads that never wait and never retry.
//
// Transactions spanning owners (owners > 1) stop every owner at a barrier: the caller posts
// one part to each owner (under `cross_post_mutex`, so all owners see such transactions in
// one order and two barriers never wait on each other); each owner publishes its pending
// batch, readies its idle copy and arrives; the last to arrive runs the function over all
// idle copies, commits, flips all touched bits with one fetch_xor and releases the others.
//
// A snapshot held open delays only the owner's next write to the copy it reads (the wait
// above); the owner keeps accepting casts meanwhile and catches up once the snapshot closes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "warden/detail/hashing.hpp"
#include "warden/detail/owner.hpp"
#include "warden/detail/owner_map.hpp"
#include "warden/detail/thread_registry.hpp"
#include "warden/options.hpp"
#include "warden/transaction.hpp"

namespace warden::detail {

static_assert(sizeof(std::size_t) == 8, "warden's shard selection assumes 64-bit hashes");

// Fence-mode switching (file comment): `quick_waits` scans in a row, each within
// `frequent_wait` of the last, switch an owner's readers to fenced announcements; a gap of
// `quiet_wait` switches them back. A table copies `fence_policy_defaults` when it is
// constructed; tests change the defaults (before constructing, from one thread) to force
// switches.
struct fence_policy {
  std::chrono::steady_clock::duration frequent_wait = std::chrono::microseconds(100);
  int quick_waits = 8;
  std::chrono::steady_clock::duration quiet_wait = std::chrono::milliseconds(2);
};
inline fence_policy fence_policy_defaults;
inline constexpr unsigned kFenceShift = 32;
inline constexpr std::uint64_t kFenceBits = ~std::uint64_t{0} << kFenceShift;
static_assert(kMaxOwners <= kFenceShift);

template <class K, class V, class Hash, class Eq>
class table_engine {
 public:
  using map_type = owner_map<K, V, Hash, Eq>;
  using tx_type = transaction<K, V, Hash, Eq>;

  struct alignas(kFalseSharingRange) copy_slot {
    map_type map;
  };
  struct shard {
    copy_slot copies[2];
  };

  struct owner;
  using call_t = call<owner>;

  using message = detail::message<K, V, call_t>;
  using put_op = typename message::put_op;
  using erase_op = typename message::erase_op;

  // A write applied to the idle copy, kept to replay onto the other copy after the flip.
  struct logged {
    std::uint32_t shard;
    std::size_t hash;
    std::optional<V> value;  // nullopt: erase
    K key;
  };

  struct owner {
    owner(table_engine* e, std::uint32_t i, std::size_t capacity)
        : engine(e), index(i), thread(capacity) {}
    table_engine* const engine;
    const std::uint32_t index;
    std::vector<logged> oplog;   // writes the idle copy has and the published one lacks, or
                                 // (after a flip) the reverse
    bool idle_ready = true;      // the idle copy equals the published one
    bool dirty = false;          // the idle copy has unpublished writes
    bool readers_fence = false;  // this owner's fence bit in `published`
    int quick_waits = 0;         // consecutive reader waits that came soon after the last
    std::chrono::steady_clock::time_point last_wait{};
    std::vector<call_t*> replies;  // calls to complete after the next publication
    owner_thread<message> thread;
  };

  table_engine(const table_options& opts, Hash hash, Eq eq)
      : id(registry::instance().acquire_id()),
        shard_mask(opts.shards - 1),
        light_readers(opts.asymmetric_fence),
        shards(std::make_unique<shard[]>(opts.shards)),
        shard_owner(std::make_unique<std::uint8_t[]>(opts.shards)),
        hasher(std::move(hash)),
        equal(std::move(eq)) {
    for (std::size_t s = 0; s < opts.shards; ++s) {
      shard_owner[s] = static_cast<std::uint8_t>(s % opts.owners);
      for (auto& c : shards[s].copies) {
        c.map = map_type(0, inner_hash<K, Hash>{hasher}, inner_eq<K, Eq>{equal});
      }
    }
    owners.reserve(opts.owners);
    for (std::uint32_t i = 0; i < opts.owners; ++i) {
      owners.push_back(std::make_unique<owner>(this, i, opts.mailbox_capacity));
    }
    for (auto& o : owners) {
      o->thread.start(id,
                      [this, op = o.get()](std::vector<message>& batch) { process(*op, batch); });
    }
  }

  table_engine(const table_engine&) = delete;
  table_engine& operator=(const table_engine&) = delete;

  // Drains: every accepted message is applied before the owners exit.
  ~table_engine() {
    for (auto& o : owners) o->thread.stop();
    lingering.wait_until_empty();
    registry::instance().release_id(id);
  }

  // ---- read side -------------------------------------------------------------------------
  // The read path is forced inline: a call per get costs the lookups in flight.
  WARDEN_ALWAYS_INLINE std::size_t shard_of(std::size_t h) const { return (h >> 32) & shard_mask; }

  WARDEN_ALWAYS_INLINE const map_type& published_map(std::uint64_t pub, std::size_t s) const {
    return shards[s].copies[(pub >> shard_owner[s]) & 1].map;
  }

  // Must be called inside a read section, with `pub` loaded after entering it.
  WARDEN_ALWAYS_INLINE const V* find_published(std::uint64_t pub, const K& key,
                                               std::size_t h) const {
    const map_type& m = published_map(pub, shard_of(h));
    auto it = m.find(prehashed_key<K>{&key, h});
    return it == m.end() ? nullptr : &it->second;
  }

  WARDEN_ALWAYS_INLINE std::uint64_t load_published() const {
    // seq_cst: the reader's half of the Dekker pair with the owners' flips (file comment);
    // acquire also makes the published copy's contents visible. On x86 it is a plain load.
    return published.load(std::memory_order_seq_cst);
  }

  struct opened_section {
    unsigned depth;     // for exit_read
    std::uint64_t pub;  // the publication word to read under the section
  };

  // Opens a read section and loads the publication word (file comment, "Fence modes"). The
  // announcement is light whenever the table allows it; if the word then shows an owner
  // asking for fenced readers, that owner may scan without membarrier(), so the reader
  // supplies the StoreLoad fence itself and loads the word again.
  WARDEN_ALWAYS_INLINE opened_section open_read() const {
    const unsigned depth = enter_read(id, light_readers);
    std::uint64_t pub = load_published();
    if (WARDEN_UNLIKELY((pub & kFenceBits) != 0)) {
      fence_announcement(depth);
      pub = load_published();
    }
    return {depth, pub};
  }

  // ---- owner side ------------------------------------------------------------------------
  // Only the owner of `s` (or the barrier coordinator while that owner is parked) calls this.
  map_type& idle_map(std::size_t s) {
    // relaxed: bit i is written only by owner i or by a coordinator whose barrier release
    // ordered that write before this read.
    const std::uint64_t pub = published.load(std::memory_order_relaxed);
    return shards[s].copies[((pub >> shard_owner[s]) & 1) ^ 1].map;
  }

  const V* find_current(const K& key, std::size_t h) {
    map_type& m = idle_map(shard_of(h));
    auto it = m.find(prehashed_key<K>{&key, h});
    return it == m.end() ? nullptr : &it->second;
  }

  static const V* find_current_thunk(const void* self, const K& key, std::size_t h) {
    return const_cast<table_engine*>(static_cast<const table_engine*>(self))->find_current(key, h);
  }

  // Chooses this owner's fence mode for the wait that follows (file comment, "Fence modes")
  // and returns whether that wait must issue membarrier().
  bool choose_fence_mode(owner& o) noexcept {
    if (!light_readers || !asymmetric_fences()) return false;  // readers always fence
    const auto now = std::chrono::steady_clock::now();
    const auto since = now - o.last_wait;
    o.last_wait = now;
    const std::uint64_t bit = std::uint64_t{1} << (kFenceShift + o.index);
    if (!o.readers_fence) {
      o.quick_waits = since < policy.frequent_wait ? o.quick_waits + 1 : 0;
      if (o.quick_waits >= policy.quick_waits) {
        // seq_cst: ordered before the membarrier() of the wait that follows; see open_read.
        published.fetch_or(bit, std::memory_order_seq_cst);
        o.readers_fence = true;
        o.quick_waits = 0;
        // relaxed: a statistic.
        fence_mode_switches.fetch_add(1, std::memory_order_relaxed);
      }
      return true;  // light readers, or the switch's own membarrier()
    }
    if (since > policy.quiet_wait) {
      // seq_cst: readers that see the bit clear announce lightly; this and every later wait
      // in light mode issues membarrier() for them.
      published.fetch_and(~bit, std::memory_order_seq_cst);
      o.readers_fence = false;
      // relaxed: a statistic.
      fence_mode_switches.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    return false;  // every reader of this owner's shards fences its own announcement
  }

  // Waits for readers to leave the idle copies, then replays the log onto them. Replay only
  // moves (nothrow); Eq may still throw in a probe, and a shard where that happened is
  // rebuilt from its published copy instead.
  void ensure_idle_ready(owner& o) noexcept {
    if (o.idle_ready) return;
    wait_for_readers(id, choose_fence_mode(o));
    std::vector<std::uint32_t> failed;
    failed.reserve(o.oplog.size());  // out of memory here ends the owner (noexcept)
    const std::size_t n = o.oplog.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kPrefetchDistance < n) {
        const logged& ahead = o.oplog[i + kPrefetchDistance];
        idle_map(ahead.shard).prefetch(prehashed_key<K>{&ahead.key, ahead.hash});
      }
      logged& e = o.oplog[i];
      try {
        map_type& m = idle_map(e.shard);
        if (e.value) {
          upsert(m, e.hash, std::move(e.key), std::move(*e.value));
        } else {
          m.erase(prehashed_key<K>{&e.key, e.hash});
        }
      } catch (...) {
        failed.push_back(e.shard);
      }
    }
    o.oplog.clear();
    for (std::uint32_t s : failed) resync_shard(o, s, /*reapply_log=*/false);
    o.idle_ready = true;
  }

  // Makes the idle copy of `s` equal to the published one (plus, if `reapply_log`, the
  // writes of the current batch), by building a fresh map: every copy is made outside the
  // map, which this absl version does not keep consistent when a copy throws inside an
  // insert. Publishing a divergent copy would hand readers a state that never was, so this
  // must succeed (see must_succeed).
  void resync_shard(owner& o, std::size_t s, bool reapply_log) noexcept {
    // relaxed: as in idle_map().
    const std::uint64_t pub = published.load(std::memory_order_relaxed);
    must_succeed(
        [&] {
          const map_type& src = published_map(pub, s);
          map_type fresh(src.size(), src.hash_function(), src.key_eq());
          for (const auto& [k, v] : src) {
            K key(k);
            V value(v);
            upsert(fresh, std::move(key), std::move(value));
          }
          if (reapply_log) {
            for (const logged& e : o.oplog) {
              if (e.shard != s) continue;
              if (e.value) {
                K key(e.key);
                V value(*e.value);
                upsert(fresh, std::move(key), std::move(value));
              } else {
                fresh.erase(e.key);
              }
            }
          }
          idle_map(s) = std::move(fresh);
        },
        "rebuilding a shard's idle copy (Eq or a copy)");
  }

  // Applies one write to the idle copy of shard `s` with moves only.
  void apply(std::uint32_t s, std::size_t h, K&& key, std::optional<V>&& value) {
    map_type& m = idle_map(s);
    if (value) {
      upsert(m, h, std::move(key), std::move(*value));
    } else {
      m.erase(prehashed_key<K>{&key, h});
    }
  }

  // Applies one write to the idle copy of its shard and logs it for the replay. Strong
  // guarantee: the log entry is copied before the map is touched, and the map receives only
  // moves; if the map operation still throws (Eq in a probe, out of memory), the entry is
  // dropped and the shard rebuilt.
  void write(owner& o, std::size_t h, K&& key, std::optional<V>&& value) {
    ensure_idle_ready(o);
    const auto s = static_cast<std::uint32_t>(shard_of(h));
    o.oplog.push_back(logged{s, h, value, key});
    try {
      apply(s, h, std::move(key), std::move(value));
    } catch (...) {
      o.oplog.pop_back();
      resync_shard(o, s, /*reapply_log=*/true);
      throw;
    }
    o.dirty = true;
  }

  // Commits a transaction's staged writes to the idle copies (of any owner: the caller
  // guarantees every owner involved is ready and not running). Returns the bit mask of owners
  // written. All or nothing: every copy (for the maps and the logs) is made first, so a
  // throwing copy leaves everything untouched; a map operation that still throws (Eq, out
  // of memory) rolls the touched shards back.
  std::uint64_t commit(const tx_type& tx) {
    struct prepared {
      owner* o;
      std::uint32_t shard;
      std::size_t hash;
      K key;
      std::optional<V> value;
      logged entry;
    };
    std::vector<prepared> writes;
    writes.reserve(tx.staged().size());
    for (const auto& [key, value] : tx.staged()) {
      const std::size_t h = hash_retrying(hasher, key);  // hashed once already, in tx.put
      const auto s = static_cast<std::uint32_t>(shard_of(h));
      writes.push_back(
          prepared{owners[shard_owner[s]].get(), s, h, K(key), value, logged{s, h, value, K(key)}});
    }
    std::vector<std::size_t> log_sizes(owners.size());
    for (std::size_t i = 0; i < owners.size(); ++i) log_sizes[i] = owners[i]->oplog.size();
    for (const prepared& w : writes) w.o->oplog.reserve(w.o->oplog.size() + writes.size());
    std::uint64_t touched = 0;
    try {
      for (prepared& w : writes) {
        w.o->oplog.push_back(std::move(w.entry));  // reserved: does not throw
        apply(w.shard, w.hash, std::move(w.key), std::move(w.value));
        w.o->dirty = true;
        touched |= std::uint64_t{1} << w.o->index;
      }
    } catch (...) {
      for (std::size_t i = 0; i < owners.size(); ++i) {
        owner& o = *owners[i];
        if (o.oplog.size() == log_sizes[i]) continue;
        std::vector<std::uint32_t> undo;
        for (std::size_t j = log_sizes[i]; j < o.oplog.size(); ++j) {
          undo.push_back(o.oplog[j].shard);
        }
        o.oplog.resize(log_sizes[i]);
        for (std::uint32_t s : undo) resync_shard(o, s, /*reapply_log=*/true);
      }
      throw;
    }
    return touched;
  }

  void publish_and_reply(owner& o) noexcept {
    if (o.dirty) {
      // seq_cst: the owner's half of the Dekker pair (file comment); also releases the
      // batch's writes to readers' seq_cst (acquiring) loads.
      published.fetch_xor(std::uint64_t{1} << o.index, std::memory_order_seq_cst);
      o.dirty = false;
      o.idle_ready = false;
    }
    for (call_t* c : o.replies) complete(*c);
    o.replies.clear();
  }

  // Starts loading the slots a queued write will probe, so that the cache misses of several
  // writes overlap instead of coming one after another.
  void prefetch_write(const message& m) {
    std::size_t h;
    const K* key;
    if (auto* p = std::get_if<put_op>(&m.op)) {
      h = p->hash;
      key = &p->key;
    } else if (auto* e = std::get_if<erase_op>(&m.op)) {
      h = e->hash;
      key = &e->key;
    } else {
      return;
    }
    idle_map(shard_of(h)).prefetch(prehashed_key<K>{key, h});
  }

  void process(owner& o, std::vector<message>& batch) noexcept {
    o.replies.reserve(batch.size());
    const std::size_t n = batch.size();
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kPrefetchDistance < n) prefetch_write(batch[i + kPrefetchDistance]);
      message& m = batch[i];
      if (auto* p = std::get_if<put_op>(&m.op)) {
        try {
          write(o, p->hash, std::move(p->key), std::optional<V>(std::move(p->value)));
        } catch (...) {
          cast_errors.record(m.sender, m.generation, std::current_exception());
        }
      } else if (auto* e = std::get_if<erase_op>(&m.op)) {
        try {
          write(o, e->hash, std::move(e->key), std::nullopt);
        } catch (...) {
          cast_errors.record(m.sender, m.generation, std::current_exception());
        }
      } else {
        call_t* c = std::get<call_t*>(m.op);
        if (!start_call(*c)) continue;  // cancelled at its deadline
        if (c->run != nullptr) c->run(*c, o);
        o.replies.push_back(c);
      }
    }
    publish_and_reply(o);
  }

  // ---- state -----------------------------------------------------------------------------
  // Read-side fields first, together: a get touches only this line, its shard's owner byte
  // and the map it probes.
  const std::uint32_t id;
  const std::uint64_t shard_mask;
  const bool light_readers;  // table_options::asymmetric_fence
  const fence_policy policy = fence_policy_defaults;
  const std::unique_ptr<shard[]> shards;
  const std::unique_ptr<std::uint8_t[]> shard_owner;
  const Hash hasher;
  const Eq equal;
  // Bit i: the copy of owner i's shards that readers use. Bit kFenceShift + i: owner i asks
  // readers to fence their announcements ("Fence modes"); one word, so a get loads it once.
  std::atomic<std::uint64_t> published{0};

  alignas(kFalseSharingRange) std::vector<std::unique_ptr<owner>> owners;
  std::atomic<std::uint64_t> fence_mode_switches{0};
  std::mutex cross_post_mutex;  // orders cross-owner barriers identically in every mailbox

  cast_error_log cast_errors;
  // Callers that use the engine after a reply: flush (cast_errors), and with several owners
  // update_counter and transact (dirty-owner bookkeeping, a second post).
  linger_count lingering;
};

}  // namespace warden::detail
