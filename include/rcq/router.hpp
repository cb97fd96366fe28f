// rcq/router.hpp - completions of many QPs on one CQ, routed by wc.qp_num to
// the caller's per-peer object.
#pragma once

#include <rcq/config.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/error.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace rcq {

/// Routes work completions of QPs that share a CQ to the caller's object
/// for each QP (a `Target`, e.g. a per-peer session), by the QP number the
/// completion carries (wc.qp_num). The caller's wr_id is left alone: it
/// still names the operation within that peer.
///
///     rcq::router<session> routes(64);
///     routes.add(p.qp_num(), s);                     // one per peer
///     ibv_wc batch[16];
///     routes.poll(res.completion_queue(), batch,
///                 [](session& s, const ibv_wc& wc) { s.done(wc); },
///                 [](const ibv_wc& wc) { /* a QP no longer routed */ });
///
/// An open-addressing table (linear probing, at most half full, deletion by
/// backward shift, so no tombstones pile up) allocated once, when the router
/// is made, for `capacity` QPs: add, remove and find take constant time on
/// average and never allocate. QPNs are 24 bits; higher bits of a key are
/// ignored, as verbs ignores them. The router holds pointers: each Target
/// must stay where it is while routed (remove it before moving or
/// destroying it). Not thread safe.
template <class Target>
class router {
public:
    /// The largest capacity: every 24-bit QPN.
    static constexpr std::size_t max_capacity = std::size_t(1) << 24;

    /// A router for up to `capacity` QPs at a time (1 to max_capacity); its
    /// table of 2 to 4 x capacity slots is the only allocation it makes.
    /// Throws rcq::error for a capacity out of range.
    explicit router(std::size_t capacity) : capacity_(capacity) {
        if (capacity == 0 || capacity > max_capacity)
            throw_invalid("rcq::router capacity " + std::to_string(capacity) +
                              " is out of range",
                          "route 1 to 2^24 QPs (QPNs are 24 bits)");
        unsigned bits = 1;
        while ((std::size_t(1) << bits) < 2 * capacity) ++bits;
        shift_ = 32 - bits;
        mask_ = (std::size_t(1) << bits) - 1;
        slots_ = std::make_unique<slot[]>(mask_ + 1);
    }

    router(const router&) = delete;
    router& operator=(const router&) = delete;
    /// Takes over the table.
    router(router&&) noexcept = default;
    /// Takes over the table.
    router& operator=(router&&) noexcept = default;

    /// Routes completions of QP `qpn` to `target`. Returns 0, EEXIST when
    /// `qpn` is routed already (nothing changes), or ENOSPC when `capacity`
    /// QPs are routed.
    [[nodiscard]] int add(std::uint32_t qpn, Target& target) noexcept {
        const std::uint32_t key = qpn & qpn_mask;
        std::size_t i = home(key);
        for (; slots_[i].target != nullptr; i = (i + 1) & mask_)
            if (slots_[i].key == key) return EEXIST;
        if (size_ == capacity_) return ENOSPC;
        slots_[i] = {key, &target};
        ++size_;
        return 0;
    }

    /// Stops routing QP `qpn`. Returns 0, or ENOENT when it was not routed.
    /// Its completions met later count as unknown().
    [[nodiscard]] int remove(std::uint32_t qpn) noexcept {
        const std::uint32_t key = qpn & qpn_mask;
        std::size_t i = home(key);
        for (;; i = (i + 1) & mask_) {
            if (slots_[i].target == nullptr) return ENOENT;
            if (slots_[i].key == key) break;
        }
        // Backward shift: move later entries of the probe run into the hole
        // when the hole lies on their way from their home slot.
        for (std::size_t j = (i + 1) & mask_; slots_[j].target != nullptr; j = (j + 1) & mask_) {
            const std::size_t h = home(slots_[j].key);
            const bool hole_on_way = ((j - h) & mask_) >= ((j - i) & mask_);
            if (hole_on_way) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i] = {};
        --size_;
        return 0;
    }

    /// The target of QP `qpn`, or nullptr when it is not routed.
    [[nodiscard]] RCQ_ALWAYS_INLINE Target* find(std::uint32_t qpn) const noexcept {
        const std::uint32_t key = qpn & qpn_mask;
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.key == key) return s.target; // nullptr for an empty slot keyed 0
            if (s.target == nullptr) return nullptr;
        }
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
    // An empty slot has target nullptr; its key is 0 or, after a removal, 0 too.
    struct slot {
        std::uint32_t key = 0;
        Target* target = nullptr;
    };

    // Fibonacci hashing: QPNs are often consecutive; the multiply spreads them.
    RCQ_ALWAYS_INLINE std::size_t home(std::uint32_t key) const noexcept {
        return static_cast<std::size_t>((key * 2654435769u) >> shift_) & mask_;
    }

    std::unique_ptr<slot[]> slots_;
    std::size_t mask_ = 0;
    unsigned shift_ = 31;
    std::size_t capacity_ = 0;
    std::size_t size_ = 0;
    std::uint64_t unknown_ = 0;
};

} // namespace rcq
