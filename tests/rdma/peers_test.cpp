// Many QPs of one process on shared resources (one PD, one buffer, one CQ,
// optionally one SRQ), connected in loopback pairs on the device under test:
// completion routing, SRQ replenishment, teardown of one peer among many,
// completions of a QP no longer routed, and connect() through a handshake.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using shared_resources = rcq::resources<rcq::buffer::owned<1 << 20>>;

rcq::resources_options options(std::uint32_t qps, std::uint32_t srq_depth) {
    rcq::resources_options o;
    o.device = rdma_test::device_name();
    o.gid_index = rdma_test::gid_index();
    o.max_qps = qps;
    o.srq_depth = srq_depth;
    return o;
}

// The caller's object per QP: what the router hands completions to.
struct session {
    std::size_t index = 0;
    std::uint32_t qpn = 0;
    std::vector<ibv_wc> got;
};

// `n` QPs on one resources object, QP i connected to QP i ^ 1, each with a
// session routed by its QPN.
struct pairs {
    pairs(std::size_t n, std::uint32_t srq_depth)
        : res(options(static_cast<std::uint32_t>(n), srq_depth)), routes(n), sessions(n) {
        std::vector<rcq::qp<rcq::state::init>> fresh;
        std::vector<rcq::endpoint> locals;
        for (std::size_t i = 0; i < n; ++i) {
            fresh.push_back(res.make_qp());
            locals.push_back(res.local_endpoint(fresh.back()));
        }
        for (std::size_t i = 0; i < n; ++i) {
            qps.push_back(res.to_rts(std::move(fresh[i]), locals[i], locals[i ^ 1]));
            sessions[i] = {.index = i, .qpn = qps[i].qp_num(), .got = {}};
            EXPECT_EQ(routes.add(qps[i].qp_num(), sessions[i]), 0);
        }
    }

    int post_send(std::size_t i, std::size_t offset, std::uint32_t length, std::uint64_t wr_id) {
        const ibv_sge sge = rcq::local(res.buffer_policy(), offset, length);
        rcq::send_op wr(sge, wr_id);
        return qps[i].post_send(wr);
    }
    int post_recv(std::size_t i, std::size_t offset, std::uint32_t length, std::uint64_t wr_id) {
        const ibv_sge sge = rcq::local(res.buffer_policy(), offset, length);
        rcq::recv_wr wr(sge, wr_id);
        return qps[i].post_recv(wr);
    }

    // Routes completions until `done` holds, checking that each went to the
    // session of its QP; false after `timeout`.
    bool route_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s,
                     std::vector<ibv_wc>* unknown = nullptr) {
        const rcq::deadline until = rcq::deadline::after(timeout);
        ibv_wc batch[8];
        while (!done()) {
            const int n = routes.wait(
                res.poll_policy(), res.completion_queue(), batch, until,
                [](session& s, const ibv_wc& wc) {
                    EXPECT_EQ(wc.qp_num, s.qpn) << "completion routed to the wrong session";
                    s.got.push_back(wc);
                },
                [&](const ibv_wc& wc) {
                    if (unknown != nullptr)
                        unknown->push_back(wc);
                    else
                        ADD_FAILURE() << "completion of unknown QPN " << wc.qp_num;
                });
            if (n < 0) return false;
            if (n == 0 && until.expired()) return false;
        }
        return true;
    }

    shared_resources res;
    rcq::router<session> routes;
    std::vector<session> sessions;
    std::vector<rcq::qp<rcq::state::rts>> qps;
};

std::byte pattern(std::size_t message, std::size_t i) {
    return static_cast<std::byte>(message * 7 + i * 13 + 1);
}

std::size_t count_ok(const session& s, bool receives) {
    std::size_t n = 0;
    for (const ibv_wc& wc : s.got)
        n += wc.status == IBV_WC_SUCCESS && ((wc.opcode & IBV_WC_RECV) != 0) == receives;
    return n;
}

