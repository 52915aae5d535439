// The benchmark peers warden is compared against, all behind warden's cache calls:
//
//   key_type, mapped_type, name, thread_safe
//   get, contains, size, put, erase, flush, update_counter (arithmetic V only)
//
// so that each benchmark is written once, as a template over the cache type. Peers whose
// library may be missing are included only when CMake found it (the warden_bench_peers target
// defines WARDEN_HAVE_TBB, WARDEN_HAVE_LIBCUCKOO, WARDEN_HAVE_BOOST_CFM, WARDEN_HAVE_CAF).
#pragma once

#include <cstdint>

#include "peers/absl_maps.hpp"

#if defined(WARDEN_HAVE_TBB) && WARDEN_HAVE_TBB
#include "peers/tbb_map.hpp"
#endif
#if defined(WARDEN_HAVE_LIBCUCKOO) && WARDEN_HAVE_LIBCUCKOO
#include "peers/cuckoo_map.hpp"
#endif
#if defined(WARDEN_HAVE_BOOST_CFM) && WARDEN_HAVE_BOOST_CFM
#include "peers/boost_cfm.hpp"
#endif
#if defined(WARDEN_HAVE_CAF) && WARDEN_HAVE_CAF
#include "peers/caf_actor.hpp"
#endif

namespace warden_bench {

template <class... Caches>
struct type_list {};

namespace peers_detail {

template <class... Lists>
struct concat {
  using type = type_list<>;
};
template <class... As, class... Bs, class... Rest>
struct concat<type_list<As...>, type_list<Bs...>, Rest...>
    : concat<type_list<As..., Bs...>, Rest...> {};
template <class... As>
struct concat<type_list<As...>> {
  using type = type_list<As...>;
};

using u64 = std::uint64_t;
#if defined(WARDEN_HAVE_TBB) && WARDEN_HAVE_TBB
using tbb_peers = type_list<tbb_map<u64, u64>>;
#else
using tbb_peers = type_list<>;
#endif
#if defined(WARDEN_HAVE_LIBCUCKOO) && WARDEN_HAVE_LIBCUCKOO
using cuckoo_peers = type_list<cuckoo_map<u64, u64>>;
#else
using cuckoo_peers = type_list<>;
#endif
#if defined(WARDEN_HAVE_BOOST_CFM) && WARDEN_HAVE_BOOST_CFM
using boost_peers = type_list<boost_cfm<u64, u64>>;
#else
using boost_peers = type_list<>;
#endif
#if defined(WARDEN_HAVE_CAF) && WARDEN_HAVE_CAF
using caf_peers = type_list<caf_actor<u64, u64>>;
#else
using caf_peers = type_list<>;
#endif

}  // namespace peers_detail

// Every peer available in this build, for uint64_t -> uint64_t (the one instantiation every
// peer supports, the CAF actor included). The unsynchronized reference comes first; check
// Cache::thread_safe before sharing a peer between threads.
using u64_peers =
    typename peers_detail::concat<type_list<unsync_map<std::uint64_t, std::uint64_t>,
                                            shared_mutex_map<std::uint64_t, std::uint64_t>,
                                            mutex_map<std::uint64_t, std::uint64_t>>,
                                  peers_detail::tbb_peers, peers_detail::cuckoo_peers,
                                  peers_detail::boost_peers, peers_detail::caf_peers>::type;

// Calls f.template operator()<Cache>() for each type in the list, in order, e.g.
//   for_each_cache(u64_peers{}, []<class Cache>() { register_benchmarks<Cache>(); });
template <class... Caches, class F>
void for_each_cache(type_list<Caches...>, F&& f) {
  (f.template operator()<Caches>(), ...);
}

}  // namespace warden_bench
