// Exhaustive model check of warden's read protocol: the Dekker pair R1-R3 / O1-O3 between
// readers and an owner (read_section.hpp), protocols (a) (fenced announcement) and (b)
// (light announcement covered by the owner's membarrier()), the fence modes of
// publication.hpp, and the registration of a reader's slot in the list the owner scans.
//
// The threads' programs call include/warden/detail/read_protocol.hpp's steps, the functions
// warden itself runs, instantiated on model_atomics.hpp's atomics: every shared access of
// a step acts on a model memory with a store buffer per reader, and the checker interleaves
// the threads (and the buffers' commits) at every step. What the model writes itself is the
// order of the steps, as warden's callers compose them: slot_list::find_or_create (register:
// initialize, lock, link_slot, publish_slot, unlock), table_engine's open_scoped/open_pin
// (R1, R2, fence_announcement and R2 again when needs_fence), R3, and ensure_idle_ready (the
// fence mode of before_scan, O2, load_slot_list, O3 over the listed slots, the permanent
// switch after a failed membarrier() with its extra barrier, on_idle, writes to the copy
// readers left at O1 -- the owner_view of the publication word).
//
// Every interleaving of one owner (2-4 write cycles) and 1-2 readers (1-3 sections each:
// sequential, nested, or overlapping like pins) is explored by DFS with a visited set, under
// three memory models (model_atomics.hpp):
//   TSO:    one FIFO store buffer per reader (x86).
//   PSO:    buffered stores commit in any order, except to the same word (coherence), and a
//           release store only after every earlier store of its thread.
//   PSO+LL: PSO, and the owner's loads that follow a relaxed load of its own (the plain
//           read of a slot's `next`) may return the values of its last acquire point
//           (load-load reordering); the small shapes only, light or fenced readers.
// In all, a seq_cst store or RMW drains its thread's buffer first, and membarrier() (and
// the fallback barrier when it fails) drains every reader's buffer: a fence injected into
// each running reader. Hardware orders a release store before a later seq_cst access of
// its thread; the C++ model does not (only seq_cst accesses are in S), which is why
// publish_slot stores seq_cst (slot_list::for_each's comment): for the mutant that
// publishes with a release store, the PSO models keep that store out of S.
//
// Safety (cases 1 and 2 of read_section.hpp): no reader is between its final R2 (having
// chosen copy c) and its R3 while the owner is between writing c and the O1 that publishes
// c, and the owner never reads a slot's memory before it was initialized. A state with no
// move left before every thread finished is reported as a deadlock. Mutants (broken
// protocols: other step orders, skipped steps, weaker memory orders) must each produce a
// violation in some configuration. Exit status: 0 when the protocol is safe and every
// mutant is caught, else 1. "-v" prints the mutants' counterexamples too.
//
// Not modelled: the reads of a copy and the owner's writes to it are intervals, not memory
// accesses, so the release/acquire pair of R3 and reader_left that hands the copy back is
// assumed (a relaxed reader_left would pass); one owner (owner 0's bits), a fixed word per
// section (not enter_pin's search for a free word, nor a pin closed on another thread);
// the list's mutex as an acquire exchange and a release store; no thread_record caches, no
// slot skipped while its cache is destroyed.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "model_checker.hpp"

