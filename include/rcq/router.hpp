// rcq/router.hpp - completions of many QPs on one CQ, routed by wc.qp_num to
// the caller's per-peer object.
#pragma once

#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/misuse.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <sys/mman.h>
#include <utility>

namespace rcq {

/// Routes work completions of QPs that share a CQ to the caller's object
/// for each QP (a `Target`, e.g. a per-peer session), by the QP number the
/// completion carries (wc.qp_num). The caller's wr_id is left alone: it
/// still names the operation within that peer.
///
///     rcq::router<session> routes(64);
///     if (routes.add(p.qp_num(), s) != 0) ...        // one per peer
///     ibv_wc batch[16];
///     routes.poll(res.completion_queue(), batch,
///                 [](session& s, const ibv_wc& wc) { s.done(wc); },
///                 [](const ibv_wc& wc) { /* a QP no longer routed */ });
///
/// A direct table: one pointer per 24-bit QPN, so that a lookup is one load
/// (no hashing, no probing) and add and remove are one store. The table is
/// 128 MiB of address space, reserved once when the router is made
/// (mmap, MAP_NORESERVE); only the pages that hold routed QPNs become memory,
/// 4 KiB per 512 neighbouring QPNs, so a router for a few thousand peers costs
/// a few MiB at most, and devices hand out neighbouring QPNs. Nothing is
/// allocated afterwards. `capacity` bounds how many QPs are routed at a time.
/// QPNs are 24 bits; higher bits of a key are ignored, as verbs ignores them.
/// The router holds pointers: each Target must stay where it is while routed
/// (remove it before moving or destroying it). A moved-from router is empty:
/// assign to it or destroy it; add() and remove() on it return EBADF, and
/// find(), dispatch() and poll() on it stop the program with a message when
/// RCQ_DEBUG_CHECKS is on (they are the hot path) and are undefined
/// otherwise. Not thread safe.
template <class Target>
class router {
public:
    /// The largest capacity: every 24-bit QPN.
    static constexpr std::size_t max_capacity = std::size_t(1) << 24;

    /// A router for up to `capacity` QPs at a time (1 to max_capacity).
    /// Throws rcq::error for a capacity out of range, or when the address
    /// space for the table cannot be reserved.
    explicit router(std::size_t capacity) : capacity_(capacity) {
        if (capacity == 0 || capacity > max_capacity)
            throw_invalid("rcq::router capacity " + std::to_string(capacity) +
                              " is out of range",
                          "route 1 to 2^24 QPs (QPNs are 24 bits)");
        void* table = ::mmap(nullptr, table_bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (table == MAP_FAILED)
            throw_error("rcq::router: mmap of " + std::to_string(table_bytes >> 20) +
                            " MiB of address space for its table",
                        "the process's address space is limited (ulimit -v)");
        table_ = static_cast<Target**>(table);
    }

    router(const router&) = delete;
    router& operator=(const router&) = delete;
    /// Takes over the table; `other` is left empty.
    router(router&& other) noexcept
        : table_(std::exchange(other.table_, nullptr)), capacity_(other.capacity_),
          size_(std::exchange(other.size_, 0)), unknown_(other.unknown_) {}
    /// Takes over the table; `other` is left empty.
    router& operator=(router&& other) noexcept {
        if (this != &other) {
            unmap();
            table_ = std::exchange(other.table_, nullptr);
            capacity_ = other.capacity_;
            size_ = std::exchange(other.size_, 0);
            unknown_ = other.unknown_;
        }
        return *this;
    }
    ~router() { unmap(); }

    /// Routes completions of QP `qpn` to `target`. Returns 0, EEXIST when
    /// `qpn` is routed already (nothing changes), ENOSPC when `capacity`
    /// QPs are routed, or EBADF on a moved-from router.
    [[nodiscard]] int add(std::uint32_t qpn, Target& target) noexcept {
        if (table_ == nullptr) return EBADF;
        Target*& slot = table_[qpn & qpn_mask];
        if (slot != nullptr) return EEXIST;
        if (size_ == capacity_) return ENOSPC;
        slot = &target;
        ++size_;
        return 0;
    }

    /// Stops routing QP `qpn`. Returns 0, ENOENT when it was not routed, or
    /// EBADF on a moved-from router. Its completions met later count as
    /// unknown().
    [[nodiscard]] int remove(std::uint32_t qpn) noexcept {
        if (table_ == nullptr) return EBADF;
        Target*& slot = table_[qpn & qpn_mask];
        if (slot == nullptr) return ENOENT;
        slot = nullptr;
        --size_;
        return 0;
    }

    /// The target of QP `qpn`, or nullptr when it is not routed.
    [[nodiscard]] RCQ_ALWAYS_INLINE Target* find(std::uint32_t qpn) const noexcept {
        RCQ_DEBUG_CHECK(table_ != nullptr, "lookup in a moved-from rcq::router: it has no table; "
                                           "use the router it was moved to, or assign a new one");
        return table_[qpn & qpn_mask];
    }

    /// Hands each completion of `batch` to `on_completion(Target&, const
    /// ibv_wc&)`, or to `on_unknown(const ibv_wc&)` when its QP is not routed
    /// (e.g. a peer already torn down), counting those in unknown().
    template <class OnCompletion, class OnUnknown>
    RCQ_ALWAYS_INLINE void dispatch(std::span<const ibv_wc> batch, OnCompletion&& on_completion,
                                    OnUnknown&& on_unknown) {
        for (const ibv_wc& wc : batch) {
            if (Target* t = find(wc.qp_num)) [[likely]]
                on_completion(*t, wc);
            else {
                ++unknown_;
                on_unknown(wc);
            }
        }
    }

    /// One ibv_poll_cq for up to batch.size() completions, then dispatch().
    /// Returns how many were taken (0: none ready) or the negative value of
    /// a failed poll. Never blocks, never allocates, throws nothing itself.
    template <class OnCompletion, class OnUnknown>
    [[nodiscard]] RCQ_ALWAYS_INLINE int poll(const cq& c, std::span<ibv_wc> batch,
                                             OnCompletion&& on_completion, OnUnknown&& on_unknown) {
        const int n = c.poll(batch);
        if (n > 0) dispatch(batch.first(static_cast<std::size_t>(n)), on_completion, on_unknown);
        return n;
    }

    /// Waits with poll policy `p` until completions arrive or `until` passes,
    /// then dispatch(). Returns as the policy's wait: > 0 taken, 0 at the
    /// deadline, < 0 when polling failed.
    template <class Poll, class OnCompletion, class OnUnknown>
    [[nodiscard]] int wait(Poll& p, const cq& c, std::span<ibv_wc> batch, const deadline& until,
                           OnCompletion&& on_completion, OnUnknown&& on_unknown) {
        const int n = p.wait(c, batch, until);
        if (n > 0) dispatch(batch.first(static_cast<std::size_t>(n)), on_completion, on_unknown);
        return n;
    }

    /// QPs routed now.
    std::size_t size() const noexcept { return size_; }
    /// QPs that can be routed at a time.
    std::size_t capacity() const noexcept { return capacity_; }
    /// Completions met for QPs that were not routed, since the router was made.
    std::uint64_t unknown() const noexcept { return unknown_; }

private:
    static constexpr std::uint32_t qpn_mask = 0xffffff;
    static constexpr std::size_t table_bytes = (std::size_t(qpn_mask) + 1) * sizeof(Target*);

    void unmap() noexcept {
        if (table_ != nullptr) ::munmap(table_, table_bytes);
        table_ = nullptr;
    }

    Target** table_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t size_ = 0;
    std::uint64_t unknown_ = 0;
};

} // namespace rcq
