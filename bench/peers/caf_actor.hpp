// Benchmark peer: a real actor from the C++ Actor Framework (CAF 0.17) that owns an
// absl::flat_hash_map, adapted to warden's cache calls. Reads and counter updates are
// request/response round trips; put/erase are fire-and-forget sends (casts). It measures what
// message passing costs when every caller has to talk to one owner. Include it through
// peers.hpp, which includes it only when CMake found CAF (WARDEN_HAVE_CAF).
//
// Only caf_actor<std::uint64_t, std::uint64_t> is supported: uint64_t and bool are CAF builtin
// message types, while any other key or value type would have to be announced to the actor
// system with a serializer.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>

#include <absl/container/flat_hash_map.h>
#include <caf/all.hpp>

namespace warden_bench {
namespace caf_peer {

// CAF 0.17 atoms (at most 10 characters). The prefix keeps them apart from CAF's own atoms.
using get_atom = caf::atom_constant<caf::atom("wb_get")>;
using contains_atom = caf::atom_constant<caf::atom("wb_has")>;
using size_atom = caf::atom_constant<caf::atom("wb_size")>;
using put_atom = caf::atom_constant<caf::atom("wb_put")>;
using erase_atom = caf::atom_constant<caf::atom("wb_erase")>;
using add_atom = caf::atom_constant<caf::atom("wb_add")>;
using flush_atom = caf::atom_constant<caf::atom("wb_flush")>;

struct server_state {
  absl::flat_hash_map<std::uint64_t, std::uint64_t> map;
  static constexpr const char* name = "warden_bench_caf_server";  // shown in CAF logs
};

// The owner. put/erase return void so that CAF sends no reply: a reply to a plain send would
// land in the caller's mailbox unasked.
inline caf::behavior server(caf::stateful_actor<server_state>* self) {
  return {
      [=](get_atom, std::uint64_t key) -> std::tuple<bool, std::uint64_t> {
        auto& map = self->state.map;
        auto it = map.find(key);
        if (it == map.end()) return {false, 0};
        return {true, it->second};
      },
      [=](contains_atom, std::uint64_t key) { return self->state.map.contains(key); },
      [=](size_atom) { return static_cast<std::uint64_t>(self->state.map.size()); },
      [=](put_atom, std::uint64_t key, std::uint64_t value) {
        self->state.map.insert_or_assign(key, value);
      },
      [=](erase_atom, std::uint64_t key) { self->state.map.erase(key); },
      [=](add_atom, std::uint64_t key, std::uint64_t delta) {
        return self->state.map[key] += delta;  // a missing key is value-initialized to 0
      },
      // Mailboxes are FIFO per sender, so answering this proves that every earlier send from the
      // same caller has been handled.
      [=](flush_atom) { return true; },
  };
}

// Ids are never reused, so a stale thread-local cache entry can never match a newer adapter
// that happens to live at the same address.
inline std::uint64_t next_instance_id() {
  static std::atomic<std::uint64_t> next{1};
  // relaxed: only uniqueness is needed, and fetch_add is atomic under any memory order.
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace caf_peer

template <class K, class V>
class caf_actor {
  static_assert(std::is_same_v<K, std::uint64_t> && std::is_same_v<V, std::uint64_t>,
                "the CAF peer supports only uint64_t keys and values (CAF builtin types)");

 public:
  using key_type = K;
  using mapped_type = V;
  static constexpr const char* name = "caf actor (request/response)";
  static constexpr bool thread_safe = true;

  caf_actor() : server_(system_.spawn(caf_peer::server)) {}

  caf_actor(const caf_actor&) = delete;
  caf_actor& operator=(const caf_actor&) = delete;

  ~caf_actor() {
    // The actor system's destructor waits for every live actor, so the server has to stop
    // first; the callers' (hidden) scoped actors end here too, while the system is alive. Like
    // any destructor, it must not race with calls from other threads.
    caf::anon_send_exit(server_, caf::exit_reason::user_shutdown);
    server_ = nullptr;
    callers_.clear();
  }

  std::optional<V> get(const K& key) const {
    std::optional<V> out;
    self()
        ->request(server_, caf::infinite, caf_peer::get_atom::value, key)
        .receive(
            [&](bool found, std::uint64_t value) {
              if (found) out = value;
            },
            on_error);
    return out;
  }

  bool contains(const K& key) const {
    bool out = false;
    self()
        ->request(server_, caf::infinite, caf_peer::contains_atom::value, key)
        .receive([&](bool found) { out = found; }, on_error);
    return out;
  }

  std::size_t size() const {
    std::uint64_t out = 0;
    self()
        ->request(server_, caf::infinite, caf_peer::size_atom::value)
        .receive([&](std::uint64_t n) { out = n; }, on_error);
    return static_cast<std::size_t>(out);
  }

  // Sent from this thread's scoped actor rather than with anon_send: CAF documents FIFO order
  // between one sender and one receiver, and flush() relies on exactly that.
  void put(const K& key, const V& value) {
    self()->send(server_, caf_peer::put_atom::value, key, value);
  }
  void erase(const K& key) { self()->send(server_, caf_peer::erase_atom::value, key); }

  // Returns once the server has handled every put/erase this thread sent before. Writes from
  // other threads are not waited for: each thread flushes its own.
  void flush() {
    self()
        ->request(server_, caf::infinite, caf_peer::flush_atom::value)
        .receive([](bool) {}, on_error);
  }

  V update_counter(const K& key, V delta) {
    std::uint64_t out = 0;
    self()
        ->request(server_, caf::infinite, caf_peer::add_atom::value, key, delta)
        .receive([&](std::uint64_t value) { out = value; }, on_error);
    return out;
  }

 private:
  static void on_error(caf::error& err) {
    throw std::runtime_error("warden_bench::caf_actor: " + caf::to_string(err));
  }

  // The calling thread's scoped actor. A blocking receive needs an actor of the caller's own,
  // and creating one per call would put an actor spawn on every operation, so each thread keeps
  // one per adapter. The adapter owns them (not the thread), because the actor system must
  // outlive its actors; a one-entry thread_local cache makes the usual lookup lock-free.
  caf::scoped_actor& self() const {
    struct cache_entry {
      std::uint64_t owner = 0;
      caf::scoped_actor* self = nullptr;
    };
    thread_local cache_entry cache;
    if (cache.owner == id_) return *cache.self;
    std::lock_guard lock(callers_mu_);
    // A thread id may be reused after its thread ends; taking over that thread's scoped actor
    // is harmless because its old user is gone.
    auto& slot = callers_[std::this_thread::get_id()];
    if (!slot) slot = std::make_unique<caf::scoped_actor>(system_, /*hide=*/true);
    cache = {id_, slot.get()};
    return *slot;
  }

  const std::uint64_t id_ = caf_peer::next_instance_id();
  caf::actor_system_config config_;  // actor_system keeps a reference to it
  mutable caf::actor_system system_{config_};
  caf::actor server_;
  mutable std::mutex callers_mu_;
  mutable std::unordered_map<std::thread::id, std::unique_ptr<caf::scoped_actor>> callers_;
};

}  // namespace warden_bench
