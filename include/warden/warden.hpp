// The umbrella header: everything public in warden.
#pragma once

#include "warden/actor.hpp"
#include "warden/any_cache.hpp"
#include "warden/cache.hpp"
#include "warden/change_feed.hpp"
#include "warden/clock.hpp"
#include "warden/codec.hpp"
#include "warden/error.hpp"
#include "warden/options.hpp"
#include "warden/owner_pool.hpp"
#include "warden/stats.hpp"
#include "warden/table.hpp"
#include "warden/transaction.hpp"
#include "warden/versioned.hpp"

namespace warden {
static_assert(cache<table<int, int>>);
static_assert(cache<actor<int, int>>);
static_assert(cache<any_cache<int, int>>);
}  // namespace warden
