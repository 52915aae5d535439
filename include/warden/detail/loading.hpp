// get_or_load: one loader per key in flight. The key's owner keeps the loads in flight
// (owner_state::claim_load), so registering, superseding and ending a load need no lock:
//  - a miss asks the owner (a call) for the key: the value if it has appeared meanwhile, else
//    the load in flight, registering the caller as its loader if there is none;
//  - the loader runs loader(key) in its own thread, then asks the owner to end the load: the
//    value is stored unless a put or erase of the key landed since the claim (that write
//    wins: `superseded`), and every waiter is woken with the value or the exception;
//  - waiters park on `done` (a futex); a loader that waits for its own load gets
//    reentrancy_error instead of a deadlock.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>

#include "warden/detail/sync.hpp"
#include "warden/detail/thread_state.hpp"

namespace warden::detail {

template <class V>
struct load_state {
  explicit load_state(const thread_record* l) : loader(l) {}
  const thread_record* const loader;
  bool superseded = false;  // owner-private
  // Written by the owner before `done` is set; read by waiters after they see it.
  std::optional<V> value;
  std::exception_ptr error;
  std::atomic<std::uint32_t> done{0};

  void publish() noexcept {
    // release: pairs with wait()'s acquire, publishing value and error.
    done.store(1, std::memory_order_release);
    done.notify_all();
  }
  void wait() const { wait_for_change(done, 0); }  // acquire inside
};

}  // namespace warden::detail