TEST(Peers, CompletionsOfEightQpsOnOneCqReachTheirOwnSession) {
    constexpr std::size_t qps = 8, messages = 16, size = 256, area = 2 * messages * size;
    pairs p(qps, 0);
    ASSERT_EQ(rcq::device_name(p.res.device()), rcq::context::open(rdma_test::device_name()).name());
    // QP i's area: its receive slots, then its send slots; wr_id = i * 1000 + k.
    for (std::size_t i = 0; i < qps; ++i)
        for (std::size_t k = 0; k < messages; ++k)
            ASSERT_EQ(p.post_recv(i, i * area + k * size, size, i * 1000 + k), 0);
    for (std::size_t i = 0; i < qps; ++i)
        for (std::size_t k = 0; k < messages; ++k) {
            const std::size_t at = i * area + (messages + k) * size;
            for (std::size_t b = 0; b < size; ++b) p.res.buffer()[at + b] = pattern(i * 100 + k, b);
            ASSERT_EQ(p.post_send(i, at, size, i * 1000 + 500 + k), 0);
        }
    ASSERT_TRUE(p.route_until([&] {
        for (const session& s : p.sessions)
            if (s.got.size() < 2 * messages) return false;
        return true;
    })) << "not every completion arrived";

    std::size_t checked = 0;
    for (const session& s : p.sessions) {
        ASSERT_EQ(s.got.size(), 2 * messages) << "session " << s.index;
        for (const ibv_wc& wc : s.got) {
            ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
            EXPECT_EQ(wc.wr_id / 1000, s.index) << "a completion of another QP, or its wr_id altered";
            if ((wc.opcode & IBV_WC_RECV) == 0) continue;
            // The receive of slot k holds message k of the partner QP.
            const std::size_t k = wc.wr_id % 1000, from = s.index ^ 1;
            ASSERT_EQ(wc.byte_len, size);
            for (std::size_t b = 0; b < size; ++b)
                ASSERT_EQ(p.res.buffer()[s.index * area + k * size + b], pattern(from * 100 + k, b))
                    << "session " << s.index << " message " << k << " byte " << b;
            ++checked;
        }
        EXPECT_EQ(count_ok(s, true), messages);
        EXPECT_EQ(count_ok(s, false), messages);
    }
    EXPECT_EQ(checked, qps * messages);
    EXPECT_EQ(p.routes.unknown(), 0u);
}

