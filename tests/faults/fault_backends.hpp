// The backends the fault tests run on, over the fault-injecting key type: the table with one
// owner, with four shards split between two owners, with a bounded mailbox; the actor, plain
// and bounded; and any_cache over a sharded table and over an actor.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "fault_types.hpp"

namespace warden_faults {

template <class V>
using ftable = warden::table<fkey, V, fhash, feq>;
template <class V>
using factor = warden::actor<fkey, V, fhash, feq>;

struct table_one_owner {
  static constexpr bool actor_backed = false;
  static constexpr const char* name = "table_1owner";
  template <class V>
  static ftable<V> make() {
    return ftable<V>({.shards = 16, .owners = 1});
  }
};

struct table_sharded {
  static constexpr bool actor_backed = false;
  static constexpr const char* name = "table_4shards_2owners";
  template <class V>
  static ftable<V> make() {
    return ftable<V>({.shards = 4, .owners = 2});
  }
};

struct table_bounded {
  static constexpr bool actor_backed = false;
  static constexpr const char* name = "table_bounded_mailbox";
  template <class V>
  static ftable<V> make() {
    return ftable<V>({.shards = 4, .owners = 2, .mailbox_capacity = 8});
  }
};

struct actor_plain {
  static constexpr bool actor_backed = true;
  static constexpr const char* name = "actor";
  template <class V>
  static factor<V> make() {
    return factor<V>();
  }
};

struct actor_bounded {
  static constexpr bool actor_backed = true;
  static constexpr const char* name = "actor_bounded_mailbox";
  template <class V>
  static factor<V> make() {
    return factor<V>({.mailbox_capacity = 8});
  }
};

struct any_over_table {
  static constexpr bool actor_backed = false;
  static constexpr const char* name = "any_cache_over_table";
  template <class V>
  static warden::any_cache<fkey, V> make() {
    return warden::any_cache<fkey, V>(table_sharded::make<V>());
  }
};

struct any_over_actor {
  static constexpr bool actor_backed = true;
  static constexpr const char* name = "any_cache_over_actor";
  template <class V>
  static warden::any_cache<fkey, V> make() {
    return warden::any_cache<fkey, V>(actor_plain::make<V>());
  }
};

using fault_backends = ::testing::Types<table_one_owner, table_sharded, table_bounded, actor_plain,
                                        actor_bounded, any_over_table, any_over_actor>;

struct backend_names {
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};

}  // namespace warden_faults
