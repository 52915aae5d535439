// Exhaustive model check of the read protocol of include/warden/detail/read_section.hpp: the
// Dekker pair R1-R3 / O1-O3 between readers and an owner, protocols (a) (fenced announcement)
// and (b) (light announcement covered by the owner's membarrier()), and the fence modes of
// publication.hpp (before_scan, on_idle, make_fence_permanent). It models the protocol; it
// does not run warden's code.
//
// Every interleaving of one owner (2-4 write cycles) and 1-2 readers (1-3 sections each:
// sequential, nested, or overlapping like pins) is explored by DFS with a visited set, under
// two store-buffer memory models:
//   TSO: one FIFO store buffer per thread (x86).
//   PSO: buffered stores commit in any order, except to the same word (coherence), and a
//        release store only after every earlier store of its thread.
// In both, a seq_cst store or RMW drains its thread's buffer and then writes memory, and
// membarrier() drains every reader's buffer (every running thread executes a full fence).
// The owner stores only with seq_cst RMWs (flip, fetch_or, fetch_and): it needs no buffer.
// Readers load only the publication word, which only the owner stores.
//
// Safety (cases 1 and 2 of read_section.hpp): no reader is between its final R2 (having
// chosen copy c) and its R3 while the owner is between writing c and the O1 that publishes
// c. A state with no move left before every thread finished is reported as a deadlock.
// Mutants (broken protocols) must each produce a violation in some configuration.
// Exit status: 0 when the protocol is safe and every mutant is caught, else 1. "-v" prints
// the mutants' counterexamples too.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

constexpr int kMaxReaders = 2;
constexpr int kMaxWords = 4;     // announcement words of all readers together
constexpr int kMaxBuffered = 6;  // stores one reader may have in flight
constexpr int kOwner = 8;        // Step::actor of the owner; readers are 0..kMaxReaders-1
constexpr int kCommit = 16;      // Step::actor of reader r's buffer: kCommit + r

enum class Memory { kTso, kPso };

// What the owner does when membarrier() fails (read_section.hpp heavy_fence and
// table_engine.hpp ensure_idle_ready): the failed call runs fallback_process_barrier(), then
// after the scan make_fence_permanent() sets the fence bit for good.
enum class Failure {
  kNever,               // membarrier() always succeeds
  kAsCoded,             // fallback barrier, scan, then set the fence bit (the code today)
  kBarrierAfterSwitch,  // ... and one more fallback barrier after setting the bit
};
// The failure path the code takes: a second process-wide barrier after setting the fence
// bit for good. kAsCoded (the code before this model found it) has a violation: a light
// reader whose R1 and R2 fall between the failed scan's fallback barrier and
// make_fence_permanent's fetch_or sees no fence bit, and no later scan issues a barrier, so
// its R1 may never reach the owner's O3. It is kept as a mutant that must be caught.
constexpr Failure kCodeFailurePath = Failure::kBarrierAfterSwitch;

struct Mutant {
  const char* name = nullptr;
  bool owner_skips_barrier = false;     // light readers, but the owner never issues O2
  bool ignore_fence_bit = false;        // R2 sees the fence bit, no re-store (protocol (a))
  bool restore_without_reload = false;  // re-stores, but reads the copy of the first R2
  bool set_without_barrier = false;     // sets the fence bit, that scan skips membarrier
  bool clear_without_barrier = false;   // clears the fence bit, that scan skips membarrier
  bool clear_then_skip = false;         // after a clear, the next light scan skips membarrier
  bool scan_before_flip = false;        // O2/O3 before O1
  bool release_before_read = false;     // R3 before the section's reads end
  Failure failure = Failure::kNever;    // overrides the configuration's
};

struct ReaderSpec {
  const char* script;  // 'A' opens word 0, 'a' closes it; 'B'/'b' word 1
  bool light;          // protocol (b): relaxed R1; else (a): seq_cst R1
};

struct Config {
  const char* name;
  Memory memory;
  int cycles;
  bool owner_light;  // before_scan's light_allowed: the owner uses membarrier and fence modes
  Failure failure;
  std::vector<ReaderSpec> readers;
};

enum class ROp : std::uint8_t { kAnnounce, kLoad, kRestore, kReload, kClose, kEndRead };
enum class OOp : std::uint8_t { kFlip, kIdle, kMode, kBarrier, kScan, kWait, kAfterScan, kWrite };

