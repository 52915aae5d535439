// The backends the contract suite runs on, and helpers the unit tests share. A new backend
// joins every contract test by adding one maker to `all_backends`.
#pragma once

#include <latch>
#include <thread>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

namespace warden_test {

struct table_default {
  static constexpr const char* name = "table";
  template <class K, class V>
  static warden::table<K, V> make() {
    return warden::table<K, V>();
  }
};

struct table_sharded {
  static constexpr const char* name = "table_8shards_3owners";
  template <class K, class V>
  static warden::table<K, V> make() {
    return warden::table<K, V>({.shards = 8, .owners = 3});
  }
};

struct table_symmetric_fence {
  static constexpr const char* name = "table_symmetric_fence";
  template <class K, class V>
  static warden::table<K, V> make() {
    return warden::table<K, V>({.shards = 4, .owners = 1, .asymmetric_fence = false});
  }
};

struct table_bounded {
  static constexpr const char* name = "table_bounded_mailbox";
  template <class K, class V>
  static warden::table<K, V> make() {
    return warden::table<K, V>({.shards = 4, .owners = 2, .mailbox_capacity = 16});
  }
};

struct actor_default {
  static constexpr const char* name = "actor";
  template <class K, class V>
  static warden::actor<K, V> make() {
    return warden::actor<K, V>();
  }
};

template <class Inner>
struct erased {
  static constexpr const char* name = "any_cache";
  template <class K, class V>
  static warden::any_cache<K, V> make() {
    return warden::any_cache<K, V>(Inner::template make<K, V>());
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