namespace {

using model::Config;
using model::Failure;
using model::Memory;
using model::Mutant;

struct Shape {
  const char* name;
  std::vector<const char*> scripts;
  int cycles;
  bool large;  // checked for the protocol itself only
};

// PSO differs from TSO for a reader with two words (nested sections, pins) and for the
// registration's stores (initialized words, `next`, the head), which the small shapes cover:
// the large one-word shapes run under TSO alone.
// PSO+LL (the owner's loads reordered) runs the small shapes, light or fenced, for the
// protocol itself and the mutants.
std::vector<Config> Configs(Failure failure, bool large, bool loads) {
  const std::vector<Shape> shapes = {
      {"1 reader, 2 sections", {"AaAa"}, 3, false},
      {"1 reader, nested sections", {"ABba"}, 3, false},
      {"1 reader, overlapping pins", {"ABab"}, 3, false},
      {"2 readers, 1 section each", {"Aa", "Aa"}, 3, false},
      {"1 reader, 3 sections", {"AaAaAa"}, 4, true},
      {"2 readers, 2+1 sections", {"AaAa", "Aa"}, 3, true},
      {"2 readers, 2 sections each", {"AaAa", "AaAa"}, 3, true},
      {"2 readers, nested + pins", {"ABba", "ABab"}, 2, true},
  };
  enum Mode { kLight, kFenced, kMixed };
  std::vector<Config> out;
  for (Memory memory : {Memory::kTso, Memory::kPso, Memory::kPsoLoads}) {
    for (const Shape& shape : shapes) {
      if (shape.large && !large) continue;
      bool two_words = false;
      for (const char* script : shape.scripts) two_words = two_words || std::strchr(script, 'B');
      if (memory == Memory::kPso && shape.large && !two_words) continue;
      if (memory == Memory::kPsoLoads && (shape.large || !loads)) continue;
      for (Mode mode : {kLight, kFenced, kMixed}) {
        if (mode == kMixed && shape.scripts.size() < 2) continue;
        if (failure != Failure::kNever && mode == kFenced) continue;
        if (memory == Memory::kPsoLoads && mode == kMixed) continue;
        Config c{shape.name, memory, shape.cycles, mode != kFenced, failure, {}};
        for (std::size_t i = 0; i < shape.scripts.size(); ++i) {
          c.readers.push_back({shape.scripts[i], mode == kLight || (mode == kMixed && i == 0)});
        }
        out.push_back(c);
      }
    }
  }
  return out;
}

std::string Name(const Config& c) {
  std::string light = c.readers[0].light ? "light" : "fenced";
  if (c.readers.size() > 1 && c.readers[1].light != c.readers[0].light) light = "mixed";
  static const char* const kMemory[] = {"TSO", "PSO", "PSO+LL"};
  return std::string(kMemory[static_cast<int>(c.memory)]) + ", " + c.name + ", " + light + ", " +
         std::to_string(c.cycles) + " cycles";
}

// Runs `mutant` over every configuration (those of `failure` when the mutant sets none);
// returns whether some configuration found a violation or deadlock.
bool Check(const Mutant& mutant, Failure failure, bool large, bool loads, bool expect_violation,
           bool verbose, std::size_t& total) {
  bool first_trace = true, found = false;
  std::size_t states = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const Config& c :
       Configs(mutant.failure != Failure::kNever ? mutant.failure : failure, large, loads)) {
    model::Checker checker(c, mutant);
    const model::Result r = checker.Run();
    states += r.states;
    const bool bad = r.violation || r.deadlock;
    if (!expect_violation) {
      std::printf("  %-62s %7zu states%s\n", Name(c).c_str(), r.states,
                  bad ? (r.violation ? "  VIOLATION" : "  DEADLOCK") : "");
      if (bad && (first_trace || verbose)) checker.PrintTrace(r);
      first_trace = first_trace && !bad;
    } else if (bad) {
      std::printf("  caught: %-56s %s (%zu states)\n", mutant.name, Name(c).c_str(), states);
      if (verbose) checker.PrintTrace(r);
      total += states;
      return true;
    }
    found = found || bad;
  }
  total += states;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (expect_violation) std::printf("  NOT CAUGHT: %s (%zu states)\n", mutant.name, states);
  if (!expect_violation) std::printf("  %zu states, %.0f ms\n", states, ms);
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  const bool verbose = argc > 1 && std::string_view(argv[1]) == "-v";
  const auto start = std::chrono::steady_clock::now();
  std::size_t total = 0;
  bool ok = true;
  const auto safe = [&](const char* title, const Mutant& m, Failure failure, bool large) {
    std::printf("%s\n", title);
    ok = !Check(m, failure, large, large, false, verbose, total) && ok;
  };

  safe("The protocol (registration, cases 1 and 2, protocols (a) and (b), fence modes):",
       Mutant{.name = "protocol"}, Failure::kNever, true);
  safe("The protocol when membarrier() fails (heavy_fence, make_fence_permanent):",
       Mutant{.name = "failure"}, Failure::kBarrierAfterSwitch, false);
  // Not mutants: readers that saw the bit set fenced themselves, those that see it clear
  // load pub after this cycle's O1, and every later light scan issues membarrier().
  safe("Safe variant: before_scan clears the fence bit, that scan skips membarrier:",
       Mutant{.name = "clear", .clear_without_barrier = true}, Failure::kNever, false);
  const std::vector<Mutant> mutants = {
      {.name = "light R1, owner never issues O2", .owner_skips_barrier = true},
      {.name = "R2 sees the fence bit, no re-store", .ignore_fence_bit = true},
      {.name = "re-store, but read the copy of the first R2", .restore_without_reload = true},
      {.name = "set the fence bit, no membarrier in that scan", .set_without_barrier = true},
      {.name = "after a clear, the next light scan skips O2", .clear_then_skip = true},
      {.name = "owner scans (O2, O3) before the flip (O1)", .scan_before_flip = true},
      {.name = "R3 before the section's reads end", .release_before_read = true},
      {.name = "fenced R1 stored relaxed", .fenced_r1_relaxed = true},
      {.name = "membarrier fails, fence bit set after the scan's barrier",
       .failure = Failure::kAsCoded},
      {.name = "slot registered after the first section's R2", .register_after_open = true},
      {.name = "head published with a relaxed store", .head_store = model::HeadStore::kRelaxed},
      {.name = "head published with a release store (outside S)",
       .head_store = model::HeadStore::kRelease},
      {.name = "head published before the slot's next is linked", .publish_before_link = true},
      {.name = "slot's words initialized after it is published", .init_after_publish = true},
      {.name = "owner loads the list head before its flip (O1)", .head_before_flip = true},
      {.name = "owner loads the list head relaxed", .head_load_relaxed = true},
  };
  std::printf("Mutants (each must be caught):\n");
  for (const Mutant& m : mutants) {
    ok = Check(m, Failure::kNever, false, true, true, verbose, total) && ok;
  }

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu states in %.2f s: %s\n", total, secs, ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
