// The checker of read_protocol_model.cpp: each thread's move calls one of read_protocol.hpp's
// steps on the model atomics (model_atomics.hpp), with the context naming the successor
// state and the thread.
#include "model_checker.hpp"

namespace model {

namespace {

int CopyOf(std::uint64_t pub) { return static_cast<int>(pub & protocol::kCopyBits & 1); }

}  // namespace

Checker::Checker(const Config& config, const Mutant& mutant) : config_(config), mutant_(mutant) {
  if (mutant.failure != Failure::kNever) config_.failure = mutant.failure;
  int base = 0;
  for (int r = 0; r < static_cast<int>(config.readers.size()); ++r) {
    const ReaderSpec& spec = config.readers[r];
    std::vector<RInstr> prog;
    int seq = 0, words = 0;
    std::vector<RInstr> reg = {{ROp::kInit, 0, 0, 0},
                               {ROp::kLock, 0, 0, 0},
                               {ROp::kLink, 0, 0, 0},
                               {ROp::kPublish, 0, 0, 0},
                               {ROp::kUnlock, 0, 0, 0}};
    if (mutant.publish_before_link) std::swap(reg[2], reg[3]);
    if (mutant.init_after_publish) std::rotate(reg.begin(), reg.begin() + 1, reg.end());
    if (!mutant.register_after_open) prog = reg;
    for (const char* p = spec.script; *p != '\0'; ++p) {
      const bool open = *p >= 'A' && *p <= 'Z';
      const int local = open ? *p - 'A' : *p - 'a';
      const auto l = static_cast<std::uint8_t>(local);
      const auto w = static_cast<std::uint8_t>(base + local);
      words = std::max(words, local + 1);
      if (open) {
        const auto v = static_cast<std::uint8_t>(++seq);
        prog.push_back({ROp::kAnnounce, l, w, v});  // R1
        prog.push_back({ROp::kLoad, l, w, 0});      // R2
        prog.push_back({ROp::kRestore, l, w, 0});   // fence_announcement
        prog.push_back({ROp::kReload, l, w, 0});    // R2 again
        if (mutant.register_after_open && seq == 1) prog.insert(prog.end(), reg.begin(), reg.end());
      } else {
        prog.push_back({ROp::kClose, l, w, 0});  // R3
        if (mutant.release_before_read) prog.push_back({ROp::kEndRead, l, w, 0});
      }
    }
    programs_.push_back(prog);
    slots_.push_back(std::make_unique<Slot>(kWord + base, words, kNext + r));
    initial_.m.mem[kNext + r] = kGarbage;
    for (int k = 0; k < words; ++k) initial_.m.mem[kWord + base + k] = kGarbage;
    base += words;
  }
  if (base > kMaxWords) std::abort();
  words_ = base;
  const auto scan = [&] {
    owner_.push_back({OOp::kMode, 0});                                // before_scan
    owner_.push_back({OOp::kBarrier, 0});                             // O2
    if (!mutant.head_before_flip) owner_.push_back({OOp::kHead, 0});  // load_slot_list
    owner_.push_back({OOp::kScan, 0});                                // O3 over the list
    for (int w = 0; w < words_; ++w) owner_.push_back({OOp::kWait, static_cast<uint8_t>(w)});
    owner_.push_back({OOp::kAfterScan, 0});  // make_fence_permanent if membarrier failed
    owner_.push_back({OOp::kIdle, 0});       // idle() with the idle copy ready, not dirty
  };
  for (int c = 0; c < config.cycles; ++c) {
    // A cycle as ensure_idle_ready runs it: O1 (publish() of the previous cycle's writes),
    // O2, O3, then writes to the idle copy until the next O1. on_idle() may clear the fence
    // bit between cycles.
    if (mutant.scan_before_flip) scan();
    if (mutant.head_before_flip) owner_.push_back({OOp::kHead, 0});
    owner_.push_back({OOp::kFlip, 0});
    owner_.push_back({OOp::kIdle, 0});
    if (!mutant.scan_before_flip) scan();
    owner_.push_back({OOp::kWrite, 0});
  }
}

Result Checker::Run() {
  visited_.clear();
  result_ = {};
  path_.clear();
  states_.clear();
  Explore(initial_);
  result_.states = visited_.size();
  return result_;
}

bool Checker::Finished(const State& s) const {
  if (s.owner_pc != owner_.size()) return false;
  for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
    if (s.pc[r] != programs_[r].size() || s.m.buffered[r] != 0) return false;
  }
  return true;
}