struct RInstr {
  ROp op;
  std::uint8_t word;   // global word index
  std::uint8_t value;  // the section's announcement (kAnnounce, kRestore)
  bool fenced;         // kAnnounce: seq_cst store
};
struct OInstr {
  OOp op;
  std::uint8_t word;  // kScan, kWait
};

struct Buffered {
  std::uint8_t word, value, release;
};

// Every field is one byte, so the object's bytes are its hash and equality.
struct State {
  std::uint8_t pub_copy = 0, pub_fence = 0;  // the publication word (one owner)
  std::uint8_t mem[kMaxWords] = {};          // announcement words in memory
  std::uint8_t owner_pc = 0, readers_fence = 0, permanent = 0, failed = 0, need_barrier = 0;
  std::uint8_t cleared = 0;  // the clear_then_skip mutant's memory
  std::int8_t writing = -1;  // the copy the owner is writing, -1 when none
  std::uint8_t seen[kMaxWords] = {};
  std::uint8_t pc[kMaxReaders] = {};
  std::uint8_t loaded[kMaxWords] = {};                // first R2's copy (a mutant's)
  std::int8_t reading[kMaxWords] = {-1, -1, -1, -1};  // copy read under the word, -1: none
  std::uint8_t buffered[kMaxReaders] = {};
  Buffered buffer[kMaxReaders][kMaxBuffered] = {};
};
static_assert(std::has_unique_object_representations_v<State>);

struct StateHash {
  std::size_t operator()(const State& s) const {
    return std::hash<std::string_view>()(
        std::string_view(reinterpret_cast<const char*>(&s), sizeof(State)));
  }
};
struct StateEq {
  bool operator()(const State& a, const State& b) const {
    return std::memcmp(&a, &b, sizeof(State)) == 0;
  }
};

struct Step {
  int actor;   // reader index, kOwner, or kCommit + reader
  int pc;      // instruction, or buffer entry for a commit
  int choice;  // which branch of a nondeterministic instruction
};

void Push(State& s, int r, int word, int value, bool release) {
  if (s.buffered[r] == kMaxBuffered) std::abort();
  s.buffer[r][s.buffered[r]++] = {static_cast<std::uint8_t>(word), static_cast<std::uint8_t>(value),
                                  release};
}
void Commit(State& s, int r, int i) {
  s.mem[s.buffer[r][i].word] = s.buffer[r][i].value;
  for (int j = i; j + 1 < s.buffered[r]; ++j) s.buffer[r][j] = s.buffer[r][j + 1];
  s.buffer[r][--s.buffered[r]] = {};
}
void Drain(State& s, int r) {
  while (s.buffered[r] > 0) Commit(s, r, 0);
}
// membarrier(PRIVATE_EXPEDITED), or the fallback process barrier: every reader fences.
void DrainAll(State& s) {
  for (int r = 0; r < kMaxReaders; ++r) Drain(s, r);
}

struct Result {
  std::size_t states = 0;
  bool violation = false;
  bool deadlock = false;
  std::vector<Step> trace;
  std::vector<State> trace_states;
};

