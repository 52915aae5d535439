// The cache configurations every suite runs on, in one list: unit, contract, cache features,
// stress, faults, timeouts and shutdown draw their backends from here, each a subset named
// below, and adapt them to their own key and value types. A new backend or configuration
// joins the suites by being added here (and to the subsets it belongs in).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include <absl/hash/hash.h>

#include <warden/warden.hpp>

namespace warden_test {

// The cache features a test turns on; each maker applies them to its own options type.
struct cache_opts {
  std::size_t max_size = 0;
  std::chrono::nanoseconds expire_after_write{0};
  std::chrono::nanoseconds expire_after_access{0};
  const warden::clock* clock = nullptr;
  bool record_stats = false;
  std::size_t feed_capacity = 0;
  std::size_t mailbox_capacity = 0;  // 0: the configuration's own
};

template <class Options>
Options with(Options o, const cache_opts& c) {
  o.max_size = c.max_size;
  o.expire_after_write = c.expire_after_write;
  o.expire_after_access = c.expire_after_access;
  o.clock = c.clock;
  o.record_stats = c.record_stats;
  o.feed_capacity = c.feed_capacity;
  if (c.mailbox_capacity != 0) o.mailbox_capacity = c.mailbox_capacity;
  return o;
}

// A compile-time test name, `Prefix` + `Maker::name` + `Suffix`: gtest asks for names during
// static initialization, so they must not need dynamic initialization themselves.
template <const char* Prefix, class Maker, const char* Suffix>
struct composed_name {
  static constexpr auto chars = [] {
    constexpr std::string_view prefix = Prefix, inner = Maker::name, suffix = Suffix;
    std::array<char, prefix.size() + inner.size() + suffix.size() + 1> out{};
    auto it = std::copy(prefix.begin(), prefix.end(), out.begin());
    it = std::copy(inner.begin(), inner.end(), it);
    std::copy(suffix.begin(), suffix.end(), it);
    return out;
  }();
  static constexpr const char* value = chars.data();
};
inline constexpr char kNoAffix[] = "";
inline constexpr char kAnyCachePrefix[] = "any_cache_over_";

// A table configuration: its name, owner count and options.
template <const char* Name, std::size_t Shards, std::size_t Owners, std::size_t Mailbox = 0,
          bool Asymmetric = true>
struct table_config {
  static constexpr const char* name = Name;
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = Owners;
  template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
  static warden::table<K, V, Hash, Eq> make(const cache_opts& c = {}) {
    return warden::table<K, V, Hash, Eq>(with(warden::table_options{.shards = Shards,
                                                                    .owners = Owners,
                                                                    .mailbox_capacity = Mailbox,
                                                                    .asymmetric_fence = Asymmetric},
                                              c));
  }
};

template <const char* Name, std::size_t Mailbox = 0>
struct actor_config {
  static constexpr const char* name = Name;
  static constexpr bool is_table = false;
  static constexpr std::size_t owners = 1;
  template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
  static warden::actor<K, V, Hash, Eq> make(const cache_opts& c = {}) {
    return warden::actor<K, V, Hash, Eq>(
        with(warden::actor_options{.mailbox_capacity = Mailbox}, c));
  }
};

// The pool every pooled configuration shares: two threads, as on the machine CI runs on.
inline std::shared_ptr<warden::owner_pool> shared_test_pool() {
  static const auto pool = std::make_shared<warden::owner_pool>(2);
  return pool;
}

// A table and an actor whose owners run on shared_test_pool().
struct table_pooled {
  static constexpr const char* name = "table_on_a_pool";
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = 1;
  template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
  static warden::table<K, V, Hash, Eq> make(const cache_opts& c = {}) {
    warden::table_options o;
    o.pool = shared_test_pool();
    return warden::table<K, V, Hash, Eq>(with(o, c));
  }
};
struct actor_pooled {
  static constexpr const char* name = "actor_on_a_pool";
  static constexpr bool is_table = false;
  static constexpr std::size_t owners = 1;
  template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
  static warden::actor<K, V, Hash, Eq> make(const cache_opts& c = {}) {
    warden::actor_options o;
    o.pool = shared_test_pool();
    return warden::actor<K, V, Hash, Eq>(with(o, c));
  }
};

inline constexpr char kTableName[] = "table";
inline constexpr char kShardedName[] = "table_8shards_3owners";
inline constexpr char kTwoOwnersName[] = "table_4shards_2owners";
inline constexpr char kSymmetricName[] = "table_symmetric_fence";
inline constexpr char kBoundedName[] = "table_bounded_mailbox";
inline constexpr char kActorName[] = "actor";
inline constexpr char kActorBoundedName[] = "actor_bounded_mailbox";

using table_default = table_config<kTableName, 16, 1>;
using table_sharded = table_config<kShardedName, 8, 3>;
using table_two_owners = table_config<kTwoOwnersName, 4, 2>;
using table_symmetric_fence = table_config<kSymmetricName, 4, 1, 0, false>;
using table_bounded = table_config<kBoundedName, 4, 2, 16>;
using actor_default = actor_config<kActorName>;
using actor_bounded = actor_config<kActorBoundedName, 16>;

// Any of the above behind warden::any_cache.
template <class Inner>
struct erased {
  static constexpr const char* name = composed_name<kAnyCachePrefix, Inner, kNoAffix>::value;
  static constexpr bool is_table = Inner::is_table;
  static constexpr std::size_t owners = Inner::owners;
  template <class K, class V, class Hash = absl::Hash<K>, class Eq = std::equal_to<K>>
  static warden::any_cache<K, V> make(const cache_opts& c = {}) {
    return warden::any_cache<K, V>(Inner::template make<K, V, Hash, Eq>(c));
  }
};

// ---- the suites' subsets -----------------------------------------------------------------
// The core contract: every configuration.
using all_backends =
    ::testing::Types<table_default, table_sharded, table_symmetric_fence, table_bounded,
                     actor_default, table_pooled, actor_pooled, erased<table_default>,
                     erased<table_sharded>, erased<actor_default>, erased<table_pooled>>;
// The cache features are the same code on every table configuration, so their contract runs
// on fewer: one and several owners, a bounded mailbox, the actor, and any_cache over both.
using cache_backends =
    ::testing::Types<table_default, table_sharded, table_bounded, actor_default, table_pooled,
                     actor_pooled, erased<table_sharded>, erased<actor_default>>;
using stress_backends = ::testing::Types<table_default, table_sharded, actor_default>;
// Fault injection: one owner, several, bounded mailboxes, and any_cache over both backends.
using fault_backends =
    ::testing::Types<table_default, table_two_owners, table_bounded, actor_default, actor_bounded,
                     erased<table_two_owners>, erased<actor_default>>;
// Timed calls need every owner blocked at once: several owners, the actor, and any_cache.
using timeout_backends = ::testing::Types<table_sharded, actor_default, erased<table_sharded>>;
// Shutdown (each suite sets its own mailbox capacity through cache_opts).
using shutdown_backends = ::testing::Types<table_default, table_two_owners, actor_default>;

// Types<A...> followed by Types<B...>.
template <class A, class B>
struct join;
template <class... As, class... Bs>
struct join<::testing::Types<As...>, ::testing::Types<Bs...>> {
  using type = ::testing::Types<As..., Bs...>;
};

// Rebinds a subset to a suite's own adapter: adapt<A, Types<M...>>::type is Types<A<M>...>.
template <template <class> class Adapter, class List>
struct adapt;
template <template <class> class Adapter, class... Makers>
struct adapt<Adapter, ::testing::Types<Makers...>> {
  using type = ::testing::Types<Adapter<Makers>...>;
};

struct backend_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};

// Keeps a cache's owner busy inside a transaction from construction until release() (or
// destruction), so that a test can fill its mailbox or let a deadline pass meanwhile.
template <class Cache>
class owner_hold {
 public:
  explicit owner_hold(Cache& c)
      : thread_([this, &c] {
          c.transact([this](auto&) {
            busy_.count_down();
            release_.wait();
          });
        }) {
    busy_.wait();
  }
  owner_hold(const owner_hold&) = delete;
  owner_hold& operator=(const owner_hold&) = delete;
  ~owner_hold() { release(); }

  // Lets the transaction finish and waits for it.
  void release() {
    if (!thread_.joinable()) return;
    release_.count_down();
    thread_.join();
  }

 private:
  std::latch busy_{1};
  std::latch release_{1};
  std::thread thread_;  // last: started once the latches exist
};

}  // namespace warden_test
