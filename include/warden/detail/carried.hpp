// carried<T>: how a message holds a key or a value. Small types live inline; a type larger
// than kInlineCarryBytes lives on the heap behind a pointer, so that a message (and every
// slot of the mailbox's blocks, and the owner's batch vector) is sized by what small messages
// carry, not by the largest value type: an erase or a call of a cache of 4 MiB values costs
// a few dozen bytes, and a big value is moved once onto the heap by the sender instead of
// through every queue.
//
// Invariants
//  - A carried<T> always holds a T (never empty) until it is moved from; the owner moves out
//    of it exactly once.
//  - Constructing one may throw (T's move or copy, or bad_alloc for the heap form): that
//    happens in the sending thread, before anything is queued, so the caller sees it.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace warden::detail {

inline constexpr std::size_t kInlineCarryBytes = 128;

template <class T, bool Inline = (sizeof(T) <= kInlineCarryBytes)>
class carried {
 public:
  // Implicit: messages are built by aggregate initialization from the key and value.
  // NOLINTNEXTLINE(google-explicit-constructor)
  carried(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>) : v_(std::move(v)) {}
  T& get() noexcept { return v_; }
  const T& get() const noexcept { return v_; }

 private:
  T v_;
};

template <class T>
class carried<T, false> {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor)
  carried(T&& v) : p_(std::make_unique<T>(std::move(v))) {}
  T& get() noexcept { return *p_; }
  const T& get() const noexcept { return *p_; }

 private:
  std::unique_ptr<T> p_;
};

}  // namespace warden::detail