class Model {
 public:
  Model(const Config& config, const Mutant& mutant) : config_(config), mutant_(mutant) {
    if (mutant.failure != Failure::kNever) config_.failure = mutant.failure;
    int base = 0;
    for (const ReaderSpec& spec : config.readers) {
      std::vector<RInstr> prog;
      int seq = 0, words = 0;
      for (const char* p = spec.script; *p != '\0'; ++p) {
        const bool open = *p >= 'A' && *p <= 'Z';
        const int local = open ? *p - 'A' : *p - 'a';
        const auto w = static_cast<std::uint8_t>(base + local);
        words = std::max(words, local + 1);
        if (open) {
          const auto v = static_cast<std::uint8_t>(++seq);
          prog.push_back({ROp::kAnnounce, w, v, !spec.light});  // R1
          prog.push_back({ROp::kLoad, w, 0, false});            // R2
          prog.push_back({ROp::kRestore, w, v, false});         // fence_announcement
          prog.push_back({ROp::kReload, w, 0, false});          // R2 again
        } else {
          prog.push_back({ROp::kClose, w, 0, false});  // R3
          if (mutant.release_before_read) prog.push_back({ROp::kEndRead, w, 0, false});
        }
      }
      programs_.push_back(prog);
      base += words;
    }
    words_ = base;
    const auto scan = [&] {
      owner_.push_back({OOp::kMode, 0});     // before_scan: choose the fence mode
      owner_.push_back({OOp::kBarrier, 0});  // O2 (wait_for_readers -> heavy_fence)
      for (int w = 0; w < words_; ++w) owner_.push_back({OOp::kScan, static_cast<uint8_t>(w)});
      for (int w = 0; w < words_; ++w) owner_.push_back({OOp::kWait, static_cast<uint8_t>(w)});
      owner_.push_back({OOp::kAfterScan, 0});  // make_fence_permanent if membarrier failed
      owner_.push_back({OOp::kIdle, 0});       // idle() with the idle copy ready, not dirty
    };
    for (int c = 0; c < config.cycles; ++c) {
      // A cycle as ensure_idle_ready runs it: O1 (publish() of the previous cycle's writes),
      // O2, O3, then writes to the idle copy until the next O1. on_idle() may clear the fence
      // bit between cycles.
      if (mutant.scan_before_flip) scan();
      owner_.push_back({OOp::kFlip, 0});
      owner_.push_back({OOp::kIdle, 0});
      if (!mutant.scan_before_flip) scan();
      owner_.push_back({OOp::kWrite, 0});
    }
  }

  Result Run() {
    visited_.clear();
    visited_.reserve(1 << 16);
    result_ = {};
    path_.clear();
    states_.clear();
    Explore(State{});
    result_.states = visited_.size();
    return result_;
  }

  std::string Describe(const Step& step, const State& before) const {
    if (step.actor >= kCommit) {
      const Buffered& b = before.buffer[step.actor - kCommit][step.pc];
      return "reader " + std::to_string(step.actor - kCommit) + ": buffered store w" +
             std::to_string(b.word) + "=" + std::to_string(b.value) + " becomes visible";
    }
    if (step.actor == kOwner) {
      static const char* const kText[] = {
          "O1 flip (seq_cst RMW)",      "-", "before_scan: ",       "", "O3 seq_cst load of w",
          "O3 waits for a change of w", "-", "writes the idle copy"};  // by OOp
      const OInstr& in = owner_[step.pc];
      const bool fenced = before.readers_fence != 0;
      std::string text = std::string("owner: ") + kText[static_cast<int>(in.op)];
      if (in.op == OOp::kScan || in.op == OOp::kWait) return text + std::to_string(in.word);
      if (in.op == OOp::kIdle && step.choice) return "owner: on_idle clears its fence bit";
      if (in.op == OOp::kAfterScan && step.choice) return "owner: make_fence_permanent";
      if (in.op == OOp::kBarrier) {
        const char* const kBarrier[] = {"not needed", "membarrier", "membarrier FAILS, fallback"};
        return text + "O2 " + kBarrier[step.choice];
      }
      if (in.op != OOp::kMode) return text;
      if (!config_.owner_light || before.permanent) return text + "readers always fence";
      if (!step.choice) return text + (fenced ? "stays fenced" : "light");
      return text + (fenced ? "clear_fence (fetch_and)" : "set_fence (fetch_or)");
    }
    static const char* const kText[] = {
        "R1",           "R2 seq_cst load of pub for", "fence_announcement (seq_cst xchg)",
        "R2 again for", "R3 release store of 0 to",   "ends its reads under"};
    const RInstr& in = programs_[step.actor][step.pc];
    std::string text = "reader " + std::to_string(step.actor) + ": " +
                       kText[static_cast<int>(in.op)] + " w" + std::to_string(in.word);
    if (in.op == ROp::kAnnounce) text += in.fenced ? " (seq_cst)" : " (relaxed)";
    return text;
  }