// Case 1 (O3 saw R1, waited for R3) and case 2 (R2 saw O1) both leave this false.
static bool Unsafe(const State& s) {
  if (s.garbage) return true;
  for (int w = 0; w < kMaxWords; ++w) {
    if (s.reading[w] >= 0 && s.reading[w] == s.writing) return true;
  }
  return false;
}

// Returns true to stop the search (a violation or a deadlock was recorded).
bool Checker::Explore(const State& s) {
  if (!visited_.insert(s)) return false;
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

// Points the model atomics at `n` as thread `thread`.
void Checker::Enter(State& n, int thread) const {
  context.m = &n.m;
  context.thread = thread;
  context.memory = config_.memory;
  context.garbage = false;
  context.heavy_fence_fails = false;
  context.demote_cell = kNoDemotion;
  if (mutant_.head_store != HeadStore::kSeqCst) {
    context.demote_cell = kHead;
    context.demotion =
        mutant_.head_store == HeadStore::kRelaxed ? Demotion::kRelaxed : Demotion::kRelease;
  }
  context.relax_load_cell = mutant_.head_load_relaxed ? kHead : kNoDemotion;
  for (int r = 0; r < static_cast<int>(slots_.size()); ++r) context.objects[r] = slots_[r].get();
}

void Checker::Successors(const State& s, std::vector<std::pair<Step, State>>& out) const {
  if (s.owner_pc < owner_.size()) {
    context.read_old = false;
    context.could_read_old = false;
    OwnerMoves(s, out);
    if (context.could_read_old) {  // kPsoLoads: the same step reading acquire-point values
      context.read_old = true;
      const std::size_t first = out.size();
      OwnerMoves(s, out);
      for (std::size_t i = first; i < out.size(); ++i) out[i].first.choice += kOldRead;
      context.read_old = false;
    }
  }
  for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
    if (s.pc[r] < programs_[r].size()) ReaderMove(s, r, out);
    for (int i = 0; i < s.m.buffered[r]; ++i) {
      if (!may_commit(s.m, config_.memory, r, i)) continue;
      State n = s;
      commit(n.m, r, i);
      out.push_back({{kCommit + r, i, 0}, n});
    }
  }
}

