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
// Mutated policies (mutants): `context.demote_cell` names a cell whose seq_cst stores act
// as relaxed ones (kDemoteRelease: as release ones).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

namespace model {

constexpr int kMaxReaders = 2;
constexpr int kMaxBuffered = 8;
constexpr int kOwner = 8;  // thread id of the owner; readers are 0..kMaxReaders-1
constexpr std::uint8_t kGarbage = 0x7E;

// Cells.
constexpr int kPub = 0, kHead = 1, kLock = 2, kNext = 3 /* + reader */;
constexpr int kWord = kNext + kMaxReaders;  // + global word index
constexpr int kMaxWords = 4;                // announcement words of all readers together
constexpr int kCells = kWord + kMaxWords;

enum class Memory { kTso, kPso };

struct Buffered {
  std::uint8_t cell, value, release;
};

// The shared part of a model state. Every field is one byte.
struct Machine {
  std::uint8_t mem[kCells] = {};
  std::uint8_t buffered[kMaxReaders] = {};
  Buffered buffer[kMaxReaders][kMaxBuffered] = {};
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
inline void drain_all(Machine& m) {
  for (int r = 0; r < kMaxReaders; ++r) drain(m, r);
}
// Whether reader r's buffered store i may become visible now.
inline bool may_commit(const Machine& m, Memory memory, int r, int i) {
  const Buffered& b = m.buffer[r][i];
  if (i == 0) return true;
  if (memory == Memory::kTso || b.release) return false;
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

  T load(std::memory_order = std::memory_order_seq_cst) const {
    Machine& m = *context.m;
    if (context.thread < kMaxReaders) {
      const int r = context.thread;
      for (int i = m.buffered[r] - 1; i >= 0; --i) {
        if (m.buffer[r][i].cell == cell_) return unpack<T>(m.buffer[r][i].value);
      }
    }
    return unpack<T>(m.mem[cell_]);
  }
  void store(T v, std::memory_order order = std::memory_order_seq_cst) {
    if (order == std::memory_order_seq_cst && cell_ == context.demote_cell) {
      order = context.demotion == Demotion::kRelaxed ? std::memory_order_relaxed
                                                     : std::memory_order_release;
    }
    Machine& m = *context.m;
    if (order == std::memory_order_seq_cst) {
      write(pack(v));
      return;
    }
    const int r = context.thread;
    if (r >= kMaxReaders || m.buffered[r] == kMaxBuffered) std::abort();
    m.buffer[r][m.buffered[r]++] = {cell_, pack(v), order == std::memory_order_release};
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
    if (context.thread < kMaxReaders) drain(m, context.thread);
    m.mem[cell_] = b;
  }
  template <class F>
  T rmw(F f) {
    Machine& m = *context.m;
    if (context.thread < kMaxReaders) drain(m, context.thread);
    const T old = unpack<T>(m.mem[cell_]);
    m.mem[cell_] = pack(f(old));
    return old;
  }

  std::uint8_t cell_;
};

}  // namespace model