  // Appends only (no `"literal" + std::string`): g++ 12 -O3 warns falsely there (-Wrestrict).
  std::string Show(const State& s) const {
    std::string out = "pub{copy ";
    const auto put = [&out](const char* text, int n) {
      out.append(text).append(std::to_string(n));
    };
    put("", s.pub_copy);
    put(", fence ", s.pub_fence);
    out += "} mem[";
    for (int w = 0; w < words_; ++w) put(w ? "," : "", s.mem[w]);
    out += "]";
    for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
      if (s.buffered[r] == 0) continue;
      put(" buf", r);
      for (int i = 0; i < s.buffered[r]; ++i) {
        put(i ? ",w" : "[w", s.buffer[r][i].word);
        put("=", s.buffer[r][i].value);
      }
      out += "]";
    }
    for (int w = 0; w < words_; ++w) {
      if (s.reading[w] < 0) continue;
      put(" w", w);
      put(":reads", s.reading[w]);
    }
    if (s.writing >= 0) put(" owner:writes", s.writing);
    return out;
  }

 private:
  bool Finished(const State& s) const {
    if (s.owner_pc != owner_.size()) return false;
    for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
      if (s.pc[r] != programs_[r].size() || s.buffered[r] != 0) return false;
    }
    return true;
  }

  // Case 1 (O3 saw R1, waited for R3) and case 2 (R2 saw O1) both leave this false.
  static bool Unsafe(const State& s) {
    for (int w = 0; w < kMaxWords; ++w) {
      if (s.reading[w] >= 0 && s.reading[w] == s.writing) return true;
    }
    return false;
  }

  // Returns true to stop the search (a violation or a deadlock was recorded).
  bool Explore(const State& s) {
    if (!visited_.insert(s).second) return false;
    states_.push_back(s);
    if (pool_.size() < states_.size()) pool_.resize(states_.size());
    auto& next_states = pool_[states_.size() - 1];  // reused per depth: no allocation
    next_states.clear();
    Successors(s, next_states);
    if (Unsafe(s) || (next_states.empty() && !Finished(s))) {
      (Unsafe(s) ? result_.violation : result_.deadlock) = true;
      result_.trace = path_;
      result_.trace_states = states_;
      return true;
    }
    for (const auto& [step, next] : next_states) {
      path_.push_back(step);
      if (Explore(next)) return true;
      path_.pop_back();
    }
    states_.pop_back();
    return false;
  }

  void Successors(const State& s, std::vector<std::pair<Step, State>>& out) const {
    if (s.owner_pc < owner_.size()) OwnerMoves(s, out);
    for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
      if (s.pc[r] < programs_[r].size()) ReaderMove(s, r, out);
      for (int i = 0; i < s.buffered[r]; ++i) {
        bool ok = config_.memory == Memory::kPso || i == 0;
        if (s.buffer[r][i].release && i != 0) ok = false;  // release: after earlier stores
        for (int j = 0; j < i; ++j) ok = ok && s.buffer[r][j].word != s.buffer[r][i].word;
        if (!ok) continue;
        State n = s;
        Commit(n, r, i);
        out.push_back({{kCommit + r, i, 0}, n});
      }
    }
  }

  void OwnerMoves(const State& s, std::vector<std::pair<Step, State>>& out) const {
    const OInstr& in = owner_[s.owner_pc];
    State n = s;
    ++n.owner_pc;
    const auto emit = [&](int choice, const State& next) {
      out.push_back({{kOwner, s.owner_pc, choice}, next});
    };
    switch (in.op) {
      case OOp::kFlip:  // O1: publishes the copy just written; readers move to it.
        n.pub_copy ^= 1;
        n.writing = -1;
        emit(0, n);
        return;
      case OOp::kIdle:  // on_idle(): clears the fence bit quiet_wait after the last scan.
        emit(0, n);
        if (s.readers_fence && !s.permanent) {
          n.pub_fence = n.readers_fence = 0;
          n.cleared = mutant_.clear_then_skip;
          emit(1, n);
        }
        return;
      case OOp::kMode: {  // publication::before_scan
        if (!config_.owner_light || mutant_.owner_skips_barrier || s.permanent) {
          n.need_barrier = 0;  // readers always fence (protocol (a))
          emit(0, n);
          return;
        }
        n.cleared = 0;
        State other = n;
        if (!s.readers_fence) {
          n.need_barrier = !s.cleared;                        // light readers: protocol (b)
          other.pub_fence = other.readers_fence = 1;          // set_fence (seq_cst fetch_or) ...
          other.need_barrier = !mutant_.set_without_barrier;  // ... then membarrier
        } else {
          n.need_barrier = 0;                         // readers fence themselves: no membarrier
          other.pub_fence = other.readers_fence = 0;  // clear_fence, then membarrier
          other.need_barrier = !mutant_.clear_without_barrier;
          other.cleared = mutant_.clear_then_skip;
        }
        emit(0, n);
        emit(1, other);
        return;
      }
      case OOp::kBarrier:  // O2
        if (!s.need_barrier) {
          emit(0, n);
          return;
        }
        DrainAll(n);
        emit(1, n);
        if (config_.failure != Failure::kNever) {
          n.failed = 1;  // heavy_fence: membarrier failed, fallback_process_barrier ran
          emit(2, n);
        }
        return;
      case OOp::kScan:  // O3: seq_cst load from memory (case 1 if R1 is there)
        n.seen[in.word] = s.mem[in.word];
        emit(0, n);
        return;
      case OOp::kWait:  // O3: acquire loads until the word changes
        if (s.seen[in.word] == 0 || s.mem[in.word] != s.seen[in.word]) emit(0, n);
        return;
      case OOp::kAfterScan:  // ensure_idle_ready: make_fence_permanent after a failure
        if (s.failed) {
          n.failed = 0;
          n.permanent = 1;
          n.pub_fence = n.readers_fence = 1;
          if (config_.failure == Failure::kBarrierAfterSwitch) DrainAll(n);
          emit(1, n);
        } else {
          emit(0, n);
        }
        return;
      case OOp::kWrite:  // the copy readers left at O1
        n.writing = static_cast<std::int8_t>(s.pub_copy ^ 1);
        emit(0, n);
        return;
    }
  }

  void ReaderMove(const State& s, int r, std::vector<std::pair<Step, State>>& out) const {
    const RInstr& in = programs_[r][s.pc[r]];
    State n = s;
    ++n.pc[r];
    const int w = in.word;
    switch (in.op) {
      case ROp::kAnnounce:  // R1
        if (in.fenced) {
          Drain(n, r);  // protocol (a): seq_cst store
          n.mem[w] = in.value;
        } else {
          Push(n, r, w, in.value, false);  // protocol (b): relaxed store
        }
        break;
      case ROp::kLoad:  // R2: seq_cst load (case 2 if it comes after O1)
        if (s.pub_fence && !mutant_.ignore_fence_bit) {
          n.loaded[w] = mutant_.restore_without_reload ? s.pub_copy : 0;
        } else {
          n.reading[w] = static_cast<std::int8_t>(s.pub_copy);
          n.pc[r] += 2;  // no fence bit: read now
        }
        break;
      case ROp::kRestore:  // fence_announcement: seq_cst RMW of the own word
        Drain(n, r);
        n.mem[w] = in.value;
        if (mutant_.restore_without_reload) {
          n.reading[w] = static_cast<std::int8_t>(s.loaded[w]);
          n.loaded[w] = 0;
          ++n.pc[r];
        }
        break;
      case ROp::kReload:  // R2 again, now in protocol (a) (open_scoped, open_pin)
        n.reading[w] = static_cast<std::int8_t>(s.pub_copy);
        break;
      case ROp::kClose:  // R3: release store of 0
        if (!mutant_.release_before_read) n.reading[w] = -1;
        Push(n, r, w, 0, true);
        break;
      case ROp::kEndRead:
        n.reading[w] = -1;
        break;
    }
    out.push_back({{r, s.pc[r], 0}, n});
  }

  Config config_;
  const Mutant mutant_;
  std::vector<std::vector<RInstr>> programs_;
  std::vector<OInstr> owner_;
  int words_ = 0;
  std::unordered_set<State, StateHash, StateEq> visited_;
  std::vector<Step> path_;
  std::vector<State> states_;
  std::vector<std::vector<std::pair<Step, State>>> pool_;
  Result result_;
};