void Checker::OwnerMoves(const State& s, std::vector<std::pair<Step, State>>& out) const {
  const OInstr& in = owner_[s.owner_pc];
  const auto emit = [&](int choice, State& next) {
    if (context.garbage) next.garbage = 1;
    out.push_back({{kOwner, s.owner_pc, choice}, next});
  };
  State n = s;
  ++n.owner_pc;
  Enter(n, kOwner);
  switch (in.op) {
    case OOp::kFlip:  // O1: publishes the copy just written; readers move to it.
      protocol::flip(pub_, 1);
      n.writing = -1;
      emit(0, n);
      return;
    case OOp::kIdle:  // on_idle(): clears the fence bit quiet_wait after the last scan.
      emit(0, n);
      if (!protocol::idle_keeps_fence(s.readers_fence, s.permanent)) {
        Enter(n, kOwner);
        protocol::clear_fence(pub_, 0);
        n.readers_fence = 0;
        n.cleared = mutant_.clear_then_skip;
        emit(1, n);
      }
      return;
    case OOp::kMode: {  // publication::before_scan
      const bool light_allowed = config_.owner_light && !mutant_.owner_skips_barrier;
      if (protocol::readers_always_fence(light_allowed, s.permanent)) {
        n.need_barrier = 0;
        emit(0, n);
        return;
      }
      for (const bool due : {false, true}) {
        State m = n;
        Enter(m, kOwner);
        m.cleared = 0;
        const protocol::scan_fence mode = protocol::choose_scan_fence(s.readers_fence, due);
        bool barrier = protocol::needs_membarrier(mode);
        if (mode == protocol::scan_fence::set_then_barrier) {
          protocol::set_fence(pub_, 0);
          m.readers_fence = 1;
          barrier = barrier && !mutant_.set_without_barrier;
        } else if (mode == protocol::scan_fence::clear_then_barrier) {
          protocol::clear_fence(pub_, 0);
          m.readers_fence = 0;
          m.cleared = mutant_.clear_then_skip;
          barrier = barrier && !mutant_.clear_without_barrier;
        } else if (mode == protocol::scan_fence::membarrier && s.cleared) {
          barrier = false;  // the clear_then_skip mutant
        }
        m.need_barrier = barrier;
        emit(due, m);
      }
      return;
    }
    case OOp::kBarrier: {  // O2
      if (!s.need_barrier) {
        protocol::scan_barrier<policy>(false);
        emit(0, n);
        return;
      }
      State failed = n;
      protocol::scan_barrier<policy>(true);
      emit(1, n);
      if (config_.failure != Failure::kNever) {
        Enter(failed, kOwner);
        context.heavy_fence_fails = true;
        failed.failed = !protocol::scan_barrier<policy>(true);  // fallback barrier ran
        emit(2, failed);
      }
      return;
    }
    case OOp::kHead:  // load_slot_list
      n.cur = pack(protocol::load_slot_list(head_));
      n.widx = 0;
      std::fill(std::begin(n.seen), std::end(n.seen), 0);
      emit(0, n);
      return;
    case OOp::kScan: {  // O3 over the listed slots, one access per step
      if (s.cur == 0) {
        emit(0, n);
        return;
      }
      const Slot& slot = *slots_[s.cur - 1];
      --n.owner_pc;
      if (s.widx < slot.count) {
        const int w = slot.words[s.widx].cell() - kWord;
        n.seen[w] = pack(protocol::scan_load(slot.words[s.widx]));
        ++n.widx;
      } else {
        n.cur = pack(protocol::next_slot(slot));
        n.widx = 0;
        if (n.cur == 0) ++n.owner_pc;
      }
      emit(0, n);
      return;
    }
    case OOp::kWait: {  // O3: acquire loads until the word changes
      if (s.seen[in.word] == 0) {
        emit(0, n);
        return;
      }
      const Slot* slot = nullptr;
      int k = 0;
      for (const auto& p : slots_) {
        for (int i = 0; i < p->count; ++i) {
          if (p->words[i].cell() == kWord + in.word) slot = p.get(), k = i;
        }
      }
      if (protocol::reader_left(slot->words[k], unpack<std::uint64_t>(s.seen[in.word]))) {
        emit(0, n);
      }
      return;
    }
    case OOp::kAfterScan:  // ensure_idle_ready after a failed membarrier()
      if (s.failed) {
        n.failed = 0;
        if (protocol::permanent_switch_sets_bit(s.readers_fence)) protocol::set_fence(pub_, 0);
        n.permanent = 1;
        n.readers_fence = 1;
        // fallback_process_barrier() after make_fence_permanent
        if (config_.failure == Failure::kBarrierAfterSwitch) {
          drain_all(n.m);
          owner_acquire_point(n.m);  // a full fence in the owner too
        }
        emit(1, n);
      } else {
        emit(0, n);
      }
      return;
    case OOp::kWrite:  // the copy readers left at O1 (owner_view: a relaxed load)
      n.writing = static_cast<std::int8_t>(CopyOf(pub_.load(std::memory_order_relaxed)) ^ 1);
      emit(0, n);
      return;
  }
}

