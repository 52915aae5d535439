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

// A call or cast on a cache from a place its owner waits on or that must not escape: inside
// an owner-side callback (the function of transact or update, the predicate of erase_if,
// anything an actor runs), inside a snapshot or pin of the same table, from a loader for the
// key it is loading, or sync() from inside a subscriber. Raised instead of deadlocking.
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

// A dump that restore() cannot read: truncated, corrupted (checksum), from another format
// version, or of other key/value types. restore() changes nothing when it throws this.
class format_error : public error {
 public:
  explicit format_error(const std::string& what) : error("warden: bad dump: " + what) {}
};

// Read sections nest at most detail::kMaxReadDepth deep per thread (and at most as many pins
// are open at once per thread and cache).
class nesting_error : public error {
 public:
  nesting_error() : error("warden: read sections nested too deeply on this thread") {}
};

}  // namespace warden