TEST(Peers, TheSrqPoolServesMoreMessagesThanItsDepthEveryByteChecked) {
    constexpr std::uint32_t slots = 16, slot_size = 512;
    constexpr std::size_t messages = 200, send_base = slots * slot_size;
    pairs p(4, slots);
    rcq::srq* shared = p.res.shared_receive_queue();
    ASSERT_NE(shared, nullptr);
    rcq::srq_pool pool(*shared, p.res.buffer(), p.res.buffer_policy().lkey(), slot_size, slots);
    ASSERT_EQ(pool.post_all(), 0);
    ASSERT_EQ(pool.posted(), slots);
    ASSERT_EQ(pool.repost(3), EALREADY) << "a posted slot must not be posted twice";
    ASSERT_EQ(pool.repost(slots), EINVAL);
    ASSERT_EQ(pool.taken(slots), EINVAL);
    ASSERT_TRUE(pool.bytes(slots).empty());
    EXPECT_THROW(rcq::srq_pool(*shared, p.res.buffer(), 0, 1 << 20, 2), rcq::error)
        << "slots beyond the memory";
    EXPECT_THROW(rcq::srq_pool(*shared, p.res.buffer(), 0, 0, 2), rcq::error);
    {
        rcq::srq spare(p.res.protection_domain(), 4);
        const rcq::srq kept = std::move(spare);
        // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
        EXPECT_THROW(rcq::srq_pool(spare, p.res.buffer(), 0, slot_size, 1), rcq::error)
            << "a pool on a moved-from srq would post to a null SRQ";
        EXPECT_NE(kept.get(), nullptr);
    }

    // Message m goes from QP m % 4 to its partner; in flight at most `slots`,
    // so that a receive is always posted for it (reposted before counting).
    std::size_t sent = 0, received = 0;
    std::vector<int> seen(messages, 0);
    auto size_of = [](std::size_t m) { return static_cast<std::uint32_t>(1 + (m * 37) % slot_size); };
    while (received < messages) {
        while (sent < messages && sent - received < slots) {
            const std::size_t at = send_base + (sent % slots) * slot_size;
            // The first 4 bytes name the message, the rest follow the pattern.
            const auto m32 = static_cast<std::uint32_t>(sent);
            std::memcpy(p.res.buffer().data() + at, &m32, 4);
            for (std::size_t b = 4; b < size_of(sent); ++b) p.res.buffer()[at + b] = pattern(sent, b);
            ASSERT_EQ(p.post_send(sent % 4, at, size_of(sent), sent), 0);
            ++sent;
        }
        ibv_wc batch[8];
        const int n = p.routes.wait(
            p.res.poll_policy(), p.res.completion_queue(), batch, rcq::deadline::after(10s),
            [&](session& s, const ibv_wc& wc) {
                ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << ibv_wc_status_str(wc.status);
                ASSERT_EQ(wc.qp_num, s.qpn);
                s.got.push_back(wc);
                if ((wc.opcode & IBV_WC_RECV) == 0) return;
                ASSERT_TRUE(rcq::srq_pool::owns(wc.wr_id));
                const std::uint32_t slot = rcq::srq_pool::slot_of(wc.wr_id);
                ASSERT_EQ(pool.taken(slot), 0);
                const auto bytes = pool.bytes(slot);
                std::uint32_t m = 0;
                std::memcpy(&m, bytes.data(), 4);
                ASSERT_LT(m, messages);
                ASSERT_EQ(wc.byte_len, size_of(m)) << "message " << m;
                EXPECT_EQ(s.index, (m % 4) ^ 1) << "message " << m << " arrived on the wrong QP";
                for (std::size_t b = 4; b < wc.byte_len; ++b)
                    ASSERT_EQ(bytes[b], pattern(m, b)) << "message " << m << " byte " << b;
                ++seen[m];
                ASSERT_EQ(pool.taken(slot), ENOENT) << "taken twice";
                ASSERT_EQ(pool.repost(slot), 0);
                ++received;
            },
            [](const ibv_wc& wc) { ADD_FAILURE() << "unknown QPN " << wc.qp_num; });
        ASSERT_GT(n, 0) << "no completion within 10 s; received " << received;
    }
    for (std::size_t m = 0; m < messages; ++m) EXPECT_EQ(seen[m], 1) << "message " << m;
    EXPECT_EQ(pool.posted(), slots);

    // Tearing down QP 0 flushes none of the SRQ's receives: they serve the others.
    // First collect the send completions still due.
    ASSERT_TRUE(p.route_until([&] {
        std::size_t sends = 0;
        for (const session& s : p.sessions) sends += count_ok(s, false);
        return sends == messages;
    }));
    const auto torn = rcq::tear_down(
        std::move(p.qps[0]), p.routes, p.res.poll_policy(), p.res.completion_queue(),
        [](session& s, const ibv_wc& wc) { ADD_FAILURE() << "session " << s.index << ": " << ibv_wc_status_str(wc.status); },
        [](const ibv_wc& wc) { ADD_FAILURE() << "unknown QPN " << wc.qp_num; });
    EXPECT_EQ(torn.own, 0u) << "an SRQ receive was flushed by one QP's ERROR";
    EXPECT_EQ(pool.posted(), slots);
    // QP 2 -> QP 3 still works through the same SRQ.
    std::memset(p.res.buffer().data() + send_base, 0x5a, 64);
    ASSERT_EQ(p.post_send(2, send_base, 64, 9999), 0);
    for (session& s : p.sessions) s.got.clear();
    ASSERT_TRUE(p.route_until([&] { return p.sessions[3].got.size() == 1 && p.sessions[2].got.size() == 1; }));
    const ibv_wc wc = p.sessions[3].got[0];
    ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
    ASSERT_EQ(wc.byte_len, 64u);
    ASSERT_EQ(pool.taken(rcq::srq_pool::slot_of(wc.wr_id)), 0);
    for (std::byte b : pool.bytes(rcq::srq_pool::slot_of(wc.wr_id)).first(64)) ASSERT_EQ(b, std::byte{0x5a});
}

