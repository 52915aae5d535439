// Model atomics for read_protocol_model.cpp: types with std::atomic's interface whose
// operations act on a model memory with one store buffer per reader, so that
// include/warden/detail/read_protocol.hpp's steps run unchanged on the model.
//
// Memory: kCells one-byte cells. Values are packed into a byte: the publication word keeps
// owner 0's copy bit (bit 0) and fence bit (bit 32, packed as bit 7); pointers to model
// objects are their index in `objects` plus one (0: nullptr); kGarbage is memory no store
// initialized (a slot before its constructor ran). A load that returns kGarbage sets
// `context.garbage`: the checker reports it as a violation.
//
// Stores (per memory model, `context.memory`):
//   relaxed, release: appended to the storing reader's buffer (a release entry flagged);
//   seq_cst store, any RMW: the thread's buffer drains first, then memory is written.
// Loads read the thread's own newest buffered store to the cell (store forwarding), else
// memory. Buffered stores become visible as separate steps (commit): TSO, the oldest first;
// PSO, any of them, except after an older one to the same cell (coherence) and, for a
// release store, only when it is the oldest (every earlier store of its thread is visible).
// drain_all() is membarrier(): a full fence injected into every reader.
// The owner stores only with RMWs, so it needs no buffer (a buffered store by it aborts).
//
// kPsoLoads (PSO, and the owner's loads reordered): once the owner made a relaxed load (a
// plain read of `next`, or a mutant's) since its last acquire point (an acquire or seq_cst
// load, an RMW, a membarrier), each later load may return instead the value its cell had
// at that acquire point, as if performed before the relaxed load (load-load reordering:
// C++ allows it, ignoring the address dependency that keeps hardware from it here), unless
// the owner read that cell since (coherence). An acquire load that did so keeps the old
// acquire point. The checker runs an owner step that could read such a value both ways.
// Values stored between the acquire point and now are not offered (fewer behaviours than
// C++ allows), and readers' loads are not reordered.
//
// Mutated policies (mutants): `context.demote_cell` names a cell whose seq_cst stores act
// as relaxed ones, or (Demotion::kRelease) as release ones that, in the PSO models, are
// lazy: outside the single order S of the C++ model, so the thread's later seq_cst stores
// and RMWs do not drain them (drain_before_seq_cst); membarrier() does, and a lazy entry
// commits like any release store. (x86, Arm and POWER order them anyway; TSO keeps them
// ordinary.) No store of the real code is lazy. `relax_load_cell` names a cell whose
// owner's loads act as relaxed ones (kPsoLoads).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace model {

constexpr int kMaxReaders = 2;
constexpr int kMaxBuffered = 10;  // the longest program's stores, with registration
constexpr int kOwner = 8;         // thread id of the owner; readers are 0..kMaxReaders-1
constexpr std::uint8_t kGarbage = 0x7E;

// Cells.
constexpr int kPub = 0, kHead = 1, kLock = 2, kNext = 3 /* + reader */;
constexpr int kWord = kNext + kMaxReaders;  // + global word index
constexpr int kMaxWords = 4;                // announcement words of all readers together
constexpr int kCells = kWord + kMaxWords;

enum class Memory { kTso, kPso, kPsoLoads };

struct Buffered {
  std::uint8_t cell, value, release;
};

// The shared part of a model state. Every field is one byte.
struct Machine {
  std::uint8_t mem[kCells] = {};
  std::uint8_t buffered[kMaxReaders] = {};
  Buffered buffer[kMaxReaders][kMaxBuffered] = {};
  // kPsoLoads only (else all 0): memory at the owner's last acquire point, whether it made a
  // relaxed load since, and the cells it read since.
  std::uint8_t snap[kCells] = {};
  std::uint8_t relaxed_since = 0;
  std::uint8_t read_since[kCells] = {};
};

constexpr std::uint8_t kNoDemotion = 0xFF;
enum class Demotion : std::uint8_t { kRelaxed, kRelease };

