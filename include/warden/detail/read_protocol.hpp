// The steps of the read protocol (read_section.hpp), one shared-memory access each, as
// templates on the atomic types, so that warden runs them on std::atomic and the model
// checker (tests/model) runs the very same functions on atomics of its own that act on a
// model memory with store buffers and interleave the threads at every step.
//
// Invariants (the numbering of read_section.hpp's file comment):
//  - Registration. A reader's slot is initialized (words 0, `next` linked to the old head
//    under the list's mutex) and then published into the list head with a seq_cst store
//    (publish_slot), before the reader's first R1. The owner's scan loads the head with a
//    seq_cst load (load_slot_list) after its O1, and scans only slots reachable from it. In
//    the single order S, a reader that missed O1 in R2 stored the head before O1, so the
//    owner's load after O1 finds its slot (case 2 otherwise).
//  - R1: announce_light (relaxed store + compiler barrier, protocol (b)) or announce_fenced
//    (seq_cst store, protocol (a)).
//  - R2: load_publication (seq_cst). needs_fence on the loaded value: the owner asked its
//    readers to fence, so the reader runs fence_announcement (a seq_cst RMW re-storing R1,
//    which turns (b) into (a)) and R2 again; it reads only the copy named by the last R2.
//  - R3: exit_section (release store of 0), after the section's last read.
//  - O1: flip (seq_cst RMW).
//  - Fence modes (publication.hpp): readers_always_fence decides whether the owner may
//    scan with membarrier at all; choose_scan_fence picks, per scan, between "readers fence, no
//    membarrier", "membarrier", "set the fence bit (fetch_or), then membarrier" and "clear
//    it (fetch_and), then membarrier". needs_membarrier tells which of them issue O2.
//    idle_keeps_fence: else the idle hook may clear the bit (no membarrier needed: every later
//    light scan issues one). If membarrier fails, make_fence_permanent sets the bit for
//    good (permanent_switch_sets_bit) and the caller issues one more process-wide barrier,
//    covering readers that announced lightly between the failed scan and the fetch_or.
//  - O2: scan_barrier: A::heavy_fence() when the scan needs it (a fence injected into every
//    running reader), else nothing.
//  - O3: scan_load of each word of each listed slot (seq_cst), next_slot to walk the list,
//    then reader_left (acquire) until each nonzero word seen has changed.
// Cases 1 and 2 of read_section.hpp then hold: a reader between R2 and R3 never reads the
// copy its owner writes between O3 and the next O1. The steps' order is their callers'
// (slot_list::find_or_create, table_engine's open_scoped, open_pin and ensure_idle_ready);
// tests/model composes them the same way and checks every interleaving under TSO, PSO and
// PSO with the owner's loads reordered, with mutants that must fail.
//
// An atomics policy A provides
//   static void compiler_barrier() noexcept;  // orders this thread's accesses for the compiler
//   static bool heavy_fence() noexcept;       // O2; false if membarrier() failed (a fallback
//                                             // barrier of the same strength ran instead)
// Words are any type with std::atomic's interface (deduced). Standard library only.
#pragma once

#include <atomic>
#include <cstdint>

// Every step is forced inline. With std::atomic, g++ 12 and clang -O2 compile
// enter_scoped, exit_scoped, exit_pin, fence_announcement, publication::load and flip,
// wait_for_readers and slot_list's registration to the same instructions as the accesses
// written out by hand; clang's enter_pin computes the word's address with one more lea,
// and the owner's before_scan and on_idle differ in register allocation and block order.
#if defined(__GNUC__) || defined(__clang__)
#define WARDEN_PROTOCOL_STEP inline __attribute__((always_inline))
#else
#define WARDEN_PROTOCOL_STEP inline
#endif

