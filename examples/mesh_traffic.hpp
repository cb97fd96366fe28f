// The traffic of rdma_mesh.cpp (and of the rdma test of the file mesh):
// every rank sends one message to every other rank and checks the one it
// receives from each, byte for byte.
#pragma once

#include <rcq/rcq.hpp>
#include <rcq/mesh.hpp>

#include <infiniband/verbs.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace example {

/// Bytes of each message.
inline constexpr std::uint32_t mesh_message_size = 128;

/// What the mesh's buffer must hold for `ranks` ranks: a receive slot and a
/// send slot per rank.
inline constexpr std::size_t mesh_buffer_needed(int ranks) {
    return 2 * static_cast<std::size_t>(ranks) * mesh_message_size;
}

/// Byte `k` of the message from rank `from` to rank `to`: a line of text
/// naming both, then a pattern of both ranks and the offset, so that a
/// message delivered to the wrong rank, or from the wrong one, or cut short
/// differs from the expected one.
inline std::array<std::byte, mesh_message_size> mesh_message(int from, int to) {
    std::array<std::byte, mesh_message_size> m{};
    char head[64];
    const int n = std::snprintf(head, sizeof head, "rcq mesh: rank %d to rank %d\n", from, to);
    for (std::size_t k = 0; k < m.size(); ++k)
        m[k] = k < static_cast<std::size_t>(n)
                   ? static_cast<std::byte>(head[k])
                   : static_cast<std::byte>((from * 131 + to * 17 + static_cast<int>(k)) & 0xff);
    return m;
}

/// What one rank saw.
struct mesh_outcome {
    int checked = 0;            ///< messages received and found right
    std::vector<std::string> problems; ///< each wrong or missing message or failed completion
};

/// Posts a receive from every peer, calls m.ready(), sends to every peer,
/// and waits (until `budget` is spent) for every send and receive, checking
/// each received message. Uses the resources' buffer (at least
/// mesh_buffer_needed(size) bytes), poll policy and CQ; completions are
/// routed to peers by QP number (rcq::router).
template <class Resources, class Handshake>
mesh_outcome run_mesh_traffic(Resources& res, rcq::mesh<Handshake>& m, std::chrono::milliseconds budget) {
    struct peer_state {
        int rank = 0;
        bool sent = false;
        bool received = false;
    };
    mesh_outcome out;
    const int self = m.rank();
    const auto n = static_cast<std::size_t>(m.size());
    const std::span<std::byte> buffer = res.buffer();
    if (buffer.size() < mesh_buffer_needed(m.size())) {
        out.problems.push_back("the buffer holds " + std::to_string(buffer.size()) + " bytes, " +
                               std::to_string(mesh_buffer_needed(m.size())) + " needed");
        return out;
    }
    auto recv_slot = [](int peer) { return static_cast<std::size_t>(peer) * mesh_message_size; };
    auto send_slot = [n](int peer) { return (n + static_cast<std::size_t>(peer)) * mesh_message_size; };

    std::vector<peer_state> peers(n);
    rcq::router<peer_state> routes(n);
    for (std::size_t j = 0; j < n; ++j) peers[j].rank = static_cast<int>(j);
    for (int j : m.peers()) {
        if (routes.add(m.qp_num(j), peers[static_cast<std::size_t>(j)]) != 0)
            out.problems.push_back("cannot route the QP to rank " + std::to_string(j));
        const ibv_sge sge = rcq::local(res.buffer_policy(), recv_slot(j), mesh_message_size);
        rcq::recv_wr wr(sge, static_cast<std::uint64_t>(j));
        if (int rc = m.queue_pair(j).post_recv(wr); rc != 0)
            out.problems.push_back("post_recv for rank " + std::to_string(j) + ": errno " + std::to_string(rc));
    }
    m.ready(); // every rank's receives are posted
    for (int j : m.peers()) {
        const auto message = mesh_message(self, j);
        std::copy(message.begin(), message.end(), buffer.begin() + static_cast<std::ptrdiff_t>(send_slot(j)));
        const ibv_sge sge = rcq::local(res.buffer_policy(), send_slot(j), mesh_message_size);
        rcq::send_op wr(sge, static_cast<std::uint64_t>(j));
        if (int rc = m.queue_pair(j).post_send(wr); rc != 0)
            out.problems.push_back("post_send to rank " + std::to_string(j) + ": errno " + std::to_string(rc));
    }

    const rcq::deadline until = rcq::deadline::after(budget);
    std::size_t outstanding = 2 * (n - 1);
    std::array<ibv_wc, 16> batch{};
    auto on_completion = [&](peer_state& p, const ibv_wc& wc) {
        --outstanding;
        const std::string who = "rank " + std::to_string(p.rank);
        if (wc.status != IBV_WC_SUCCESS) {
            out.problems.push_back("completion for " + who + ": " + ibv_wc_status_str(wc.status));
            return;
        }
        if ((wc.opcode & IBV_WC_RECV) == 0) {
            p.sent = true;
            return;
        }
        p.received = true;
        const auto expected = mesh_message(p.rank, self);
        const auto got = buffer.subspan(recv_slot(p.rank), mesh_message_size);
        if (wc.byte_len != mesh_message_size || !std::equal(expected.begin(), expected.end(), got.begin()))
            out.problems.push_back("the message from " + who + " is wrong (" + std::to_string(wc.byte_len) +
                                   " bytes)");
        else
            ++out.checked;
    };
    auto on_unknown = [&](const ibv_wc& wc) {
        --outstanding;
        out.problems.push_back("a completion of unknown QP " + std::to_string(wc.qp_num));
    };
    while (outstanding > 0) {
        const int got = routes.wait(res.poll_policy(), res.completion_queue(), batch, until, on_completion,
                                    on_unknown);
        if (got < 0) {
            out.problems.push_back("polling the CQ failed: errno " + std::to_string(-got));
            break;
        }
        if (got == 0) {
            for (const auto& p : peers)
                if (p.rank != self && (!p.sent || !p.received))
                    out.problems.push_back(std::string("rank ") + std::to_string(p.rank) + ": " +
                                           (p.sent ? "" : "send not completed ") +
                                           (p.received ? "" : "nothing received") + " within " +
                                           std::to_string(budget.count()) + " ms");
            break;
        }
    }
    return out;
}

} // namespace example