TEST(Peers, TearingDownOnePeerRoutesItsFlushesToItAloneWhileTheOthersGoOn) {
    constexpr std::size_t qps = 6, size = 128;
    pairs p(qps, 0);
    // QP 1 goes first: with nothing outstanding, it has nothing to flush.
    const auto first = rcq::tear_down(
        std::move(p.qps[1]), p.routes, p.res.poll_policy(), p.res.completion_queue(),
        [](session& s, const ibv_wc& wc) { s.got.push_back(wc); },
        [](const ibv_wc& wc) { ADD_FAILURE() << "unknown QPN " << wc.qp_num; });
    EXPECT_EQ(first.own, 0u);
    EXPECT_EQ(first.others, 0u);
    // Its handle is empty now: tearing it down again is refused, not a crash,
    // and leaves the router alone.
    const std::size_t routed = p.routes.size();
    try {
        // NOLINTNEXTLINE(bugprone-use-after-move): the mistake under test
        (void)rcq::tear_down(std::move(p.qps[1]), p.routes, p.res.poll_policy(), p.res.completion_queue(),
                             [](session&, const ibv_wc&) {}, [](const ibv_wc&) {});
        ADD_FAILURE() << "tear_down of an empty handle was not refused";
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("empty rcq::qp handle"), std::string::npos) << e.what();
    }
    EXPECT_EQ(p.routes.size(), routed);
    // QP 0 has 8 receives that will never be filled, and 4 sends (2 of them
    // unsignaled) towards QP 1, which no longer answers: they stay in
    // transport retries (about 0.5 s) until QP 0 goes to ERROR.
    for (std::size_t k = 0; k < 8; ++k) ASSERT_EQ(p.post_recv(0, k * size, size, 700 + k), 0);
    for (std::size_t k = 0; k < 4; ++k) {
        const ibv_sge sge = rcq::local(p.res.buffer_policy(), 8192 + k * size, size);
        rcq::send_op wr(sge, 708 + k);
        wr.signaled(k % 2 == 0);
        ASSERT_EQ(p.qps[0].post_send(wr), 0);
    }
    // Pairs 2-3 and 4-5 exchange while QP 0 is torn down.
    auto exchange = [&](std::size_t round) {
        for (std::size_t i = 2; i < qps; ++i) {
            const std::size_t at = 65536 + (i * 4 + round % 4) * size;
            ASSERT_EQ(p.post_recv(i, at, size, round * 100 + i), 0);
        }
        for (std::size_t i = 2; i < qps; ++i) {
            const std::size_t at = 131072 + i * size;
            std::memset(p.res.buffer().data() + at, static_cast<int>(round * 16 + i), size);
            ASSERT_EQ(p.post_send(i, at, size, round * 100 + 50 + i), 0);
        }
    };
    exchange(0);
    std::size_t flushed_to_0 = 0;
    const auto torn = rcq::tear_down(
        std::move(p.qps[0]), p.routes, p.res.poll_policy(), p.res.completion_queue(),
        [&](session& s, const ibv_wc& wc) {
            EXPECT_EQ(wc.qp_num, s.qpn);
            if (s.index == 0) {
                EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);
                EXPECT_GE(wc.wr_id, 700u);
                EXPECT_LT(wc.wr_id, 712u);
                ++flushed_to_0;
            } else {
                EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << "session " << s.index << ": "
                                                     << ibv_wc_status_str(wc.status);
            }
            s.got.push_back(wc);
        },
        [](const ibv_wc& wc) { ADD_FAILURE() << "unknown QPN " << wc.qp_num; });
    // Every receive and every send, the unsignaled ones included: in ERROR
    // each work request completes.
    EXPECT_EQ(torn.own, 12u);
    EXPECT_EQ(flushed_to_0, 12u);
    EXPECT_EQ(torn.unknown, 0u);
    EXPECT_EQ(p.routes.find(p.sessions[0].qpn), nullptr) << "still routed after tear_down";
    EXPECT_EQ(p.routes.size(), qps - 2);
    std::cout << "[ info     ] teardown met " << torn.own << " flushes of its own and "
              << torn.others << " completions of the others\n";

    // The others go on, none of them saw a flush.
    for (std::size_t round = 1; round < 4; ++round) exchange(round);
    ASSERT_TRUE(p.route_until([&] {
        for (std::size_t i = 2; i < qps; ++i)
            if (p.sessions[i].got.size() < 8) return false;
        return true;
    }));
    for (std::size_t i = 2; i < qps; ++i)
        for (const ibv_wc& wc : p.sessions[i].got)
            EXPECT_EQ(wc.status, IBV_WC_SUCCESS) << "session " << i << ": " << ibv_wc_status_str(wc.status);
    EXPECT_TRUE(p.sessions[1].got.empty());
    for (std::size_t i = 2; i < qps; ++i) {
        EXPECT_EQ(count_ok(p.sessions[i], true), 4u) << i;
        const std::size_t last = 65536 + (i * 4 + 3) * size;
        EXPECT_EQ(p.res.buffer()[last], static_cast<std::byte>(3 * 16 + (i ^ 1)));
    }
}