namespace warden::detail::protocol {

// ---- the publication word ----------------------------------------------------------------
//   bit  63 ........................ 32 31 ......................... 0
//        | fence bit of owner 31 .. 0   | copy bit of owner 31 .. 0    |
inline constexpr unsigned kFenceShift = 32;
inline constexpr std::uint64_t kCopyBits = (std::uint64_t{1} << kFenceShift) - 1;
inline constexpr std::uint64_t kFenceBits = ~kCopyBits;

constexpr std::uint64_t fence_bit(unsigned owner) noexcept {
  return std::uint64_t{1} << (kFenceShift + owner);
}

// ---- registration ------------------------------------------------------------------------

// The head a new slot links to (its `next`), read under the list's mutex.
template <class Head>
WARDEN_PROTOCOL_STEP auto link_slot(const Head& head) noexcept {
  // relaxed: only threads holding the mutex store the head, and the mutex orders them.
  return head.load(std::memory_order_relaxed);
}

// Publishes an initialized slot.
template <class Head, class Slot>
WARDEN_PROTOCOL_STEP void publish_slot(Head& head, Slot slot) noexcept {
  // seq_cst: release makes the slot's initialization visible to an owner that loads it, and
  // the store's place in S before this reader's R1 and R2 is what the owner's seq_cst
  // load_slot_list (after its O1) relies on to find it (case 2 otherwise); release alone
  // does not put it in S.
  head.store(slot, std::memory_order_seq_cst);
}

// The owner's view of the list, after O1 (and O2).
template <class Head>
WARDEN_PROTOCOL_STEP auto load_slot_list(const Head& head) noexcept {
  // seq_cst: the owner's half of publish_slot's argument (after O1 in S); also an acquire,
  // so the slots' initialized words and `next` are visible.
  return head.load(std::memory_order_seq_cst);
}

// The slot after `slot` in the list: `next` is written before the slot is published and
// never again, so a plain read (ordered by load_slot_list's acquire) suffices.
template <class Slot>
WARDEN_PROTOCOL_STEP Slot* next_slot(const Slot& slot) noexcept {
  return slot.next;
}

// ---- reader: R1, R2, fence_announcement, R3 ----------------------------------------------

// R1 of protocol (b).
template <class A, class Word>
WARDEN_PROTOCOL_STEP void announce_light(Word& w, typename Word::value_type v) noexcept {
  // relaxed + compiler barrier: the owner's O2 (membarrier) supplies the StoreLoad fence
  // between this store and R2; the compiler barrier keeps the compiler from sinking the
  // store below R2.
  w.store(v, std::memory_order_relaxed);
  A::compiler_barrier();
}

// R1 of protocol (a).
template <class Word>
WARDEN_PROTOCOL_STEP void announce_fenced(Word& w, typename Word::value_type v) noexcept {
  // seq_cst: R1 precedes R2 in S, against the owner's seq_cst O1 and O3.
  w.store(v, std::memory_order_seq_cst);
}

// R2.
template <class Word>
WARDEN_PROTOCOL_STEP auto load_publication(const Word& pub) noexcept {
  // seq_cst: the reader's half of the Dekker pair; acquire also makes the published copy's
  // contents visible. A plain load on x86.
  return pub.load(std::memory_order_seq_cst);
}

// Whether a reader that loaded `pub` in R2 must fence its announcement (some owner scans
// without membarrier) and load the word again.
constexpr bool needs_fence(std::uint64_t pub) noexcept { return (pub & kFenceBits) != 0; }

// Protocol (a) after the fact: re-stores the reader's own word as a seq_cst RMW. (An RMW
// rather than atomic_thread_fence, which ThreadSanitizer does not model.)
template <class Word>
WARDEN_PROTOCOL_STEP void fence_announcement(Word& w) noexcept {
  // relaxed load: the thread reads its own store (no other thread stores a nonzero value
  // here). seq_cst exchange: R1 now precedes the next R2 in S, as in protocol (a).
  w.exchange(w.load(std::memory_order_relaxed), std::memory_order_seq_cst);
}

// R3.
template <class Word>
WARDEN_PROTOCOL_STEP void exit_section(Word& w) noexcept {
  // release: the section's reads happen-before the owner's acquire load that sees the 0.
  w.store(0, std::memory_order_release);
}

// ---- owner: O1, fence modes, O2, O3 ------------------------------------------------------

// O1: publishes the idle copies of the owners in `mask` at once.
template <class Word>
WARDEN_PROTOCOL_STEP void flip(Word& pub, std::uint64_t mask) noexcept {
  // seq_cst: the owner's half of the Dekker pair; also releases the batch's writes to
  // readers' (acquiring) R2.
  pub.fetch_xor(mask, std::memory_order_seq_cst);
}

// Asks owner `i`'s readers to fence (protocol (a)).
template <class Word>
WARDEN_PROTOCOL_STEP void set_fence(Word& pub, unsigned i) noexcept {
  // seq_cst: ordered before the membarrier() of the scan that follows: a reader whose R2
  // missed the bit announced before that membarrier; one whose R2 sees it fences itself.
  pub.fetch_or(fence_bit(i), std::memory_order_seq_cst);
}

// Lets owner `i`'s readers announce lightly again.
template <class Word>
WARDEN_PROTOCOL_STEP void clear_fence(Word& pub, unsigned i) noexcept {
  // seq_cst: readers that see the bit clear announce lightly; every later scan in light
  // mode issues membarrier() for them.
  pub.fetch_and(~fence_bit(i), std::memory_order_seq_cst);
}

// Whether an owner's readers must always fence (protocol (a)), so that it scans without
// membarrier(): its table does not allow light readers, the kernel lacks membarrier(), or
// membarrier() failed once (`permanent`).
constexpr bool readers_always_fence(bool light_allowed, bool permanent) noexcept {
  return !light_allowed || permanent;
}

enum class scan_fence : std::uint8_t {
  readers_fence,      // the fence bit is set and stays: no membarrier
  membarrier,         // light readers: O2 is membarrier()
  set_then_barrier,   // set_fence, then membarrier() (readers that missed the bit)
  clear_then_barrier  // clear_fence, then membarrier() (readers that see it clear)
};

// The fence mode of a light-capable owner's next scan. `switch_due`: scans came quickly
// enough to set the bit (when clear), or the last one was long enough ago to clear it.
constexpr scan_fence choose_scan_fence(bool readers_fence, bool switch_due) noexcept {
  if (!readers_fence) return switch_due ? scan_fence::set_then_barrier : scan_fence::membarrier;
  return switch_due ? scan_fence::clear_then_barrier : scan_fence::readers_fence;
}

constexpr bool needs_membarrier(scan_fence f) noexcept { return f != scan_fence::readers_fence; }

// Whether the idle hook must leave the fence bit alone: it is clear, or set for good.
constexpr bool idle_keeps_fence(bool readers_fence, bool permanent) noexcept {
  return !readers_fence || permanent;
}

// After a scan whose membarrier() failed: whether the fence bit must still be set.
constexpr bool permanent_switch_sets_bit(bool readers_fence) noexcept { return !readers_fence; }

// O2. Returns false if membarrier() failed (see A::heavy_fence).
template <class A>
WARDEN_PROTOCOL_STEP bool scan_barrier(bool light) noexcept {
  return light ? A::heavy_fence() : true;
}

// O3: one announcement word.
template <class Word>
WARDEN_PROTOCOL_STEP auto scan_load(const Word& w) noexcept {
  // seq_cst: the owner's half of the Dekker pair (case 1 when it sees R1).
  return w.load(std::memory_order_seq_cst);
}

// O3: whether the section announced as `seen` has ended (or the word moved on).
template <class Word>
WARDEN_PROTOCOL_STEP bool reader_left(const Word& w,
                                      const typename Word::value_type& seen) noexcept {
  // acquire: pairs with R3's release store.
  return w.load(std::memory_order_acquire) != seen;
}

}  // namespace warden::detail::protocol