struct Shape {
  const char* name;
  std::vector<const char*> scripts;
  int cycles;
  bool large;  // checked for the protocol itself only
};

// PSO differs from TSO only for a reader with two words (nested sections, pins), so
// one-word shapes run under TSO alone.
std::vector<Config> Configs(Failure failure, bool large) {
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
  for (Memory memory : {Memory::kTso, Memory::kPso}) {
    for (const Shape& shape : shapes) {
      if (shape.large && !large) continue;
      bool two_words = false;
      for (const char* script : shape.scripts) two_words = two_words || std::strchr(script, 'B');
      if (memory == Memory::kPso && !two_words) continue;
      for (Mode mode : {kLight, kFenced, kMixed}) {
        if (mode == kMixed && shape.scripts.size() < 2) continue;
        if (failure != Failure::kNever && mode == kFenced) continue;
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
  return std::string(c.memory == Memory::kTso ? "TSO" : "PSO") + ", " + c.name + ", " + light +
         ", " + std::to_string(c.cycles) + " cycles";
}

void PrintTrace(const Model& model, const Result& r) {
  for (std::size_t i = 0; i < r.trace.size(); ++i) {
    const std::string what = model.Describe(r.trace[i], r.trace_states[i]);
    if (what == "owner: -") continue;
    std::printf("    %2zu. %-50s | %s\n", i + 1, what.c_str(),
                model.Show(r.trace_states[i + 1]).c_str());
  }
}

// Runs `mutant` over every configuration (those of `failure` when the mutant sets none);
// returns whether some configuration found a violation or deadlock.
bool Check(const Mutant& mutant, Failure failure, bool large, bool expect_violation, bool verbose,
           std::size_t& total) {
  bool first_trace = true, found = false;
  std::size_t states = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const Config& c :
       Configs(mutant.failure != Failure::kNever ? mutant.failure : failure, large)) {
    Model model(c, mutant);
    const Result r = model.Run();
    states += r.states;
    const bool bad = r.violation || r.deadlock;
    if (!expect_violation) {
      std::printf("  %-62s %7zu states%s\n", Name(c).c_str(), r.states,
                  bad ? (r.violation ? "  VIOLATION" : "  DEADLOCK") : "");
      if (bad && (first_trace || verbose)) PrintTrace(model, r);
      first_trace = first_trace && !bad;
    } else if (bad) {
      std::printf("  caught: %-50s %s (%zu states)\n", mutant.name, Name(c).c_str(), states);
      if (verbose) PrintTrace(model, r);
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

  std::printf("The protocol (cases 1 and 2, protocols (a) and (b), fence modes):\n");
  ok = !Check(Mutant{.name = "protocol"}, Failure::kNever, true, false, verbose, total) && ok;
  std::printf("The protocol when membarrier() fails (heavy_fence, make_fence_permanent):\n");
  ok = !Check(Mutant{.name = "failure"}, kCodeFailurePath, false, false, verbose, total) && ok;
  if (kCodeFailurePath != Failure::kBarrierAfterSwitch) {
    std::printf("The same with one more barrier after make_fence_permanent (proposed fix):\n");
    ok =
        !Check(Mutant{.name = "fix"}, Failure::kBarrierAfterSwitch, false, false, verbose, total) &&
        ok;
  }
  // Not a mutant: readers that saw the bit set fenced themselves, those that see it clear
  // load pub after this cycle's O1, and every later light scan issues membarrier().
  std::printf("Safe variant: before_scan clears the fence bit, that scan skips membarrier:\n");
  ok = !Check(Mutant{.name = "clear", .clear_without_barrier = true}, Failure::kNever, false, false,
              verbose, total) &&
       ok;

  std::vector<Mutant> mutants = {
      {.name = "light R1, owner never issues O2", .owner_skips_barrier = true},
      {.name = "R2 sees the fence bit, no re-store", .ignore_fence_bit = true},
      {.name = "re-store, but read the copy of the first R2", .restore_without_reload = true},
      {.name = "set the fence bit, no membarrier in that scan", .set_without_barrier = true},
      {.name = "after a clear, the next light scan skips O2", .clear_then_skip = true},
      {.name = "owner scans (O2, O3) before the flip (O1)", .scan_before_flip = true},
      {.name = "R3 before the section's reads end", .release_before_read = true},
  };
  if (kCodeFailurePath != Failure::kAsCoded) {
    mutants.push_back({.name = "membarrier fails, fence bit set after the scan's barrier",
                       .failure = Failure::kAsCoded});
  }
  std::printf("Mutants (each must be caught):\n");
  for (const Mutant& m : mutants) ok = Check(m, Failure::kNever, false, true, verbose, total) && ok;

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu states in %.2f s: %s\n", total, secs, ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
