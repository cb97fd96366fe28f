// rcq/wr.hpp - work requests whose opcode is part of their type.
#pragma once

#include <rcq/config.hpp>

#include <rcq/detail/misuse.hpp>
#include <rcq/error.hpp>
#include <rcq/remote.hpp>

#include <infiniband/verbs.h>
#include <arpa/inet.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rcq {

/// `length` bytes at `offset` of a registered region (anything with bytes()
/// and lkey(): rcq::mr, a buffer policy): one scatter/gather element. The
/// range must lie inside the region: checked with RCQ_DEBUG_CHECKS on (it is
/// on the hot path); otherwise the device refuses the request when it runs,
/// with a local protection error.
template <class Region>
ibv_sge local(const Region& region, std::size_t offset, std::uint32_t length) noexcept {
    RCQ_DEBUG_CHECK(offset <= region.bytes().size() && length <= region.bytes().size() - offset,
                    "rcq::local(region, offset, length): offset + length reaches past the "
                    "registered region; keep the element inside it");
    return {reinterpret_cast<std::uintptr_t>(region.bytes().data() + offset), length,
            region.lkey()};
}

namespace detail {
/// An RDMA WRITE or READ longer than the remote slice it targets.
[[noreturn, gnu::cold, gnu::noinline]] inline void remote_too_short(const char* op,
                                                                    std::uint32_t local,
                                                                    std::uint32_t remote) {
    throw_invalid(std::string(op) + " of " + std::to_string(local) + " bytes into a remote slice of " +
                      std::to_string(remote) + " bytes would reach past the slice",
                  "take a slice as long as the local element: peer.slice(offset, sge.length)",
                  ERANGE);
}
} // namespace detail

/// A send-queue work request with the opcode `Op` fixed at compile time. It
/// is an ibv_send_wr and nothing more (same size and layout), so it can go
/// wherever verbs take one; only the constructors that make sense for `Op`
/// exist. Signaled by default.
///
/// Lifetimes, as verbs has them: the request and the scatter/gather element
/// it points to are read by ibv_post_send (the provider copies what it needs
/// into its queue), so they must live until the post returns and may be
/// reused after. The memory the element describes is another matter: the
/// device reads or writes it after the post, so it must stay allocated and
/// registered, and unchanged for a send, until the request's completion (or
/// a later signaled one's, when unsignaled) has been polled. Inline sends
/// copy the data itself at post time, so their memory may be reused at once.
template <ibv_wr_opcode Op>
class send_wr : public ibv_send_wr {
public:
    /// The opcode, fixed by the type.
    static constexpr ibv_wr_opcode opcode_value = Op;

    /// SEND
    send_wr(const ibv_sge& sge, std::uint64_t id) noexcept
        requires(Op == IBV_WR_SEND)
        : ibv_send_wr(base(sge, id)) {}

    /// SEND with 32 bits of immediate data, delivered with the peer's RECV completion.
    send_wr(const ibv_sge& sge, std::uint64_t id, std::uint32_t imm) noexcept
        requires(Op == IBV_WR_SEND_WITH_IMM)
        : ibv_send_wr(base(sge, id)) {
        imm_data = htonl(imm);
    }

    /// RDMA WRITE or READ of `sge.length` bytes to or from `to`. Throws
    /// rcq::error (ERANGE) when `sge` is longer than the slice: the request
    /// would reach past what the peer advertised. Checked here, once, so
    /// that posting costs nothing more; the request points at `sge`, so its
    /// length must not grow after this.
    send_wr(const ibv_sge& sge, const remote_slice& to, std::uint64_t id)
        requires(Op == IBV_WR_RDMA_WRITE || Op == IBV_WR_RDMA_READ)
        : ibv_send_wr(base(sge, id)) {
        if (sge.length > to.length) [[unlikely]]
            detail::remote_too_short(Op == IBV_WR_RDMA_WRITE ? "RDMA WRITE" : "RDMA READ",
                                     sge.length, to.length);
        wr.rdma.remote_addr = to.addr;
        wr.rdma.rkey = to.rkey;
    }

    /// RDMA WRITE with immediate data: consumes one RECV at the peer.
    /// Checked against the slice as an RDMA WRITE is.
    send_wr(const ibv_sge& sge, const remote_slice& to, std::uint64_t id, std::uint32_t imm)
        requires(Op == IBV_WR_RDMA_WRITE_WITH_IMM)
        : ibv_send_wr(base(sge, id)) {
        if (sge.length > to.length) [[unlikely]]
            detail::remote_too_short("RDMA WRITE with immediate", sge.length, to.length);
        wr.rdma.remote_addr = to.addr;
        wr.rdma.rkey = to.rkey;
        imm_data = htonl(imm);
    }

    /// Compare-and-swap: if the word equals `compare`, it becomes `swap`;
    /// the old value lands in the 8 bytes `sge` points to.
    send_wr(const ibv_sge& sge, const remote_word& at, std::uint64_t id, std::uint64_t compare,
            std::uint64_t swap) noexcept
        requires(Op == IBV_WR_ATOMIC_CMP_AND_SWP)
        : ibv_send_wr(base(sge, id)) {
        wr.atomic.remote_addr = at.addr;
        wr.atomic.rkey = at.rkey;
        wr.atomic.compare_add = compare;
        wr.atomic.swap = swap;
    }

