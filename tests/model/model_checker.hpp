// The checker of read_protocol_model.cpp (its file comment): the threads' programs, built
// from read_protocol.hpp's steps on model_atomics.hpp's atomics, and the DFS over their
// interleavings.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "model_atomics.hpp"
#include "warden/detail/read_protocol.hpp"

namespace model {

namespace protocol = warden::detail::protocol;

// What the owner does when membarrier() fails (read_section.hpp heavy_fence and
// table_engine.hpp ensure_idle_ready): the failed call runs fallback_process_barrier(), then
// after the scan make_fence_permanent() sets the fence bit for good.
enum class Failure {
  kNever,               // membarrier() always succeeds
  kAsCoded,             // fallback barrier, scan, then set the fence bit (the code before)
  kBarrierAfterSwitch,  // ... and one more fallback barrier after setting the bit (the code)
};

enum class HeadStore : std::uint8_t { kSeqCst, kRelease, kRelaxed };

struct Mutant {
  const char* name = nullptr;
  bool owner_skips_barrier = false;           // light readers, but the owner never issues O2
  bool ignore_fence_bit = false;              // R2 sees the fence bit, no re-store (protocol (a))
  bool restore_without_reload = false;        // re-stores, but reads the copy of the first R2
  bool set_without_barrier = false;           // sets the fence bit, that scan skips membarrier
  bool clear_without_barrier = false;         // clears the fence bit, that scan skips membarrier
  bool clear_then_skip = false;               // after a clear, the next light scan skips membarrier
  bool scan_before_flip = false;              // O2/O3 before O1
  bool release_before_read = false;           // R3 before the section's reads end
  bool fenced_r1_relaxed = false;             // announce_fenced's seq_cst store acts as relaxed
  Failure failure = Failure::kNever;          // overrides the configuration's
  bool register_after_open = false;           // publish_slot after the first section's R2
  HeadStore head_store = HeadStore::kSeqCst;  // publish_slot's store, as the model runs it
  bool publish_before_link = false;           // publish_slot before link_slot
  bool init_after_publish = false;            // the slot's words zeroed after publish_slot
  bool head_before_flip = false;              // load_slot_list before O1
  bool head_load_relaxed = false;             // load_slot_list's load acts as relaxed
};

struct ReaderSpec {
  const char* script;  // 'A' opens word 0, 'a' closes it; 'B'/'b' word 1
  bool light;          // protocol (b): announce_light; else (a): announce_fenced
};

struct Config {
  const char* name;
  Memory memory;
  int cycles;
  bool owner_light;  // before_scan's light_allowed: the owner uses membarrier and fence modes
  Failure failure;
  std::vector<ReaderSpec> readers;
};

enum class ROp : std::uint8_t {
  kInit,
  kLock,
  kLink,
  kPublish,
  kUnlock,  // registration (slot_list::find_or_create)
  kAnnounce,
  kLoad,
  kRestore,
  kReload,
  kClose,
  kEndRead
};
enum class OOp : std::uint8_t {
  kFlip,
  kIdle,
  kMode,
  kBarrier,
  kHead,
  kScan,
  kWait,
  kAfterScan,
  kWrite
};

struct RInstr {
  ROp op;
  std::uint8_t local;  // the word in the reader's slot
  std::uint8_t word;   // global word index
  std::uint8_t value;  // the section's announcement (kAnnounce)
};
struct OInstr {
  OOp op;
  std::uint8_t word;  // kWait
};

// Every field is one byte, so the object's bytes are its hash and equality.
struct State {
  Machine m;
  std::uint8_t owner_pc = 0, readers_fence = 0, permanent = 0, failed = 0, need_barrier = 0;
  std::uint8_t cleared = 0;  // the clear_then_skip mutant's memory
  std::uint8_t cur = 0;      // O3: the slot being scanned (index + 1), 0 when none
  std::uint8_t widx = 0;     // O3: its next word
  std::uint8_t garbage = 0;  // the owner read uninitialized slot memory
  std::int8_t writing = -1;  // the copy the owner is writing, -1 when none
  std::uint8_t seen[kMaxWords] = {};
  std::uint8_t pc[kMaxReaders] = {};
  std::uint8_t loaded[kMaxWords] = {};                // first R2's copy (a mutant's)
  std::int8_t reading[kMaxWords] = {-1, -1, -1, -1};  // copy read under the word, -1: none
};
static_assert(std::has_unique_object_representations_v<State>);

// A state's bytes as 8-byte chunks (memcpy of a constant size is inlined; memcmp would be
// a call, and an intercepted one under sanitizers).
constexpr std::size_t kChunks = (sizeof(State) + 7) / 8;
inline void Chunks(const State& s, std::uint64_t (&out)[kChunks]) {
  unsigned char bytes[kChunks * 8] = {};
  std::memcpy(bytes, &s, sizeof(State));
  std::memcpy(out, bytes, sizeof bytes);
}

inline std::uint64_t Hash(const State& s) {  // FNV-1a-like over the chunks
  std::uint64_t c[kChunks];
  Chunks(s, c);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const std::uint64_t chunk : c) {
    h = (h ^ chunk) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

inline bool Same(const State& a, const State& b) {
  std::uint64_t x[kChunks], y[kChunks];
  Chunks(a, x);
  Chunks(b, y);
  for (std::size_t i = 0; i < kChunks; ++i) {
    if (x[i] != y[i]) return false;
  }
  return true;
}

// The visited set: states in a vector, an open-addressing table of (the hash's upper half,
// which also places the entry, and the state's index + 1).
class StateSet {
 public:
  void clear() {
    states_.clear();
    table_.assign(1 << 12, 0);
  }
  std::size_t size() const { return states_.size(); }
  // Returns whether `s` was new.
  bool insert(const State& s) {
    if ((states_.size() + 1) * 2 > table_.size()) grow();
    const std::uint64_t h = Hash(s);
    const std::uint64_t tag = h >> 32 << 32;
    const std::size_t mask = table_.size() - 1;
    for (std::size_t i = (h >> 32) & mask;; i = (i + 1) & mask) {
      const std::uint64_t e = table_[i];
      if (e == 0) {
        states_.push_back(s);
        table_[i] = tag | states_.size();
        return true;
      }
      if ((e >> 32 << 32) == tag && Same(states_[(e & 0xFFFFFFFFu) - 1], s)) {
        return false;
      }
    }
  }

 private:
  void grow() {
    std::vector<std::uint64_t> old(table_.size() * 2, 0);
    old.swap(table_);
    const std::size_t mask = table_.size() - 1;
    for (const std::uint64_t e : old) {
      if (e == 0) continue;
      std::size_t i = (e >> 32) & mask;
      while (table_[i] != 0) i = (i + 1) & mask;
      table_[i] = e;
    }
  }
  std::vector<State> states_;
  std::vector<std::uint64_t> table_;
};

constexpr int kCommit = 16;  // Step::actor of reader r's buffer: kCommit + r
constexpr int kOldRead = 8;  // added to Step::choice: the owner's step read old values

struct Step {
  int actor;   // reader index, kOwner, or kCommit + reader
  int pc;      // instruction, or buffer entry for a commit
  int choice;  // which branch of a nondeterministic instruction
};

struct Result {
  std::size_t states = 0;
  bool violation = false;
  bool deadlock = false;
  std::vector<Step> trace;
  std::vector<State> trace_states;
};

// A reader's cache_slot as the protocol sees it: its words and `next`.
struct Slot {
  Slot(int first_word_cell, int words, int next_cell)
      : words{atomic<std::uint64_t>(first_word_cell),
              atomic<std::uint64_t>(std::min(first_word_cell + 1, kCells - 1))},
        next(next_cell),
        count(words) {}
  atomic<std::uint64_t> words[2];
  atomic<Slot*> next;  // plain reads and writes, as cache_slot::next
  int count;
};

class Checker {
 public:
  Checker(const Config& config, const Mutant& mutant);
  Result Run();
  void PrintTrace(const Result& r) const;

 private:
  bool Finished(const State& s) const;
  bool Explore(const State& s);
  void Successors(const State& s, std::vector<std::pair<Step, State>>& out) const;
  void OwnerMoves(const State& s, std::vector<std::pair<Step, State>>& out) const;
  void ReaderMove(const State& s, int r, std::vector<std::pair<Step, State>>& out) const;
  void Enter(State& n, int thread) const;
  std::string Describe(const Step& step, const State& before) const;
  std::string Show(const State& s) const;

  Config config_;
  const Mutant mutant_;
  std::vector<std::vector<RInstr>> programs_;
  std::vector<OInstr> owner_;
  int words_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
  // mutable: the steps take the model atomics by non-const reference; they act on the
  // state the context names, not on these objects.
  mutable atomic<std::uint64_t> pub_{kPub}, lock_{kLock};
  mutable atomic<Slot*> head_{kHead};
  State initial_;
  StateSet visited_;
  std::vector<Step> path_;
  std::vector<State> states_;
  std::vector<std::vector<std::pair<Step, State>>> pool_;
  Result result_;
};

}  // namespace model