struct Context {
  Machine* m = nullptr;
  int thread = 0;
  Memory memory = Memory::kTso;
  bool heavy_fence_fails = false;  // the checker's choice for the next heavy_fence()
  bool garbage = false;            // a load returned uninitialized memory
  std::uint8_t demote_cell = kNoDemotion;
  Demotion demotion = Demotion::kRelaxed;
  std::uint8_t relax_load_cell = kNoDemotion;  // a cell whose loads act as relaxed ones
  bool read_old = false;        // kPsoLoads: the owner's loads return acquire-point values
  bool could_read_old = false;  // ... and one could have (set by loads, reset by the checker)
  const void* objects[kMaxReaders] = {};  // pointers the cells may hold
};
inline Context context;

inline void commit(Machine& m, int r, int i) {
  m.mem[m.buffer[r][i].cell] = m.buffer[r][i].value;
  for (int j = i; j + 1 < m.buffered[r]; ++j) m.buffer[r][j] = m.buffer[r][j + 1];
  m.buffer[r][--m.buffered[r]] = {};
}
inline void drain(Machine& m, int r) {
  while (m.buffered[r] > 0) commit(m, r, 0);
}
constexpr std::uint8_t kLazy = 2;  // Buffered::release of a release store outside S
// Before reader r's seq_cst store or RMW to `cell`: drains its buffer, except from a lazy
// entry on, unless a store to `cell` is buffered (coherence).
inline void drain_before_seq_cst(Machine& m, int r, int cell) {
  bool same = false;
  for (int i = 0; i < m.buffered[r]; ++i) same = same || m.buffer[r][i].cell == cell;
  while (m.buffered[r] > 0 && (same || m.buffer[r][0].release != kLazy)) commit(m, r, 0);
}
inline void drain_all(Machine& m) {
  for (int r = 0; r < kMaxReaders; ++r) drain(m, r);
}
// kPsoLoads: the owner reaches an acquire point.
inline void owner_acquire_point(Machine& m) {
  if (context.memory != Memory::kPsoLoads) return;
  for (int c = 0; c < kCells; ++c) m.snap[c] = m.mem[c], m.read_since[c] = 0;
  m.relaxed_since = 0;
}
// Whether reader r's buffered store i may become visible now.
inline bool may_commit(const Machine& m, Memory memory, int r, int i) {
  const Buffered& b = m.buffer[r][i];
  if (i == 0) return true;
  if (memory == Memory::kTso || b.release) return false;  // kPsoLoads: as kPso
  for (int j = 0; j < i; ++j) {
    if (m.buffer[r][j].cell == b.cell) return false;
  }
  return true;
}

// The policy read_protocol.hpp's steps take: membarrier() fences every reader.
struct policy {
  static void compiler_barrier() noexcept {}  // a model step is one access anyway
  static bool heavy_fence() noexcept {
    drain_all(*context.m);  // fallback_process_barrier() when membarrier() fails: the same
    owner_acquire_point(*context.m);  // a full fence in the owner too
    return !context.heavy_fence_fails;
  }
};

template <class T>
std::uint8_t pack(T v) {
  if constexpr (std::is_pointer_v<T>) {
    if (v == nullptr) return 0;
    for (int i = 0; i < kMaxReaders; ++i) {
      if (context.objects[i] == v) return static_cast<std::uint8_t>(i + 1);
    }
    std::abort();
  } else {
    const auto u = static_cast<std::uint64_t>(v);
    if ((u & ~(std::uint64_t{0x7F} | std::uint64_t{1} << 32)) != 0) std::abort();
    return static_cast<std::uint8_t>((u & 0x7F) | (u >> 32) << 7);
  }
}
template <class T>
T unpack(std::uint8_t b) {
  if (b == kGarbage) {
    context.garbage = true;
    return T{};
  }
  if constexpr (std::is_pointer_v<T>) {
    return b == 0 ? nullptr : static_cast<T>(const_cast<void*>(context.objects[b - 1]));
  } else {
    return static_cast<T>((std::uint64_t{b} & 0x7F) | (std::uint64_t{b} >> 7) << 32);
  }
}