TEST(Peers, ACompletionOfAQpNoLongerRoutedIsReportedNotDelivered) {
    pairs p(2, 0);
    ASSERT_EQ(p.post_recv(1, 0, 64, 77), 0);
    ASSERT_EQ(p.routes.remove(p.sessions[1].qpn), 0);
    ASSERT_EQ(p.post_send(0, 4096, 64, 78), 0);
    std::vector<ibv_wc> unknown;
    ASSERT_TRUE(p.route_until([&] { return !unknown.empty() && p.sessions[0].got.size() == 1; }, 10s,
                              &unknown));
    ASSERT_EQ(unknown.size(), 1u);
    EXPECT_EQ(unknown[0].qp_num, p.sessions[1].qpn);
    EXPECT_EQ(unknown[0].wr_id, 77u);
    EXPECT_EQ(p.routes.unknown(), 1u);
    EXPECT_TRUE(p.sessions[1].got.empty());
}

TEST(Peers, ConnectThroughTheTcpHandshakeOnSharedResources) {
    auto listening = rcq::handshake::tcp::server(0, 20s);
    const std::uint16_t port = listening.port();
    const char* ip = std::getenv("RCQ_IP");
    const std::string host = ip != nullptr ? ip : "127.0.0.1";
    auto server = std::async(std::launch::async, [&] {
        shared_resources res(options(2, 8));
        auto peer = res.connect(std::move(listening));
        rcq::srq_pool pool(*res.shared_receive_queue(), res.buffer(), res.buffer_policy().lkey(), 256, 8);
        EXPECT_EQ(pool.post_all(), 0);
        peer.ready();
        ibv_wc wc{};
        const int n = res.poll_policy().wait(res.completion_queue(), {&wc, 1}, rcq::deadline::after(10s));
        EXPECT_EQ(n, 1);
        EXPECT_EQ(wc.qp_num, peer.qp_num());
        EXPECT_EQ(wc.byte_len, 5u);
        return std::string(reinterpret_cast<const char*>(pool.bytes(rcq::srq_pool::slot_of(wc.wr_id)).data()), 5);
    });
    shared_resources res(options(2, 0));
    auto peer = res.connect(rcq::handshake::tcp::client(host, port, 20s));
    EXPECT_FALSE(peer.peer_gone());
    EXPECT_EQ(peer.local().qpn, peer.qp_num());
    peer.ready();
    std::memcpy(res.buffer().data(), "hello", 5);
    const ibv_sge sge = rcq::local(res.buffer_policy(), 0, 5);
    rcq::send_op wr(sge, 1);
    ASSERT_EQ(peer.queue_pair().post_send(wr), 0);
    ibv_wc wc{};
    ASSERT_EQ(res.poll_policy().wait(res.completion_queue(), {&wc, 1}, rcq::deadline::after(10s)), 1);
    EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
    EXPECT_EQ(server.get(), "hello");
}

