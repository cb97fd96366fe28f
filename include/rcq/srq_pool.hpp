// rcq/srq_pool.hpp - receive buffers of a shared receive queue, carved out
// of registered memory and replenished as they are consumed.
#pragma once

#include <rcq/config.hpp>
#include <rcq/error.hpp>
#include <rcq/srq.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace rcq {

/// Carves registered memory into `slots` fixed slots of `slot_size` bytes
/// and keeps one receive posted on a shared receive queue for each slot that
/// the caller is not holding. A receive completion names its slot in its
/// wr_id (slot_of); once the caller is done with the bytes it calls
/// repost(slot) and the slot serves the next message, from whichever QP.
///
///     rcq::srq_pool pool(*res.shared_receive_queue(), res.buffer(),
///                        res.buffer_policy().lkey(), 4096, 64);
///     if (pool.post_all() != 0) ...              // before the go-ahead
///     ... on a receive completion wc:
///     const std::uint32_t slot = rcq::srq_pool::slot_of(wc.wr_id);
///     if (pool.taken(slot) != 0) ...             // the slot is the caller's now
///     ... use pool.bytes(slot).first(wc.byte_len), then:
///     if (pool.repost(slot) != 0) ...
///
/// repost and post_all take constant time per slot, never allocate and
/// never throw: they return 0 or an errno value. The pool's only allocation
/// is its table of which slots are posted, made with it. A slot is posted at
/// most once: reposting a posted slot is refused (EALREADY), since two
/// receives into one slot would let two messages overwrite each other.
///
/// Verbs semantics the caller relies on: receives posted on an SRQ are taken
/// by whichever of its QPs gets a SEND first, in posting order; a QP that
/// goes to ERROR does not flush them (they stay for the other QPs), only the
/// receive it was filling. The SRQ must have room for `slots` receives
/// (srq_depth >= slots), or posting fails with the provider's errno (ENOMEM
/// on most). Not thread safe; must not outlive the SRQ and the memory.
class srq_pool {
public:
    /// The upper 32 bits of every wr_id the pool posts, so that its
    /// completions can be told from the caller's own (owns()).
    static constexpr std::uint32_t wr_id_tag = 0x53525150; // "SRQP"

    /// A pool over the first slots x slot_size bytes of `memory`, registered
    /// with `lkey`, posting to `shared`. Nothing is posted yet (post_all()).
    /// Throws rcq::error when `shared` is empty (moved from), when the slots
    /// do not fit in `memory`, or for a zero size.
    srq_pool(srq& shared, std::span<std::byte> memory, std::uint32_t lkey,
             std::uint32_t slot_size, std::uint32_t slots)
        : srq_(shared.get()), base_(memory.data()), lkey_(lkey), slot_size_(slot_size),
          slots_(slots) {
        if (srq_ == nullptr)
            throw_invalid("rcq::srq_pool on an empty rcq::srq (it was moved from)",
                          "pass the srq it was moved to");
        if (slot_size == 0 || slots == 0)
            throw_invalid("rcq::srq_pool with " + std::to_string(slots) + " slots of " +
                              std::to_string(slot_size) + " bytes",
                          "ask for at least one slot of at least one byte");
        if (std::uint64_t(slot_size) * slots > memory.size())
            throw_invalid("rcq::srq_pool: " + std::to_string(slots) + " slots of " +
                              std::to_string(slot_size) + " bytes need " +
                              std::to_string(std::uint64_t(slot_size) * slots) +
                              " bytes, the memory has " + std::to_string(memory.size()),
                          "use a larger buffer, fewer slots or smaller ones");
        posted_ = std::make_unique<bool[]>(slots);
    }

    srq_pool(const srq_pool&) = delete;
    srq_pool& operator=(const srq_pool&) = delete;

    /// Posts a receive for every slot not posted yet. Returns 0, or the
    /// errno value of the first ibv_post_srq_recv that failed (the slots
    /// before it are posted).
    [[nodiscard]] int post_all() noexcept {
        for (std::uint32_t s = 0; s < slots_; ++s)
            if (!posted_[s])
                if (const int rc = repost(s); rc != 0) return rc;
        return 0;
    }

    /// Posts the receive of `slot` again, once its completion was taken()
    /// and the caller is done with its bytes. Returns 0, EINVAL for a slot
    /// out of range, EALREADY when it is posted already (its completion was
    /// not taken(); nothing is posted), or the errno value of
    /// ibv_post_srq_recv.
    [[nodiscard]] RCQ_ALWAYS_INLINE int repost(std::uint32_t slot) noexcept {
        if (slot >= slots_) [[unlikely]] return EINVAL;
        if (posted_[slot]) [[unlikely]] return EALREADY;
        ibv_sge sge{.addr = reinterpret_cast<std::uintptr_t>(base_) + std::uint64_t(slot) * slot_size_,
                    .length = slot_size_,
                    .lkey = lkey_};
        ibv_recv_wr wr{};
        wr.wr_id = (std::uint64_t(wr_id_tag) << 32) | slot;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        ibv_recv_wr* bad = nullptr;
        const int rc = ibv_post_srq_recv(srq_, &wr, &bad);
        if (rc == 0) {
            posted_[slot] = true;
            ++outstanding_;
        }
        return rc;
    }

    /// Whether `wr_id` is one of the pool's receives.
    static constexpr bool owns(std::uint64_t wr_id) noexcept { return (wr_id >> 32) == wr_id_tag; }

    /// The slot a receive completion's wr_id names (its lower 32 bits; check
    /// owns() first where other wr_ids can appear).
    static constexpr std::uint32_t slot_of(std::uint64_t wr_id) noexcept {
        return static_cast<std::uint32_t>(wr_id);
    }

    /// Marks `slot` as the caller's: call it for each receive completion of
    /// the pool (success or not), before repost(slot). Returns 0, EINVAL for a slot
    /// out of range, or ENOENT when the slot was not posted.
    [[nodiscard]] RCQ_ALWAYS_INLINE int taken(std::uint32_t slot) noexcept {
        if (slot >= slots_) [[unlikely]] return EINVAL;
        if (!posted_[slot]) [[unlikely]] return ENOENT;
        posted_[slot] = false;
        --outstanding_;
        return 0;
    }

    /// The bytes of `slot` (empty for a slot out of range).
    std::span<std::byte> bytes(std::uint32_t slot) const noexcept {
        if (slot >= slots_) return {};
        return {base_ + std::size_t(slot) * slot_size_, slot_size_};
    }

    /// Bytes per slot.
    std::uint32_t slot_size() const noexcept { return slot_size_; }
    /// Number of slots.
    std::uint32_t slots() const noexcept { return slots_; }
    /// Slots with a receive posted now.
    std::uint32_t posted() const noexcept { return outstanding_; }

private:
    ibv_srq* srq_;
    std::byte* base_;
    std::uint32_t lkey_;
    std::uint32_t slot_size_;
    std::uint32_t slots_;
    std::uint32_t outstanding_ = 0;
    std::unique_ptr<bool[]> posted_;
};

} // namespace rcq
