// The backends the contract suite runs on, and helpers the unit tests share. A new backend
// joins every contract test by adding one maker to `all_backends`.
#pragma once

#include <chrono>
#include <latch>
#include <thread>

#include <gtest/gtest.h>

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
};

template <class Options>
Options with(Options o, const cache_opts& c) {
  o.max_size = c.max_size;
  o.expire_after_write = c.expire_after_write;
  o.expire_after_access = c.expire_after_access;
  o.clock = c.clock;
  o.record_stats = c.record_stats;
  o.feed_capacity = c.feed_capacity;
  return o;
}

struct table_default {
  static constexpr const char* name = "table";
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = 1;
  template <class K, class V>
  static warden::table<K, V> make(const cache_opts& c = {}) {
    return warden::table<K, V>(with(warden::table_options{}, c));
  }
};

struct table_sharded {
  static constexpr const char* name = "table_8shards_3owners";
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = 3;
  template <class K, class V>
  static warden::table<K, V> make(const cache_opts& c = {}) {
    return warden::table<K, V>(with(warden::table_options{.shards = 8, .owners = 3}, c));
  }
};

struct table_symmetric_fence {
  static constexpr const char* name = "table_symmetric_fence";
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = 1;
  template <class K, class V>
  static warden::table<K, V> make(const cache_opts& c = {}) {
    return warden::table<K, V>(
        with(warden::table_options{.shards = 4, .owners = 1, .asymmetric_fence = false}, c));
  }
};

struct table_bounded {
  static constexpr const char* name = "table_bounded_mailbox";
  static constexpr bool is_table = true;
  static constexpr std::size_t owners = 2;
  template <class K, class V>
  static warden::table<K, V> make(const cache_opts& c = {}) {
    return warden::table<K, V>(
        with(warden::table_options{.shards = 4, .owners = 2, .mailbox_capacity = 16}, c));
  }
};

struct actor_default {
  static constexpr const char* name = "actor";
  static constexpr bool is_table = false;
  static constexpr std::size_t owners = 1;
  template <class K, class V>
  static warden::actor<K, V> make(const cache_opts& c = {}) {
    return warden::actor<K, V>(with(warden::actor_options{}, c));
  }
};

template <class Inner>
struct erased {
  static constexpr const char* name = "any_cache";
  static constexpr bool is_table = Inner::is_table;
  static constexpr std::size_t owners = Inner::owners;
  template <class K, class V>
  static warden::any_cache<K, V> make(const cache_opts& c = {}) {
    return warden::any_cache<K, V>(Inner::template make<K, V>(c));
  }
};

using all_backends = ::testing::Types<table_default, table_sharded, table_symmetric_fence,
                                      table_bounded, actor_default, erased<table_default>,
                                      erased<table_sharded>, erased<actor_default>>;

struct backend_names {
  template <class T>
  static std::string GetName(int i) {
    return std::string(T::name) + "_" + std::to_string(i);
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