// make_qp, local_endpoint and to_rts only read the resources: four
// handshakes at once on each side, each on its own thread.
TEST(Peers, ConnectsOnSeveralThreadsAtOnceShareOneResources) {
    constexpr std::size_t n = 4;
    const char* ip = std::getenv("RCQ_IP");
    const std::string host = ip != nullptr ? ip : "127.0.0.1";
    shared_resources servers(options(n, 0)), clients(options(n, 0));
    std::vector<rcq::handshake::tcp> listening;
    for (std::size_t i = 0; i < n; ++i) listening.push_back(rcq::handshake::tcp::server(0, 20s));
    std::vector<std::uint16_t> ports;
    for (auto& l : listening) ports.push_back(l.port());
    std::vector<std::future<rcq::peer<rcq::handshake::tcp>>> accepted, connected;
    for (std::size_t i = 0; i < n; ++i) {
        accepted.push_back(std::async(std::launch::async, [&, i] {
            return servers.connect(std::move(listening[i]));
        }));
        connected.push_back(std::async(std::launch::async, [&, i] {
            return clients.connect(rcq::handshake::tcp::client(host, ports[i], 20s));
        }));
    }
    std::vector<rcq::peer<rcq::handshake::tcp>> server_side, client_side;
    for (std::size_t i = 0; i < n; ++i) {
        server_side.push_back(accepted[i].get());
        client_side.push_back(connected[i].get());
        EXPECT_EQ(server_side[i].remote().qpn, client_side[i].qp_num());
        EXPECT_EQ(client_side[i].remote().qpn, server_side[i].qp_num());
    }
    // One message each way per pair, routed on each side's one CQ.
    struct tally { std::size_t index = 0; std::size_t recvs = 0; };
    std::vector<tally> s_tally(n), c_tally(n);
    rcq::router<tally> s_routes(n), c_routes(n);
    for (std::size_t i = 0; i < n; ++i) {
        s_tally[i].index = c_tally[i].index = i;
        ASSERT_EQ(s_routes.add(server_side[i].qp_num(), s_tally[i]), 0);
        ASSERT_EQ(c_routes.add(client_side[i].qp_num(), c_tally[i]), 0);
        const ibv_sge s_sge = rcq::local(servers.buffer_policy(), i * 64, 64);
        rcq::recv_wr s_wr(s_sge, i);
        ASSERT_EQ(server_side[i].queue_pair().post_recv(s_wr), 0);
    }
    std::vector<std::future<void>> ready;
    for (std::size_t i = 0; i < n; ++i)
        ready.push_back(std::async(std::launch::async, [&, i] { server_side[i].ready(); }));
    for (std::size_t i = 0; i < n; ++i) {
        client_side[i].ready();
        std::memset(clients.buffer().data() + 4096 + i * 64, static_cast<int>(0x40 + i), 64);
        const ibv_sge sge = rcq::local(clients.buffer_policy(), 4096 + i * 64, 64);
        rcq::send_op wr(sge, 100 + i);
        ASSERT_EQ(client_side[i].queue_pair().post_send(wr), 0);
    }
    for (auto& r : ready) r.get();
    std::size_t received = 0;
    const rcq::deadline until = rcq::deadline::after(10s);
    ibv_wc batch[8];
    while (received < n && !until.expired()) {
        const int got = s_routes.wait(
            servers.poll_policy(), servers.completion_queue(), batch, until,
            [&](tally& t, const ibv_wc& wc) {
                EXPECT_EQ(wc.status, IBV_WC_SUCCESS);
                EXPECT_EQ(wc.wr_id, t.index) << "routed to the wrong peer";
                ++t.recvs;
                ++received;
            },
            [](const ibv_wc& wc) { ADD_FAILURE() << "unknown QPN " << wc.qp_num; });
        ASSERT_GE(got, 0);
    }
    ASSERT_EQ(received, n);
    for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(s_tally[i].recvs, 1u);
        EXPECT_EQ(servers.buffer()[i * 64 + 63], static_cast<std::byte>(0x40 + i));
    }
}

} // namespace