template <class T>
class atomic {
 public:
  using value_type = T;
  explicit atomic(int cell) : cell_(static_cast<std::uint8_t>(cell)) {}
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;

  T load(std::memory_order order = std::memory_order_seq_cst) const {
    Machine& m = *context.m;
    if (context.thread < kMaxReaders) {
      const int r = context.thread;
      for (int i = m.buffered[r] - 1; i >= 0; --i) {
        if (m.buffer[r][i].cell == cell_) return unpack<T>(m.buffer[r][i].value);
      }
      return unpack<T>(m.mem[cell_]);
    }
    if (context.memory != Memory::kPsoLoads) return unpack<T>(m.mem[cell_]);
    if (cell_ == context.relax_load_cell) order = std::memory_order_relaxed;
    const bool could = m.relaxed_since && !m.read_since[cell_] && m.snap[cell_] != m.mem[cell_];
    context.could_read_old = context.could_read_old || could;
    const bool old = could && context.read_old;
    const std::uint8_t b = old ? m.snap[cell_] : m.mem[cell_];
    if (order == std::memory_order_relaxed) {
      m.relaxed_since = 1;
      m.read_since[cell_] = 1;
    } else if (old) {
      m.read_since[cell_] = 1;  // an acquire that kept the old acquire point
    } else {
      owner_acquire_point(m);
    }
    return unpack<T>(b);
  }
  void store(T v, std::memory_order order = std::memory_order_seq_cst) {
    const bool lazy = order == std::memory_order_seq_cst && cell_ == context.demote_cell;
    if (lazy) {
      order = context.demotion == Demotion::kRelaxed ? std::memory_order_relaxed
                                                     : std::memory_order_release;
    }
    Machine& m = *context.m;
    if (order == std::memory_order_seq_cst) {
      write(pack(v));
      return;
    }
    const int r = context.thread;
    if (r >= kMaxReaders || m.buffered[r] == kMaxBuffered) {
      std::fputs("model: a buffered store by the owner, or a full buffer (kMaxBuffered)\n", stderr);
      std::abort();
    }
    std::uint8_t release = order == std::memory_order_release;
    if (release && lazy && context.memory != Memory::kTso) release = kLazy;
    m.buffer[r][m.buffered[r]++] = {cell_, pack(v), release};
  }
  T exchange(T v, std::memory_order = std::memory_order_seq_cst) {
    return rmw([v](T) { return v; });
  }
  T fetch_or(T v, std::memory_order = std::memory_order_seq_cst) {
    return rmw([v](T old) { return static_cast<T>(old | v); });
  }
  T fetch_and(T v, std::memory_order = std::memory_order_seq_cst) {
    return rmw([v](T old) { return static_cast<T>(old & v); });
  }
  T fetch_xor(T v, std::memory_order = std::memory_order_seq_cst) {
    return rmw([v](T old) { return static_cast<T>(old ^ v); });
  }

  // Plain (non-atomic) accesses, as to cache_slot::next: relaxed in the model.
  operator T() const { return load(std::memory_order_relaxed); }
  atomic& operator=(T v) {
    store(v, std::memory_order_relaxed);
    return *this;
  }

  int cell() const { return cell_; }

 private:
  // Drains the thread's buffer, then writes memory.
  void write(std::uint8_t b) {
    Machine& m = *context.m;
    if (context.thread < kMaxReaders) drain_before_seq_cst(m, context.thread, cell_);
    m.mem[cell_] = b;
  }
  template <class F>
  T rmw(F f) {
    Machine& m = *context.m;
    if (context.thread < kMaxReaders) drain_before_seq_cst(m, context.thread, cell_);
    const T old = unpack<T>(m.mem[cell_]);
    m.mem[cell_] = pack(f(old));
    if (context.thread == kOwner) owner_acquire_point(m);
    return old;
  }

  std::uint8_t cell_;
};

}  // namespace model
