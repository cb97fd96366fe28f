// rcq::handshake::tcp_listener over loopback, with fake endpoints: many
// clients at once, strangers and stalled clients that hold up nobody, one
// client's failure that ends only its own handshake, and every wait bounded.
#include "raw_peer.hpp"
#include "support.hpp"

#include <rcq/handshake/tcp.hpp>
#include <rcq/handshake/tcp_listener.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using rcq::handshake::tcp;
using rcq::handshake::tcp_listener;
using rcq::handshake::tcp_listener_options;
using rcq::handshake::tcp_reply;
using unit_test::bytes_until_close;
using unit_test::endpoint_with;
using unit_test::endpoint_with_memory;
using unit_test::error_of;
using unit_test::raw_connect;
using unit_test::raw_send;
using unit_test::unique_fd;
using unit_test::wire_of;
using clock_type = std::chrono::steady_clock;

// Our endpoint for a client: derived from the client's, so that each client
// can check it got its own answer.
rcq::endpoint answer_to(const rcq::endpoint& remote) { return endpoint_with(remote.qpn + 1000); }

// A client as the examples run it: exchange(), then barrier(). Returns the
// server's endpoint.
rcq::endpoint run_client(std::uint16_t port, std::uint32_t qpn, std::chrono::milliseconds budget = 20s) {
    auto client = tcp::client("127.0.0.1", port, budget);
    auto server_ep = client.exchange(endpoint_with(qpn));
    client.barrier();
    return server_ep;
}

// The attached object of these tests: the qpn prepare() saw.
auto prepare_echo = [](const rcq::endpoint& remote) { return tcp_reply<std::uint32_t>{answer_to(remote), remote.qpn}; };

TEST(TcpListener, ServesManyClientsAtOnceEachWithItsOwnAnswer) {
    tcp_listener<std::uint32_t> listener(0);
    constexpr std::uint32_t clients = 48;
    std::vector<std::future<rcq::endpoint>> sides;
    for (std::uint32_t i = 1; i <= clients; ++i)
        sides.push_back(std::async(std::launch::async, run_client, listener.port(), i, 20s));
    std::set<std::uint32_t> seen;
    for (std::uint32_t i = 0; i < clients; ++i) {
        auto got = listener.accept(prepare_echo, 20s);
        got.link.barrier(); // our go-ahead, which the client waits for
        EXPECT_EQ(got.attached, got.link.remote().qpn);
        EXPECT_EQ(got.link.remote(), endpoint_with(got.attached));
        EXPECT_EQ(got.local, answer_to(got.link.remote()));
        EXPECT_THAT(got.link.address(), HasSubstr("127.0.0.1:"));
        seen.insert(got.attached);
    }
    EXPECT_EQ(seen.size(), clients);
    for (std::uint32_t i = 1; i <= clients; ++i) EXPECT_EQ(sides[i - 1].get(), answer_to(endpoint_with(i)));
    EXPECT_EQ(listener.pending(), 0u);
    EXPECT_EQ(listener.refused(), 0u);
    EXPECT_TRUE(listener.is_open()); // still listening after all of them
}

