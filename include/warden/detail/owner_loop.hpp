// The owner thread, shared by the table's owners and the actor: it drains its mailbox batch
// by batch and wakes on its own when it has timed work.
//
// One cycle: wait for messages, a nudge or the deadline `idle()` last asked for; hand the
// drained batch (possibly empty) to `batch`; call `idle()`, which does the timed work due by
// now (expiry, access records, fence bits) and returns when it next needs to run. Both
// callbacks are noexcept: they catch user exceptions and carry them to callers, so an owner
// never dies from user code. stop() drains: every message accepted before it is processed.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>
#include <utility>
#include <vector>

#include "warden/detail/mailbox.hpp"

namespace warden::detail {

// Empties a per-batch buffer that just held `used` elements. A burst's peak capacity goes back
// to the allocator at the first batch well below it; steady large batches keep their buffer
// (freeing and refaulting megabytes per batch cost puts 15% in a profile).
template <class T>
void clear_keeping_working_set(std::vector<T>& v, std::size_t used, std::size_t keep) noexcept {
  v.clear();
  if (v.capacity() > keep && used < v.capacity() / 4) std::vector<T>().swap(v);
}

template <class Msg>
class owner_thread {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr std::size_t kKeepBatchCapacity = 4096;

  explicit owner_thread(std::size_t capacity) : mailbox_(capacity) {}
  owner_thread(const owner_thread&) = delete;
  owner_thread& operator=(const owner_thread&) = delete;
  ~owner_thread() { stop(); }

  template <class Batch, class Idle>
  void start(Batch batch, Idle idle) {
    thread_ = std::thread([this, batch = std::move(batch), idle = std::move(idle)]() mutable {
      std::vector<Msg> work;
      time_point wake = time_point::max();
      while (mailbox_.wait_and_drain(work, wake)) {
        const std::size_t used = work.size();
        batch(work);
        clear_keeping_working_set(work, used, kKeepBatchCapacity);
        wake = idle();
      }
    });
    id_ = thread_.get_id();
  }

  // Drains: every message accepted before this is processed before the thread exits. Then
  // waits for producers still inside the mailbox (refused) to leave it. A cache with several
  // owners closes every mailbox before joining any (close(), then stop()), so producers
  // blocked at any owner are refused at once, whatever an owner is still busy with.
  void close() { mailbox_.close(); }
  void stop() {
    mailbox_.close();
    if (thread_.joinable()) thread_.join();
    mailbox_.wait_for_producers_to_leave();
  }

  // Whether the calling thread is this owner (works across shared objects, unlike a
  // thread_local marker, which each -fvisibility=hidden library would have its own copy of).
  bool is_current() const noexcept { return std::this_thread::get_id() == id_; }

  mailbox<Msg>& box() { return mailbox_; }
  const mailbox<Msg>& box() const { return mailbox_; }

 private:
  mailbox<Msg> mailbox_;
  std::thread thread_;
  std::thread::id id_;
};

}  // namespace warden::detail
