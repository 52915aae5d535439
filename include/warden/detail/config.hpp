// Build-time requirements and small portability macros shared by every warden header.
#pragma once

#include <absl/base/config.h>

#if defined(ABSL_LTS_RELEASE_VERSION)
static_assert(ABSL_LTS_RELEASE_VERSION >= 20220623, "warden needs Abseil LTS 20220623 or newer");
#endif

#if defined(__GNUC__) || defined(__clang__)
#define WARDEN_LIKELY(x) __builtin_expect(!!(x), 1)
#define WARDEN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WARDEN_NOINLINE __attribute__((noinline))

#define WARDEN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define WARDEN_LIKELY(x) (x)
#define WARDEN_UNLIKELY(x) (x)
#define WARDEN_NOINLINE
#define WARDEN_ALWAYS_INLINE inline
#endif

// Tests only: 1 makes every table owner compare its two copies after each replay and abort
// on a difference (O(entries) per batch). Must be the same in every TU of a program.
#ifndef WARDEN_CHECK_COPIES
#define WARDEN_CHECK_COPIES 0
#endif
#if WARDEN_CHECK_COPIES
#include <atomic>
#include <cstdint>
namespace warden::detail {
inline std::atomic<std::uint64_t> copies_checked_total{0};  // shards found equal
}  // namespace warden::detail
#endif