    /// Fetch-and-add: the word grows by `add`; its old value lands in `sge`.
    send_wr(const ibv_sge& sge, const remote_word& at, std::uint64_t id, std::uint64_t add) noexcept
        requires(Op == IBV_WR_ATOMIC_FETCH_AND_ADD)
        : ibv_send_wr(base(sge, id)) {
        wr.atomic.remote_addr = at.addr;
        wr.atomic.rkey = at.rkey;
        wr.atomic.compare_add = add;
    }

    /// A request points to its scatter/gather element, so a temporary one
    /// would dangle before the post: name it in a variable instead.
    template <class... Rest>
    send_wr(ibv_sge&&, Rest&&...) = delete;

    /// No completion for this request (selective signaling; see send_queue).
    send_wr& unsignaled() noexcept {
        send_flags &= ~unsigned(IBV_SEND_SIGNALED);
        return *this;
    }
    /// Asks (or not) for a completion of this request.
    send_wr& signaled(bool on = true) noexcept {
        send_flags = on ? (send_flags | IBV_SEND_SIGNALED) : (send_flags & ~unsigned(IBV_SEND_SIGNALED));
        return *this;
    }
    /// The data is copied at post time, so the buffer may be reused once the
    /// post returns and need not be registered; at most the QP's
    /// max_inline_data bytes. Not for READs or atomics, which bring data back.
    send_wr& inlined() noexcept
        requires(Op == IBV_WR_SEND || Op == IBV_WR_SEND_WITH_IMM || Op == IBV_WR_RDMA_WRITE ||
                 Op == IBV_WR_RDMA_WRITE_WITH_IMM)
    {
        send_flags |= IBV_SEND_INLINE;
        return *this;
    }
    /// Waits for earlier READs and atomics before this request starts.
    send_wr& fenced() noexcept {
        send_flags |= IBV_SEND_FENCE;
        return *this;
    }

    /// The length of its scatter/gather element.
    std::uint32_t length() const noexcept { return sg_list->length; }

private:
    static ibv_send_wr base(const ibv_sge& sge, std::uint64_t id) noexcept {
        ibv_send_wr w{};
        w.wr_id = id;
        w.sg_list = const_cast<ibv_sge*>(&sge); // verbs never writes through it
        w.num_sge = 1;
        w.opcode = Op;
        w.send_flags = IBV_SEND_SIGNALED;
        return w;
    }
};

using send_op = send_wr<IBV_WR_SEND>;
using send_imm_op = send_wr<IBV_WR_SEND_WITH_IMM>;
using write_op = send_wr<IBV_WR_RDMA_WRITE>;
using write_imm_op = send_wr<IBV_WR_RDMA_WRITE_WITH_IMM>;
using read_op = send_wr<IBV_WR_RDMA_READ>;
using compare_swap_op = send_wr<IBV_WR_ATOMIC_CMP_AND_SWP>;
using fetch_add_op = send_wr<IBV_WR_ATOMIC_FETCH_AND_ADD>;

static_assert(sizeof(send_op) == sizeof(ibv_send_wr) && sizeof(read_op) == sizeof(ibv_send_wr));
static_assert(sizeof(compare_swap_op) == sizeof(ibv_send_wr));

/// A receive work request: an ibv_recv_wr and nothing more.
class recv_wr : public ibv_recv_wr {
public:
    /// A receive into `sge` (which must outlive the request), with id `id`.
    recv_wr(const ibv_sge& sge, std::uint64_t id) noexcept : ibv_recv_wr{} {
        wr_id = id;
        sg_list = const_cast<ibv_sge*>(&sge);
        num_sge = 1;
    }
    /// A temporary element would dangle before the post: name it instead.
    recv_wr(ibv_sge&&, std::uint64_t) = delete;
};

static_assert(sizeof(recv_wr) == sizeof(ibv_recv_wr));

template <class W>
concept send_work_request = std::derived_from<W, ibv_send_wr> && sizeof(W) == sizeof(ibv_send_wr);

/// `N` send requests posted with one ibv_post_send (one doorbell), stored
/// in place without allocation. The links are made once, at construction;
/// set() replaces a request and keeps its link. Not movable: the links point
/// into the chain itself.
template <std::size_t N>
class wr_chain {
    static_assert(N > 0, "rcq::wr_chain<N>: N must be positive");

public:
    /// The number of work requests.
    static constexpr std::size_t size() noexcept { return N; }

    wr_chain() noexcept {
        for (std::size_t i = 0; i < N; ++i) wrs_[i].next = i + 1 < N ? &wrs_[i + 1] : nullptr;
    }
    wr_chain(const wr_chain&) = delete;
    wr_chain& operator=(const wr_chain&) = delete;

    template <send_work_request W>
    /// Puts a copy of `w` at position `i`, keeping the chain's links.
    void set(std::size_t i, const W& w) noexcept {
        RCQ_DEBUG_CHECK(i < N, "rcq::wr_chain::set(i, w): i is past the chain's end");
        ibv_send_wr* next = wrs_[i].next;
        wrs_[i] = w;
        wrs_[i].next = next;
    }
    /// The work request at `i`.
    ibv_send_wr& operator[](std::size_t i) noexcept {
        RCQ_DEBUG_CHECK(i < N, "rcq::wr_chain[i]: i is past the chain's end");
        return wrs_[i];
    }
    /// The first work request.
    ibv_send_wr& front() noexcept { return wrs_[0]; }
    /// The last work request.
    ibv_send_wr& back() noexcept { return wrs_[N - 1]; }

private:
    std::array<ibv_send_wr, N> wrs_{};
};

} // namespace rcq