// accept() returns once the client's go-ahead is in; the client waits in
// its barrier() until the caller sends ours (link.barrier()), so the caller
// can route the QP before the client may send.
TEST(TcpListener, TheClientWaitsForOurGoAheadUntilTheCallerSendsIt) {
    tcp_listener<std::uint32_t> listener(0);
    auto side = std::async(std::launch::async, run_client, listener.port(), 3u, 20s);
    auto got = listener.accept(prepare_echo, 20s);
    EXPECT_EQ(side.wait_for(300ms), std::future_status::timeout) << "the client's barrier() returned early";
    got.link.barrier();
    EXPECT_EQ(side.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(side.get(), answer_to(endpoint_with(3)));
}

TEST(TcpListener, ASilentConnectionAndAScannerFirstHoldUpNobody) {
    tcp_listener<std::uint32_t> listener(0, {.hello_timeout = 3s});
    auto silent = raw_connect(listener.port());
    auto scanner = raw_connect(listener.port());
    ::shutdown(scanner.get(), SHUT_WR); // connects and closes, like a port scan
    auto silent_got = std::async(std::launch::async, [&] { return bytes_until_close(silent); });
    auto scanner_got = std::async(std::launch::async, [&] { return bytes_until_close(scanner); });

    const auto start = clock_type::now();
    std::vector<std::future<rcq::endpoint>> sides;
    for (std::uint32_t i = 1; i <= 4; ++i)
        sides.push_back(std::async(std::launch::async, run_client, listener.port(), i, 20s));
    for (int i = 0; i < 4; ++i) listener.accept(prepare_echo, 20s).link.barrier();
    EXPECT_LT(clock_type::now() - start, 3s) << "served only after the silent one's cut-off";
    for (auto& s : sides) s.get();
    EXPECT_EQ(scanner_got.get(), 0u);
    EXPECT_GE(listener.refused(), 1u); // the scanner
    EXPECT_THAT(listener.last_refusal(), HasSubstr("closed the connection after 0 of"));

    // The silent one is cut off at its own deadline, and learns nothing.
    EXPECT_THAT(error_of([&] { listener.accept(prepare_echo, 4s); }, ETIMEDOUT),
                HasSubstr("no client completed its handshake within 4 s"));
    EXPECT_EQ(silent_got.get(), 0u);
    EXPECT_EQ(listener.refused(), 2u);
    EXPECT_THAT(listener.last_refusal(), HasSubstr("sent 0 of " + std::to_string(rcq::endpoint_wire_size) +
                                                   " bytes of a message in 3 s"));
}

// A client that sends its endpoint, reads our answer and then stalls before
// its go-ahead (its QP never reaches RTS) holds up nobody; at its own
// deadline accept() reports it, and the listener goes on.
TEST(TcpListener, AClientThatNeverSendsItsGoAheadHoldsUpNobody) {
    tcp_listener<std::uint32_t> listener(0, {.talk_timeout = 2s});
    auto stalled = raw_connect(listener.port());
    raw_send(stalled, wire_of(endpoint_with(77)));
    // Its answer: our endpoint; our go-ahead comes only after its own.
    std::vector<std::byte> answer;
    auto reader = std::async(std::launch::async, [&] {
        std::byte b[256];
        for (;;) {
            auto n = ::recv(stalled.get(), b, sizeof b, 0);
            if (n <= 0) return;
            answer.insert(answer.end(), b, b + n);
        }
    });

    const auto start = clock_type::now();
    std::vector<std::future<rcq::endpoint>> sides;
    for (std::uint32_t i = 1; i <= 3; ++i)
        sides.push_back(std::async(std::launch::async, run_client, listener.port(), i, 20s));
    std::set<std::uint32_t> served;
    for (int i = 0; i < 3; ++i) {
        auto got = listener.accept(prepare_echo, 20s);
        got.link.barrier();
        served.insert(got.attached);
    }
    EXPECT_EQ(served, (std::set<std::uint32_t>{1, 2, 3}));
    EXPECT_LT(clock_type::now() - start, 2s);
    EXPECT_EQ(listener.pending(), 1u); // the stalled one, waiting for its go-ahead

    auto msg = error_of([&] { listener.accept(prepare_echo, 10s); }, ETIMEDOUT);
    EXPECT_THAT(msg, HasSubstr("client 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("no go-ahead within 2 s of its endpoint (0 of 8 bytes of it came)"));
    EXPECT_EQ(listener.pending(), 0u);
    reader.get(); // the listener closed it
    ASSERT_EQ(answer.size(), rcq::endpoint_wire_size);
    EXPECT_EQ(rcq::decode(std::span(answer)), answer_to(endpoint_with(77)));

    // And it goes on.
    auto later = std::async(std::launch::async, run_client, listener.port(), 5u, 20s);
    auto got = listener.accept(prepare_echo, 20s);
    got.link.barrier();
    EXPECT_EQ(got.attached, 5u);
    EXPECT_EQ(later.get(), answer_to(endpoint_with(5)));
}

TEST(TcpListener, OneClientsFailureEndsOnlyItsOwnHandshake) {
    tcp_listener<std::uint32_t> listener(0);
    auto refuse_13 = [](const rcq::endpoint& remote) {
        if (remote.qpn == 13) rcq::throw_invalid("no QP for client 13", "a test's refusal", ENOMEM);
        return tcp_reply<std::uint32_t>{answer_to(remote), remote.qpn};
    };
    auto unlucky = std::async(std::launch::async, [&] {
        return error_of([&] { run_client(listener.port(), 13, 10s); }, ECONNRESET);
    });
    auto msg = error_of([&] { listener.accept(refuse_13, 20s); }, ENOMEM);
    EXPECT_THAT(msg, HasSubstr("tcp listener on port " + std::to_string(listener.port()) + ", client 127.0.0.1:"));
    EXPECT_THAT(msg, HasSubstr("no QP for client 13"));
    EXPECT_THAT(unlucky.get(), HasSubstr("the connection after 0 of"));

    // A client whose go-ahead is wrong: its error, named; then the next is served.
    auto wrong = raw_connect(listener.port());
    raw_send(wrong, wire_of(endpoint_with(14)));
    raw_send(wrong, unit_test::bytes_of("RCQX0000"));
    EXPECT_THAT(error_of([&] { listener.accept(refuse_13, 20s); }, EPROTO),
                HasSubstr("expected the go-ahead \"RCQG\" 00000000 from"));

    // A go-ahead of the other kind (tagged, to a listener without a secret):
    // refused as tcp::barrier() refuses it.
    auto tagged = raw_connect(listener.port());
    raw_send(tagged, wire_of(endpoint_with(16)));
    raw_send(tagged, unit_test::bytes_of(std::string("RCQG\0\0\0\x20", 8)));
    EXPECT_THAT(error_of([&] { listener.accept(refuse_13, 20s); }, EACCES),
                HasSubstr("is authenticated and this side has no shared secret"));

    // A client that closes after its endpoint, before its go-ahead.
    {
        auto quitter = raw_connect(listener.port());
        raw_send(quitter, wire_of(endpoint_with(15)));
        ::shutdown(quitter.get(), SHUT_WR);
        EXPECT_THAT(error_of([&] { listener.accept(refuse_13, 20s); }, ECONNRESET),
                    HasSubstr("closed the connection after 0 of 8 bytes of its go-ahead"));
    }

    auto fine = std::async(std::launch::async, run_client, listener.port(), 16u, 20s);
    auto got = listener.accept(refuse_13, 20s);
    got.link.barrier();
    EXPECT_EQ(got.attached, 16u);
    EXPECT_EQ(fine.get(), answer_to(endpoint_with(16)));
    EXPECT_EQ(listener.pending(), 0u);
}

TEST(TcpListener, AuthenticatedClientsAreServedAndAWrongSecretLearnsNothing) {
    auto secret = [](const char* text) {
        return rcq::shared_secret::from_bytes(std::as_bytes(std::span(text, std::strlen(text))));
    };
    tcp_listener<std::uint32_t> listener(0);
    listener.authenticate(secret("correct horse battery staple"));
    auto with_memory = [](const rcq::endpoint& remote) {
        return tcp_reply<std::uint32_t>{endpoint_with_memory(remote.qpn + 1000), remote.qpn};
    };
    auto impostor = std::async(std::launch::async, [&] {
        auto c = tcp::client("127.0.0.1", listener.port(), 10s);
        c.authenticate(secret("another secret, just as long"));
        return error_of([&] { c.exchange(endpoint_with_memory(66)); }, EACCES);
    });
    std::vector<std::future<rcq::endpoint>> sides;
    for (std::uint32_t i = 1; i <= 4; ++i)
        sides.push_back(std::async(std::launch::async, [&, i] {
            auto c = tcp::client("127.0.0.1", listener.port(), 20s);
            c.authenticate(secret("correct horse battery staple"));
            auto ep = c.exchange(endpoint_with_memory(i));
            c.barrier();
            return ep;
        }));
    for (int i = 0; i < 4; ++i) {
        auto got = listener.accept(with_memory, 20s);
        got.link.barrier();
        EXPECT_EQ(got.link.remote(), endpoint_with_memory(got.attached));
    }
    for (std::uint32_t i = 1; i <= 4; ++i) EXPECT_EQ(sides[i - 1].get(), endpoint_with_memory(i + 1000));
    // Handshakes move on only inside accept(): one more, for the impostor's.
    error_of([&] { listener.accept(with_memory, 1s); }, ETIMEDOUT);
    EXPECT_THAT(impostor.get(), HasSubstr("failed to authenticate"));
    // The impostor was challenged, found the server does not know its secret
    // and closed: a stranger to the listener, which sent it nothing more.
    EXPECT_EQ(listener.refused(), 1u);
}

TEST(TcpListener, AMemoryTokenWithoutASecretIsRefusedForThatClient) {
    tcp_listener<std::uint32_t> listener(0);
    auto with_memory = [](const rcq::endpoint& remote) {
        return tcp_reply<std::uint32_t>{endpoint_with_memory(remote.qpn + 1000), remote.qpn};
    };
    auto side = std::async(std::launch::async, [&] {
        return error_of([&] { run_client(listener.port(), 3, 10s); }, ECONNRESET);
    });
    EXPECT_THAT(error_of([&] { listener.accept(with_memory, 20s); }, EACCES),
                HasSubstr("refusing to send an endpoint that carries a memory token"));
    side.get(); // and nothing of ours reached it
    listener.allow_memory_without_secret();
    auto ok = std::async(std::launch::async, run_client, listener.port(), 4u, 20s);
    auto got = listener.accept(with_memory, 20s);
    got.link.barrier();
    EXPECT_EQ(got.attached, 4u);
    EXPECT_EQ(ok.get(), endpoint_with_memory(1004));
}

TEST(TcpListener, EveryWaitIsBounded) {
    tcp_listener<std::uint32_t> listener(0, {.hello_timeout = 300ms});
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { listener.accept(prepare_echo, 200ms); }, ETIMEDOUT),
                HasSubstr("(0 in progress, 0 refused so far)"));
    EXPECT_LT(clock_type::now() - start, 2s);
    EXPECT_GE(clock_type::now() - start, 200ms);

    // A client sending one byte at a time is cut off at hello_timeout.
    auto slow = raw_connect(listener.port());
    auto slow_side = std::async(std::launch::async, [&] {
        unit_test::send_slowly(slow, wire_of(endpoint_with(1)), 100ms);
        return bytes_until_close(slow);
    });
    EXPECT_THAT(error_of([&] { listener.accept(prepare_echo, 1s); }, ETIMEDOUT), HasSubstr("1 refused so far"));
    EXPECT_EQ(slow_side.get(), 0u);
    EXPECT_THAT(listener.last_refusal(), HasSubstr("of a message in 300 ms"));

    EXPECT_THAT(error_of([] { tcp_listener<> l(0, {.hello_timeout = 0ms}); }, EINVAL), HasSubstr("must be positive"));
    EXPECT_THAT(error_of([] { tcp_listener<> l(0, {.talk_timeout = -1ms}); }, EINVAL), HasSubstr("must be positive"));
    EXPECT_THAT(error_of([] { tcp_listener<> l(0, {.max_pending = 0}); }, EINVAL), HasSubstr("max_pending is 0"));
}

TEST(TcpListener, PortInUseStopAndMove) {
    tcp_listener<std::uint32_t> listener(0);
    EXPECT_THAT(error_of([&] { tcp_listener<> again(listener.port()); }, EADDRINUSE),
                HasSubstr("is already in use"));
    auto moved = std::move(listener);
    EXPECT_FALSE(listener.is_open()); // NOLINT(bugprone-use-after-move): the moved-from state is the test
    EXPECT_THAT(error_of([&] { listener.accept(prepare_echo, 1s); }, EINVAL), HasSubstr("after stop()"));
    EXPECT_TRUE(moved.is_open());
    const auto port = moved.port();
    moved.stop();
    moved.stop(); // idempotent
    EXPECT_FALSE(moved.is_open());
    EXPECT_THAT(error_of([&] { moved.accept(prepare_echo, 1s); }, EINVAL), HasSubstr("after stop()"));
    EXPECT_THROW(raw_connect(port), std::runtime_error); // the port is closed
}

// More connections than max_pending: the oldest that has not delivered its
// endpoint gives way, so a flood of silent connections cannot lock clients out.
TEST(TcpListener, SilentConnectionsBeyondMaxPendingGiveWayToClients) {
    tcp_listener<std::uint32_t> listener(0, {.max_pending = 4});
    std::vector<unique_fd> silent;
    for (int i = 0; i < 8; ++i) silent.push_back(raw_connect(listener.port()));
    auto side = std::async(std::launch::async, run_client, listener.port(), 9u, 20s);
    auto got = listener.accept(prepare_echo, 5s);
    got.link.barrier();
    EXPECT_EQ(got.attached, 9u);
    side.get();
    EXPECT_GE(listener.refused(), 4u);
    EXPECT_LE(listener.pending(), 4u);
}

TEST(TcpListener, TheAcceptedLinkIsTheLivenessSignal) {
    tcp_listener<std::uint32_t> listener(0);
    std::promise<void> done;
    auto side = std::async(std::launch::async, [&] {
        auto c = tcp::client("127.0.0.1", listener.port(), 20s);
        c.exchange(endpoint_with(1));
        c.barrier();
        done.get_future().wait(); // stays connected until told
    });
    auto got = listener.accept(prepare_echo, 20s);
    EXPECT_FALSE(got.link.peer_closed());
    got.link.barrier(); // our go-ahead: the client's barrier() returns
    got.link.barrier(); // once only: a second call returns at once
    EXPECT_THAT(error_of([&] { got.link.exchange(got.local); }, EINVAL), HasSubstr("remote()"));
    done.set_value();
    side.get(); // the client's tcp object is gone: its socket closed
    auto until = clock_type::now() + 5s;
    while (!got.link.peer_closed() && clock_type::now() < until) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(got.link.peer_closed());
    auto moved = std::move(got.link);
    EXPECT_FALSE(got.link.peer_closed()); // NOLINT(bugprone-use-after-move): moved-from has no connection
    EXPECT_EQ(got.link.fd(), -1);          // NOLINT(bugprone-use-after-move)
    moved.close();
    EXPECT_FALSE(moved.peer_closed());
    rcq::handshake::tcp_link unsent(unique_fd{}, "nowhere", endpoint_with(1), 1s,
                                    rcq::detail::tcp_go_ahead_message({}));
    EXPECT_THAT(error_of([&] { unsent.barrier(); }, EINVAL), HasSubstr("without a connection"));
}

} // namespace