void Checker::ReaderMove(const State& s, int r, std::vector<std::pair<Step, State>>& out) const {
  const RInstr& in = programs_[r][s.pc[r]];
  State n = s;
  ++n.pc[r];
  Enter(n, r);
  Slot& slot = *slots_[r];
  auto& word = slot.words[in.local];
  const int w = in.word;
  switch (in.op) {
    case ROp::kInit:  // cache_slot's constructor: every word 0
      for (int k = 0; k < slot.count; ++k) slot.words[k].store(0, std::memory_order_relaxed);
      break;
    case ROp::kLock:  // slot_list's mutex (an acquire RMW)
      if (lock_.exchange(1, std::memory_order_acquire) != 0) return;  // held: no move
      break;
    case ROp::kLink:
      slot.next = protocol::link_slot(head_);
      break;
    case ROp::kPublish:
      protocol::publish_slot(head_, &slot);
      break;
    case ROp::kUnlock:
      lock_.store(0, std::memory_order_release);
      break;
    case ROp::kAnnounce:  // R1
      if (config_.readers[r].light) {
        protocol::announce_light<policy>(word, in.value);
      } else {
        if (mutant_.fenced_r1_relaxed) {
          context.demote_cell = static_cast<std::uint8_t>(word.cell());
          context.demotion = Demotion::kRelaxed;
        }
        protocol::announce_fenced(word, in.value);
      }
      break;
    case ROp::kLoad: {  // R2 (case 2 if it comes after O1)
      const std::uint64_t pub = protocol::load_publication(pub_);
      if (protocol::needs_fence(pub) && !mutant_.ignore_fence_bit) {
        n.loaded[w] = static_cast<std::uint8_t>(CopyOf(pub));
      } else {
        n.reading[w] = static_cast<std::int8_t>(CopyOf(pub));
        n.pc[r] += 2;  // no fence bit: read now
      }
      break;
    }
    case ROp::kRestore:  // fence_announcement
      protocol::fence_announcement(word);
      if (mutant_.restore_without_reload) {
        n.reading[w] = static_cast<std::int8_t>(s.loaded[w]);
        ++n.pc[r];
      }
      n.loaded[w] = 0;
      break;
    case ROp::kReload:  // R2 again, now in protocol (a) (open_scoped, open_pin)
      n.reading[w] = static_cast<std::int8_t>(CopyOf(protocol::load_publication(pub_)));
      break;
    case ROp::kClose:  // R3
      if (!mutant_.release_before_read) n.reading[w] = -1;
      protocol::exit_section(word);
      break;
    case ROp::kEndRead:
      n.reading[w] = -1;
      break;
  }
  if (context.garbage) n.garbage = 1;
  out.push_back({{r, s.pc[r], 0}, n});
}

