// Error types raised by warden. Every error the library itself raises derives from
// warden::error; exceptions thrown by user code (a transact function, Hash, a copy) pass
// through unchanged.
#pragma once

#include <stdexcept>
#include <string>

namespace warden {

// Base of every error warden raises.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The cache was moved from, or is being destroyed: it accepts no more operations.
class closed_error : public error {
 public:
  closed_error() : error("warden: the cache is moved-from or shut down") {}
};

// A call that would wait on the owner from a place the owner itself waits on: the owner's own
// thread (a transact function, or anything in an actor callback), or a reader section
// (snapshot/pin) of the same table. Raised instead of deadlocking.
class reentrancy_error : public error {
 public:
  explicit reentrancy_error(const std::string& what) : error("warden: re-entrant call: " + what) {}
};

// A call given a deadline whose work had not started by then; it was cancelled and left no
// trace.
class timeout_error : public error {
 public:
  timeout_error() : error("warden: deadline passed before the owner started the call") {}
};

// Read sections nest at most detail::kMaxReadDepth deep per thread.
class nesting_error : public error {
 public:
  nesting_error() : error("warden: read sections nested too deeply on this thread") {}
};

}  // namespace warden
