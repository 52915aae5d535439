// What the two hidden-visibility libraries of this test export (see CMakeLists.txt).
#pragma once

#include <atomic>
#include <cstdint>

#include <warden/warden.hpp>

namespace warden_vis {

using table = warden::table<std::uint64_t, std::uint64_t>;
inline constexpr std::uint64_t kTotal = 1000;  // the two keys always sum to this

}  // namespace warden_vis

#define WARDEN_VIS_EXPORT extern "C" __attribute__((visibility("default")))

// libwarden_vis_owner: makes the table (its owner thread runs this library's code), moves
// units between keys 1 and 2 with transact, destroys it.
WARDEN_VIS_EXPORT warden_vis::table* warden_vis_make();
WARDEN_VIS_EXPORT void warden_vis_transfer(warden_vis::table* t, int transfers);
WARDEN_VIS_EXPORT void warden_vis_destroy(warden_vis::table* t);
WARDEN_VIS_EXPORT const void* warden_vis_owner_registry();

// libwarden_vis_reader: reads the table (snapshots and pins, this library's read path) until
// `stop`, returning how many reads saw the two keys not summing to kTotal.
WARDEN_VIS_EXPORT std::uint64_t warden_vis_read(const warden_vis::table* t,
                                                const std::atomic<bool>* stop);
WARDEN_VIS_EXPORT const void* warden_vis_reader_registry();
