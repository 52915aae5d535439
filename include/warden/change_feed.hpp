// The change feed: c.subscribe(fn) delivers every batch the cache publishes, whole and in
// publication order, to fn(const warden::change_batch<K, V>&) on a notifier thread (never an
// owner). A transaction, across owners too, is one batch. What a subscriber may do and what
// happens to its exceptions is documented at subscribe() in README.md ("Change feed").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace warden {
namespace detail {
template <class K, class V>
class feed;
}  // namespace detail

enum class change_cause : std::uint8_t {
  write,   // a put, a successful insert_new/update/put_if_version, a transaction's write
  erase,   // an erase, take, erase_if, clear, or an update that returned nullopt
  evict,   // the size policy removed the entry (or refused it admission)
  expire,  // its time to live ran out
};

template <class K, class V>
struct change {
  K key;
  // write: the new value; erase, evict, expire: the value removed.
  std::optional<V> value;
  change_cause cause;
};

template <class K, class V>
class change_batch {
 public:
  using value_type = change<K, V>;
  using const_iterator = typename std::vector<value_type>::const_iterator;
  using iterator = const_iterator;

  change_batch(std::uint64_t sequence, std::vector<value_type> changes)
      : sequence_(sequence), changes_(std::move(changes)) {}

  // 1, 2, 3, ...: the batch's place in the cache's publication order.
  std::uint64_t sequence() const noexcept { return sequence_; }
  const_iterator begin() const noexcept { return changes_.begin(); }
  const_iterator end() const noexcept { return changes_.end(); }
  std::size_t size() const noexcept { return changes_.size(); }
  bool empty() const noexcept { return changes_.empty(); }
  const value_type& operator[](std::size_t i) const noexcept { return changes_[i]; }

 private:
  template <class, class>
  friend class detail::feed;
  std::uint64_t sequence_;
  std::vector<value_type> changes_;
};

namespace detail {
class feed_base {
 public:
  virtual ~feed_base() = default;
  virtual void unsubscribe(std::uint64_t id) noexcept = 0;
  virtual void sync(std::uint64_t id) = 0;
};
}  // namespace detail

// Movable RAII handle of a subscription: destroying it (or reset()) unsubscribes, and once
// that returns fn is not running and will not run again (unless it is fn itself that
// unsubscribes). May outlive the cache.
class subscription {
 public:
  subscription() = default;
  subscription(std::shared_ptr<detail::feed_base> feed, std::uint64_t id)
      : feed_(std::move(feed)), id_(id) {}
  subscription(subscription&& o) noexcept : feed_(std::move(o.feed_)), id_(o.id_) {}
  subscription& operator=(subscription&& o) noexcept {
    if (this != &o) {
      reset();
      feed_ = std::move(o.feed_);
      id_ = o.id_;
    }
    return *this;
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { reset(); }

  // Returns once every batch published before this call has been delivered to fn and fn has
  // returned. Rethrows (once) the first exception fn threw since the last sync().
  // reentrancy_error from inside fn (it would wait for itself).
  void sync() {
    if (feed_) feed_->sync(id_);
  }

  void reset() noexcept {
    if (feed_) {
      feed_->unsubscribe(id_);
      feed_.reset();
    }
  }

  explicit operator bool() const noexcept { return feed_ != nullptr; }

 private:
  std::shared_ptr<detail::feed_base> feed_;
  std::uint64_t id_ = 0;
};

}  // namespace warden
