// A producer blocked for room in a full bounded mailbox, woken by the cache's destruction,
// must finish with the mailbox before the destructor frees it. Built with
// WARDEN_TEST_DELAY_AFTER_ROOM_WAIT_MS (its own executable: the macro must be the same in
// every TU), which makes every woken waiter sleep before its next touch of the mailbox, so a
// destructor that stopped waiting for it at its wake-up frees the mailbox under it:
// AddressSanitizer reports the use after free (the asan preset), and a release build reads
// freed memory. Both backends; the owner is held in a transaction while the mailbox fills.
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "../support/backends.hpp"

#if !defined(WARDEN_TEST_DELAY_AFTER_ROOM_WAIT_MS)
#error "build this test with WARDEN_TEST_DELAY_AFTER_ROOM_WAIT_MS"
#endif

namespace {

using namespace std::chrono_literals;

template <class Cache, class Options>
void destroy_while_a_producer_waits_for_room(Options options) {
  std::optional<Cache> c(std::in_place, options);
  std::optional<warden_test::owner_hold<Cache>> hold(std::in_place, *c);
  for (std::uint64_t k = 0; k < 64; ++k) (void)c->try_put(k, k);  // full
  std::thread producer([&] {
    try {
      c->put(1000, 1);
    } catch (const warden::closed_error&) {
    }
  });
  std::this_thread::sleep_for(50ms);  // the producer waits for room
  std::thread destroyer([&] { c.reset(); });
  std::this_thread::sleep_for(20ms);  // close() woke the producer; it sleeps in the window
  hold->release();
  destroyer.join();
  producer.join();
  hold.reset();
  EXPECT_FALSE(c.has_value());
}

TEST(RoomWaitShutdown, TableOutlivesAWokenProducer) {
  destroy_while_a_producer_waits_for_room<warden::table<std::uint64_t, std::uint64_t>>(
      warden::table_options{.shards = 1, .mailbox_capacity = 4});
}

TEST(RoomWaitShutdown, ActorOutlivesAWokenProducer) {
  destroy_while_a_producer_waits_for_room<warden::actor<std::uint64_t, std::uint64_t>>(
      warden::actor_options{.mailbox_capacity = 4});
}

}  // namespace
