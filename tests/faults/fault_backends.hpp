// The backends the fault tests run on: the shared list's fault subset (one owner, two, a
// bounded mailbox; the actor, plain and bounded; any_cache over both), over the
// fault-injecting key type.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include <warden/warden.hpp>

#include "../support/backends.hpp"
#include "fault_types.hpp"

namespace warden_faults {

template <class V>
using ftable = warden::table<fkey, V, fhash, feq>;
template <class V>
using factor = warden::actor<fkey, V, fhash, feq>;

// A configuration from the shared list (tests/support/backends.hpp), over the fault types.
template <class Maker>
struct fault_backend {
  static constexpr bool actor_backed = !Maker::is_table;
  static constexpr const char* name = Maker::name;
  template <class V>
  static auto make() {
    return Maker::template make<fkey, V, fhash, feq>();
  }
};

using fault_backends =
    typename warden_test::adapt<fault_backend, warden_test::fault_backends>::type;
using warden_test::backend_names;

}  // namespace warden_faults