std::string Checker::Describe(const Step& step, const State& before) const {
  if (step.actor >= kCommit) {
    const Buffered& b = before.m.buffer[step.actor - kCommit][step.pc];
    static const char* const kCell[] = {"pub", "head", "lock", "next0", "next1"};
    std::string text = "reader ";
    text.append(std::to_string(step.actor - kCommit)).append(": buffered ");
    if (b.cell < kWord) {
      text.append(kCell[b.cell]);
    } else {
      text.append("w").append(std::to_string(b.cell - kWord));
    }
    return text.append("=").append(std::to_string(b.value)).append(" becomes visible");
  }
  if (step.actor == kOwner && step.choice >= kOldRead) {
    return Describe({step.actor, step.pc, step.choice - kOldRead}, before) +
           " [loads as at its last acquire]";
  }
  if (step.actor == kOwner) {
    static const char* const kText[] = {
        "O1 flip",   "on_idle",    "before_scan",         "O2 ", "load_slot_list", "O3 scan",
        "O3 wait w", "after scan", "writes the idle copy"};  // by OOp
    const OInstr& in = owner_[step.pc];
    std::string text = std::string("owner: ") + kText[static_cast<int>(in.op)];
    if (in.op == OOp::kWait) return text + std::to_string(in.word);
    if (in.op == OOp::kIdle) return step.choice ? text + ": clear_fence" : "owner: -";
    if (in.op == OOp::kAfterScan) return step.choice ? text + ": make_fence_permanent" : "owner: -";
    if (in.op == OOp::kScan && before.cur != 0) {
      const Slot& slot = *slots_[before.cur - 1];
      if (before.widx < slot.count) {
        return text + " w" + std::to_string(slot.words[before.widx].cell() - kWord);
      }
      return text + ": next_slot of slot " + std::to_string(before.cur - 1);
    }
    if (in.op == OOp::kBarrier) {
      const char* const kBarrier[] = {"not needed", "membarrier", "membarrier FAILS, fallback"};
      return text + kBarrier[step.choice];
    }
    if (in.op == OOp::kMode) {
      return text + (step.choice ? ": switch due" : ": no switch") +
             (before.readers_fence ? " (fenced)" : " (light)");
    }
    return text;
  }
  static const char* const kText[] = {"slot constructed (words 0)",
                                      "locks the list",
                                      "link_slot",
                                      "publish_slot",
                                      "unlocks",
                                      "R1",
                                      "R2 load_publication for",
                                      "fence_announcement",
                                      "R2 again for",
                                      "R3 exit_section",
                                      "ends its reads under"};
  const RInstr& in = programs_[step.actor][step.pc];
  std::string text = "reader ";
  text.append(std::to_string(step.actor)).append(": ").append(kText[static_cast<int>(in.op)]);
  if (in.op >= ROp::kAnnounce) text += " w" + std::to_string(in.word);
  if (in.op == ROp::kAnnounce) {
    text += config_.readers[step.actor].light ? " (light)" : " (fenced)";
  }
  return text;
}

// Appends only (no `"literal" + std::string`): g++ 12 -O3 warns falsely there (-Wrestrict).
std::string Checker::Show(const State& s) const {
  std::string out = "pub ";
  const auto put = [&out](const char* text, int n) { out.append(text).append(std::to_string(n)); };
  put("", s.m.mem[kPub] & 1);
  out += s.m.mem[kPub] & 0x80 ? "+fence" : "";
  put(" head ", s.m.mem[kHead]);
  out += " mem[";
  for (int w = 0; w < words_; ++w) {
    if (s.m.mem[kWord + w] == kGarbage) {
      out += w ? ",?" : "?";  // not yet initialized
    } else {
      put(w ? "," : "", s.m.mem[kWord + w]);
    }
  }
  out += "]";
  for (int r = 0; r < static_cast<int>(programs_.size()); ++r) {
    if (s.m.buffered[r] == 0) continue;
    put(" buf", r);
    for (int i = 0; i < s.m.buffered[r]; ++i) {
      put(i ? ",c" : "[c", s.m.buffer[r][i].cell);
      put("=", s.m.buffer[r][i].value);
    }
    out += "]";
  }
  for (int w = 0; w < words_; ++w) {
    if (s.reading[w] < 0) continue;
    put(" w", w);
    put(":reads", s.reading[w]);
  }
  if (s.writing >= 0) put(" owner:writes", s.writing);
  if (s.garbage) out += " UNINITIALIZED READ";
  return out;
}

void Checker::PrintTrace(const Result& r) const {
  for (std::size_t i = 0; i < r.trace.size(); ++i) {
    const std::string what = Describe(r.trace[i], r.trace_states[i]);
    if (what == "owner: -") continue;
    std::printf("    %2zu. %-52s | %s\n", i + 1, what.c_str(), Show(r.trace_states[i + 1]).c_str());
  }
}

}  // namespace model
