// Authentication of the handshakes with a shared secret (rcq/secret.hpp):
// loading the secret, both sides proving they know it, replays refused, and
// the rule that a memory token goes only over an authenticated handshake
// unless the user says otherwise.
#include "support.hpp"

#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>
#include <rcq/detail/tcp_arrival.hpp>
#include <rcq/detail/tcp_go_ahead.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/secret.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::endpoint_with_memory;
using unit_test::error_of;

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using rcq::shared_secret;
using rcq::detail::unique_fd;
using rcq::handshake::tcp;
namespace fs = std::filesystem;

#if RCQ_WITH_SODIUM

shared_secret secret_of(std::string_view text) {
    return shared_secret::from_bytes(std::as_bytes(std::span(text.data(), text.size())));
}
const std::string secret_a = "correct horse battery staple";
const std::string secret_b = "another secret, just as long";

// ---- the secret ------------------------------------------------------------------

TEST(SharedSecret, TagsDependOnTheSecretAndEveryPart) {
    auto a = secret_of(secret_a);
    auto t = a.tag({"x", "yz"});
    EXPECT_TRUE(a.verify(t, {"x", "yz"}));
    EXPECT_FALSE(a.verify(t, {"xy", "z"})); // parts are framed: no ambiguity
    EXPECT_FALSE(secret_of(secret_b).verify(t, {"x", "yz"}));
    t[0] ^= 1;
    EXPECT_FALSE(a.verify(t, {"x", "yz"}));
}

TEST(SharedSecret, TooShortOrTooLongIsRefused) {
    EXPECT_THAT(error_of([] { secret_of("short"); }, EINVAL), HasSubstr("5 bytes, too short (at least 16)"));
    EXPECT_THAT(error_of([] { secret_of(""); }, EINVAL), HasSubstr("too short"));
    std::string huge(shared_secret::max_size + 1, 'x');
    EXPECT_THAT(error_of([&] { secret_of(huge); }, EINVAL), HasSubstr("longer than 4096 bytes"));
    secret_of(std::string(shared_secret::max_size, 'x')); // the largest is fine
}

TEST(SharedSecret, FromEnv) {
    ::setenv("RCQ_TEST_SECRET", (secret_a + "\n").c_str(), 1);
    auto s = shared_secret::from_env("RCQ_TEST_SECRET"); // the newline is not part of it
    EXPECT_TRUE(s.verify(secret_of(secret_a).tag({"p"}), {"p"}));
    ::unsetenv("RCQ_TEST_SECRET");
    EXPECT_THAT(error_of([] { shared_secret::from_env("RCQ_TEST_SECRET"); }, EINVAL),
                HasSubstr("$RCQ_TEST_SECRET is not set"));
}

TEST(SharedSecret, FromFileOnlyIfOthersCannotReadIt) {
    auto path = fs::temp_directory_path() / ("rcq-secret-" + std::to_string(::getpid()));
    std::ofstream(path) << secret_a << "\n";
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_TRUE(shared_secret::from_file(path).verify(secret_of(secret_a).tag({"p"}), {"p"}));
    fs::permissions(path, fs::perms::group_read, fs::perm_options::add);
    EXPECT_THAT(error_of([&] { shared_secret::from_file(path); }, EACCES),
                HasSubstr("is readable or writable by other users"));
    fs::remove(path);
    error_of([&] { shared_secret::from_file(path); }, ENOENT);
}

// ---- tcp ---------------------------------------------------------------------------

// Forwards one connection to `to_port` and records what went each way. With
// `replace`, the bytes the server sends from offset `at` on are replaced by
// those (a man in the middle who changes one message).
struct relay {
    std::uint16_t port = 0;
    std::vector<std::byte> client_bytes, server_bytes;
    std::future<void> done;

    explicit relay(std::uint16_t to_port, std::vector<std::byte> replace = {}, std::size_t at = 0) {
        unique_fd listener(::socket(AF_INET, SOCK_STREAM, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        ::listen(listener.get(), 1);
        socklen_t len = sizeof addr;
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
        port = ntohs(addr.sin_port);
        done = std::async(std::launch::async, [this, to_port, l = std::move(listener),
                                               replace = std::move(replace), at] {
            unique_fd a(::accept(l.get(), nullptr, nullptr));
            unique_fd b(::socket(AF_INET, SOCK_STREAM, 0));
            sockaddr_in to{};
            to.sin_family = AF_INET;
            to.sin_port = htons(to_port);
            to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ::connect(b.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);
            pollfd fds[2] = {{a.get(), POLLIN, 0}, {b.get(), POLLIN, 0}};
            std::byte buf[4096];
            for (;;) {
                if (::poll(fds, 2, 10000) <= 0) return;
                for (int i = 0; i < 2; ++i) {
                    if (fds[i].revents == 0) continue;
                    auto n = ::recv(fds[i].fd, buf, sizeof buf, 0);
                    if (n <= 0) return;
                    auto& log = i == 0 ? client_bytes : server_bytes;
                    for (ssize_t k = 0; i == 1 && k < n; ++k) {
                        auto offset = log.size() + static_cast<std::size_t>(k);
                        if (offset >= at && offset - at < replace.size()) buf[k] = replace[offset - at];
                    }
                    log.insert(log.end(), buf, buf + n);
                    ::send(fds[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL);
                }
            }
        });
    }
};

std::pair<rcq::endpoint, rcq::endpoint> tcp_pair(tcp& server, std::uint16_t port,
                                                 const std::string& client_secret) {
    auto client_side = std::async(std::launch::async, [port, client_secret] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.authenticate(secret_of(client_secret));
        auto peer = client.exchange(endpoint_with_memory(2));
        client.barrier();
        return peer;
    });
    auto at_server = server.exchange(endpoint_with_memory(1));
    server.barrier();
    return {at_server, client_side.get()};
}

// What each side sent in one honest authenticated exchange, recorded by a relay.
struct recording {
    std::vector<std::byte> client_bytes, server_bytes;
};

recording record_exchange() {
    auto server = tcp::server(0, 10s);
    server.authenticate(secret_of(secret_a));
    relay r(server.port());
    tcp_pair(server, r.port, secret_a);
    server.close();
    r.done.get();
    return {r.client_bytes, r.server_bytes};
}

TEST(TcpAuthentication, BothSidesWithTheSameSecret) {
    auto server = tcp::server(0, 10s);
    server.authenticate(secret_of(secret_a));
    auto [at_server, at_client] = tcp_pair(server, server.port(), secret_a);
    EXPECT_EQ(at_server, endpoint_with_memory(2));
    EXPECT_EQ(at_client, endpoint_with_memory(1));
}

TEST(TcpAuthentication, AnotherSecretIsRefusedByBothSides) {
    auto server = tcp::server(0, 2s);
    server.authenticate(secret_of(secret_a));
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.authenticate(secret_of(secret_b));
        return error_of([&] { client.exchange(endpoint_with_memory(2)); }, EACCES);
    });
    auto msg = error_of([&] { server.exchange(endpoint_with_memory(1)); }, ETIMEDOUT);
    EXPECT_THAT(msg, HasSubstr("1 connection(s) refused"));
    EXPECT_THAT(client_side.get(), HasSubstr("tcp client: the server at 127.0.0.1:" +
                                             std::to_string(server.port()) + " failed to authenticate"));
}

TEST(TcpAuthentication, ASideWithoutTheSecretIsRefused) {
    {
        auto server = tcp::server(0, 1500ms);
        server.authenticate(secret_of(secret_a));
        auto client_side = std::async(std::launch::async, [port = server.port()] {
            auto client = tcp::client("127.0.0.1", port, 10s);
            return error_of([&] { client.exchange(endpoint_with(2)); }, ECONNRESET);
        });
        EXPECT_THAT(error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT),
                    HasSubstr("the peer sent its endpoint without authenticating"));
        EXPECT_THAT(client_side.get(), HasSubstr("the connection after 0 of 8 bytes"));
    }
    {
        auto server = tcp::server(0, 1500ms);
        auto client_side = std::async(std::launch::async, [port = server.port()] {
            auto client = tcp::client("127.0.0.1", port, 10s);
            client.authenticate(secret_of(secret_a));
            return error_of([&] { client.exchange(endpoint_with(2)); }, ECONNRESET);
        });
        EXPECT_THAT(error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT),
                    HasSubstr("it asks for authentication and this server has no shared secret"));
        EXPECT_THAT(client_side.get(), HasSubstr("receiving the server's challenge"));
    }
}

TEST(TcpAuthentication, AReplayedClientIsRefusedAndTheRealOneServed) {
    // Record a genuine client's bytes through a relay...
    const auto recorded = record_exchange().client_bytes;
    // ...and play them to a new server: its fresh nonce makes the old tag useless.
    auto server = tcp::server(0, 10s);
    server.authenticate(secret_of(secret_a));
    unique_fd replay(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(replay.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::send(replay.get(), recorded.data(), recorded.size(), MSG_NOSIGNAL);
    auto short_server = std::move(server);
    // A real client after the replay is still served.
    auto [at_server, at_client] = tcp_pair(short_server, short_server.port(), secret_a);
    EXPECT_EQ(at_server, endpoint_with_memory(2));
    EXPECT_EQ(at_client, endpoint_with_memory(1));

    // Alone, the replay is refused with the reason.
    auto lone = tcp::server(0, 1500ms);
    lone.authenticate(secret_of(secret_a));
    unique_fd again(::socket(AF_INET, SOCK_STREAM, 0));
    addr.sin_port = htons(lone.port());
    ASSERT_EQ(::connect(again.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::send(again.get(), recorded.data(), recorded.size(), MSG_NOSIGNAL);
    EXPECT_THAT(error_of([&] { lone.exchange(endpoint_with(1)); }, ETIMEDOUT),
                HasSubstr("failed to authenticate: its tag does not verify"));
}

TEST(TcpAuthentication, AReplayedServerIsRefused) {
    const auto recorded = record_exchange().server_bytes;
    unique_fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listener.get(), 1);
    socklen_t len = sizeof addr;
    ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    auto fake = std::async(std::launch::async, [&] {
        unique_fd fd(::accept(listener.get(), nullptr, nullptr));
        std::byte hello[rcq::detail::tcp_hello_size];
        ::recv(fd.get(), hello, sizeof hello, MSG_WAITALL);
        ::send(fd.get(), recorded.data(), recorded.size(), MSG_NOSIGNAL);
        std::byte sink[256];
        while (::recv(fd.get(), sink, sizeof sink, 0) > 0) {
        }
    });
    auto client = tcp::client("127.0.0.1", ntohs(addr.sin_port), 10s);
    client.authenticate(secret_of(secret_a));
    EXPECT_THAT(error_of([&] { client.exchange(endpoint_with_memory(2)); }, EACCES),
                HasSubstr("failed to authenticate"));
    client.close();
    fake.get();
}

// ---- tcp: the go-ahead -------------------------------------------------------------

// What the server sends before its go-ahead: the challenge, its endpoint and its tag.
constexpr std::size_t server_bytes_before_go_ahead =
    rcq::detail::tcp_challenge_size + rcq::endpoint_wire_size + shared_secret::tag_size;
constexpr std::size_t go_ahead_size = rcq::detail::tcp_go_ahead_header_size + shared_secret::tag_size;

TEST(TcpAuthentication, TheGoAheadCarriesATag) {
    const auto server_bytes = record_exchange().server_bytes;
    ASSERT_EQ(server_bytes.size(), server_bytes_before_go_ahead + go_ahead_size);
    const std::string header(reinterpret_cast<const char*>(server_bytes.data()) +
                                 server_bytes_before_go_ahead, 8);
    EXPECT_EQ(header, std::string("RCQG\0\0\0\x20", 8));
}

// A side of a go-ahead swap over one end of a socket pair, the test playing
// the peer on the other end.
struct go_ahead_pair {
    unique_fd ours, theirs;
    rcq::detail::auth_nonce client_nonce = rcq::detail::fresh_nonce();
    rcq::detail::auth_nonce server_nonce = rcq::detail::fresh_nonce();
    shared_secret secret = secret_of(secret_a);
    go_ahead_pair() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
        ours.reset(fds[0]);
        theirs.reset(fds[1]);
    }
    rcq::detail::tcp_go_ahead_side side(bool server, int fd, const shared_secret* s) const {
        return {.fd = fd, .server = server, .secret = s, .client_nonce = client_nonce,
                .server_nonce = server_nonce, .who = server ? "tcp server" : "tcp client",
                .peer = "peer", .budget = "2 s"};
    }
    // The peer sends `message`; returns what our swap threw (or "" when it returned).
    std::string ours_with(bool server, const std::string& message, int code) {
        EXPECT_EQ(::send(theirs.get(), message.data(), message.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(message.size()));
        auto run = [&] { rcq::detail::swap_tcp_go_ahead(side(server, ours.get(), &secret), rcq::deadline::after(2s)); };
        if (code == 0) {
            run();
            return {};
        }
        return error_of(run, code);
    }
};

TEST(TcpGoAhead, TheHonestPeersGoAheadIsAccepted) {
    for (bool server : {true, false}) {
        go_ahead_pair p;
        auto honest = rcq::detail::tcp_go_ahead_message(p.side(!server, p.theirs.get(), &p.secret));
        EXPECT_EQ(honest.size(), go_ahead_size);
        p.ours_with(server, honest, 0);
    }
}

TEST(TcpGoAhead, AForgedGoAheadIsRefused) {
    go_ahead_pair p;
    auto forged = rcq::detail::tcp_go_ahead_message(p.side(false, p.theirs.get(), &p.secret));
    forged.back() = static_cast<char>(forged.back() ^ 1);
    EXPECT_THAT(p.ours_with(true, forged, EACCES),
                HasSubstr("tcp server: the go-ahead from peer failed to authenticate"));
    go_ahead_pair q; // a tag made with another secret
    auto other = secret_of(secret_b);
    EXPECT_THAT(q.ours_with(true, rcq::detail::tcp_go_ahead_message(q.side(false, q.theirs.get(), &other)),
                            EACCES),
                HasSubstr("failed to authenticate"));
}

TEST(TcpGoAhead, AGoAheadFromAnotherExchangeIsRefused) {
    go_ahead_pair old, now;
    auto recorded = rcq::detail::tcp_go_ahead_message(old.side(false, old.theirs.get(), &old.secret));
    EXPECT_THAT(now.ours_with(true, recorded, EACCES), HasSubstr("replayed from another exchange"));
}

TEST(TcpGoAhead, OurOwnGoAheadSentBackIsRefused) {
    for (bool server : {true, false}) {
        go_ahead_pair p;
        auto reflected = rcq::detail::tcp_go_ahead_message(p.side(server, p.theirs.get(), &p.secret));
        EXPECT_THAT(p.ours_with(server, reflected, EACCES), HasSubstr("or our own sent back"));
    }
}

TEST(TcpGoAhead, AGoAheadOfTheOtherKindIsRefused) {
    go_ahead_pair p;
    auto plain = rcq::detail::tcp_go_ahead_message(p.side(false, p.theirs.get(), nullptr));
    EXPECT_EQ(plain, std::string("RCQG\0\0\0\0", 8));
    EXPECT_THAT(p.ours_with(true, plain, EACCES), HasSubstr("tcp server: the go-ahead from peer is not authenticated"));
    // And the other way round: a tagged go-ahead to a side without a secret.
    go_ahead_pair q;
    auto tagged = rcq::detail::tcp_go_ahead_message(q.side(false, q.theirs.get(), &q.secret));
    ASSERT_EQ(::send(q.theirs.get(), tagged.data(), tagged.size(), MSG_NOSIGNAL), static_cast<ssize_t>(tagged.size()));
    EXPECT_THAT(error_of([&] { rcq::detail::swap_tcp_go_ahead(q.side(true, q.ours.get(), nullptr), rcq::deadline::after(2s)); },
                         EACCES),
                HasSubstr("is authenticated and this side has no shared secret"));
}

// A client's barrier() through a relay that replaces the server's go-ahead
// with `go_ahead`: the client's error (the server's barrier passes, the
// client's go-ahead coming through unchanged).
std::string client_barrier_with_server_go_ahead(const std::vector<std::byte>& go_ahead) {
    auto server = tcp::server(0, 10s);
    server.authenticate(secret_of(secret_a));
    relay r(server.port(), go_ahead, server_bytes_before_go_ahead);
    auto client_side = std::async(std::launch::async, [port = r.port] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.authenticate(secret_of(secret_a));
        client.exchange(endpoint_with_memory(2));
        return error_of([&] { client.barrier(); }, EACCES);
    });
    server.exchange(endpoint_with_memory(1));
    server.barrier();
    auto msg = client_side.get();
    EXPECT_THAT(msg, HasSubstr("tcp client: the go-ahead from 127.0.0.1:" + std::to_string(r.port) +
                               " failed to authenticate"));
    server.close();
    r.done.get();
    return msg;
}

TEST(TcpAuthentication, AGoAheadChangedOnTheWayIsRefused) {
    // A right header, a tag of zeros.
    std::vector<std::byte> forged(go_ahead_size, std::byte{0});
    std::copy_n(reinterpret_cast<const std::byte*>("RCQG\0\0\0\x20"), 8, forged.begin());
    client_barrier_with_server_go_ahead(forged);
}

TEST(TcpAuthentication, AGoAheadReplayedFromAnotherExchangeIsRefused) {
    const auto server_bytes = record_exchange().server_bytes;
    ASSERT_EQ(server_bytes.size(), server_bytes_before_go_ahead + go_ahead_size);
    const std::vector<std::byte> recorded(server_bytes.begin() + server_bytes_before_go_ahead, server_bytes.end());
    EXPECT_THAT(client_barrier_with_server_go_ahead(recorded), HasSubstr("replayed from another exchange"));
}

// ---- file ----------------------------------------------------------------------------

class FileAuthentication : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "rcq-auth-test-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir = pattern;
    }
    void TearDown() override { fs::remove_all(dir); }

    rcq::handshake::file side(const std::string& self, const std::string& peer,
                              const std::string* secret, std::chrono::milliseconds timeout = 10s) {
        rcq::handshake::file f(dir, "job42", self, peer, timeout);
        if (secret) f.authenticate(secret_of(*secret));
        return f;
    }

    std::string read(const std::string& name) {
        std::ifstream in(dir / name);
        return {std::istreambuf_iterator<char>(in), {}};
    }

    fs::path dir;
};

TEST_F(FileAuthentication, BothSidesWithTheSameSecret) {
    auto server = side("server", "client", &secret_a);
    auto client = side("client", "server", &secret_a);
    auto client_side = std::async(std::launch::async, [&] {
        auto peer = client.exchange(endpoint_with_memory(2));
        client.barrier();
        return peer;
    });
    EXPECT_EQ(server.exchange(endpoint_with_memory(1)), endpoint_with_memory(2));
    server.barrier();
    EXPECT_EQ(client_side.get(), endpoint_with_memory(1));
}

TEST_F(FileAuthentication, AnotherSecretIsRefused) {
    auto server = side("server", "client", &secret_a, 3s);
    auto client = side("client", "server", &secret_b, 3s);
    auto client_side = std::async(std::launch::async, [&]() -> int {
        try {
            client.exchange(endpoint_with(2));
        } catch (const rcq::error& e) {
            return e.code().value();
        }
        return 0;
    });
    int server_code = 0;
    try {
        server.exchange(endpoint_with(1));
    } catch (const rcq::error& e) {
        server_code = e.code().value();
        EXPECT_THAT(e.what(), HasSubstr("failed to authenticate: its tag does not verify"));
    }
    int client_code = client_side.get();
    EXPECT_EQ(server_code, EACCES);
    EXPECT_NE(client_code, 0); // EACCES too, or a timeout once the server gave up
}

TEST_F(FileAuthentication, AForgedFileWithAnOldTagIsRefused) {
    // The client waits; we read its fresh nonce and answer with a file that
    // acknowledges it but carries the tag of another exchange.
    auto client = side("client", "server", &secret_a, 5s);
    auto client_side = std::async(std::launch::async, [&] {
        return error_of([&] { client.exchange(endpoint_with(2)); }, EACCES);
    });
    std::string mine;
    for (int i = 0; i < 200 && mine.empty(); ++i) {
        std::this_thread::sleep_for(10ms);
        mine = read("job42.client.endpoint");
    }
    ASSERT_FALSE(mine.empty());
    auto nonce = mine.substr(mine.find("nonce ") + 6, 32);
    const std::string old_tag(64, 'a');
    std::string forged = "rcq-file-handshake 1\nfile endpoint\nsession job42\nside server\n"
                         "nonce 0123456789abcdef0123456789abcdef\nack " + nonce +
                         "\nhost h\npid 1\ntime 1\nendpoint " + rcq::to_text(endpoint_with(1)) +
                         "\ntag " + old_tag + "\n";
    std::ofstream(dir / ".forged") << forged;
    fs::rename(dir / ".forged", dir / "job42.server.endpoint");
    EXPECT_THAT(client_side.get(), HasSubstr("job42.server.endpoint failed to authenticate"));
}

TEST_F(FileAuthentication, AReadyFileWithTheTagOfTheOtherDirectionIsRefused) {
    // After an honest exchange the server waits at its barrier; we write the
    // client's ready file with the right nonces but the server's own
    // go-ahead tag (the other direction), then a forged tag: both refused.
    for (bool swap_direction : {true, false}) {
        auto server = side("server", "client", &secret_a, 5s);
        auto client = side("client", "server", &secret_a, 5s);
        auto client_side = std::async(std::launch::async, [&] { return client.exchange(endpoint_with(2)); });
        server.exchange(endpoint_with(1));
        client_side.get();
        auto field = [](const std::string& text, const std::string& key) {
            auto at = text.find("\n" + key + " ") + key.size() + 2;
            return text.substr(at, text.find('\n', at) - at);
        };
        auto client_file = read("job42.client.endpoint");
        auto client_nonce = field(client_file, "nonce");
        auto server_nonce = field(client_file, "ack");
        auto secret = secret_of(secret_a);
        auto tag = swap_direction
                       ? rcq::detail::go_ahead_tag(secret, {"file", "server", server_nonce, client_nonce})
                       : shared_secret::tag_type{};
        std::ofstream(dir / ".ready") << "rcq-file-handshake 1\nfile ready\nsession job42\nside client\nnonce "
                                      << client_nonce << "\nack " << server_nonce
                                      << "\nhost h\npid 1\ntime 1\ntag " << rcq::detail::hex_bytes(tag) << "\n";
        fs::rename(dir / ".ready", dir / "job42.client.ready");
        EXPECT_THAT(error_of([&] { server.barrier(); }, EACCES),
                    HasSubstr("job42.client.ready failed to authenticate"));
        fs::remove(dir / "job42.client.ready");
    }
}

TEST_F(FileAuthentication, APeerWithoutTheSecretIsRefused) {
    auto server = side("server", "client", nullptr, 3s);
    auto client = side("client", "server", &secret_a, 3s);
    auto server_side = std::async(std::launch::async, [&] {
        return error_of([&] { server.exchange(endpoint_with(1)); }, EACCES);
    });
    auto msg = error_of([&] { client.exchange(endpoint_with(2)); }, EACCES);
    EXPECT_THAT(msg, HasSubstr("is not authenticated (no tag line)"));
    EXPECT_THAT(server_side.get(), HasSubstr("is authenticated and this side has no shared secret"));
}

// ---- env -------------------------------------------------------------------------------

struct env_pipe {
    unique_fd read, write;
    env_pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

std::string take_line(const unique_fd& fd) {
    std::string line;
    for (;;) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 10000) != 1) return line + "<timeout>";
        char c;
        if (::read(fd.get(), &c, 1) != 1) return line + "<eof>";
        if (c == '\n') return line;
        line += c;
    }
}

void put_line(const unique_fd& fd, const std::string& line) {
    auto text = line + "\n";
    ASSERT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

// One env side: its pipes and its handshake, under its own variable.
struct env_side {
    env_pipe in, out;
    std::string variable;
    rcq::handshake::env hs;
    env_side(const std::string& name, const std::string* secret)
        : variable("RCQ_AUTH_TEST_" + name + std::to_string(::getpid())),
          hs(rcq::handshake::env_options{.timeout = 5s, .variable = variable, .in_fd = in.read.get(),
                                         .out_fd = out.write.get()}) {
        ::unsetenv(variable.c_str());
        if (secret) hs.authenticate(secret_of(*secret));
    }
    ~env_side() { ::unsetenv(variable.c_str()); }
};

// The lines of one authenticated exchange, as a launcher relays them.
struct env_lines {
    std::string first_endpoint, second_endpoint, first_go, second_go;
};

env_lines run_env_pair() {
    env_side a("A", &secret_a), b("B", &secret_a);
    auto first = std::async(std::launch::async, [&] {
        auto peer = a.hs.exchange(endpoint_with_memory(1));
        a.hs.barrier();
        return peer;
    });
    env_lines lines;
    lines.first_endpoint = take_line(a.out.read);
    ::setenv(b.variable.c_str(), lines.first_endpoint.c_str(), 1);
    auto second = std::async(std::launch::async, [&] {
        auto peer = b.hs.exchange(endpoint_with_memory(2));
        b.hs.barrier();
        return peer;
    });
    lines.second_endpoint = take_line(b.out.read);
    put_line(a.in.write, lines.second_endpoint);
    lines.first_go = take_line(a.out.read);
    put_line(b.in.write, lines.first_go);
    lines.second_go = take_line(b.out.read);
    put_line(a.in.write, lines.second_go);
    EXPECT_EQ(first.get(), endpoint_with_memory(2));
    EXPECT_EQ(second.get(), endpoint_with_memory(1));
    return lines;
}

TEST(EnvAuthentication, BothSidesWithTheSameSecret) {
    auto lines = run_env_pair();
    EXPECT_THAT(lines.first_endpoint, HasSubstr(" auth="));
    EXPECT_THAT(lines.first_go, HasSubstr("rcq-go auth="));
}

TEST(EnvAuthentication, AReplayedFirstSideIsRefusedAtTheBarrier) {
    auto old = run_env_pair();
    env_side b("B", &secret_a);
    ::setenv(b.variable.c_str(), old.first_endpoint.c_str(), 1); // authentic, but recorded
    b.hs.exchange(endpoint_with_memory(2));
    take_line(b.out.read);
    put_line(b.in.write, old.first_go);
    EXPECT_THAT(error_of([&] { b.hs.barrier(); }, EACCES),
                HasSubstr("the peer's go-ahead failed to authenticate"));
}

TEST(EnvAuthentication, ItsOwnGoAheadSentBackIsRefused) {
    for (bool first : {true, false}) {
        env_side a("A", &secret_a), b("B", &secret_a);
        if (first) { // A is started first: the peer's line arrives on its input
            auto a_side = std::async(std::launch::async, [&] { return a.hs.exchange(endpoint_with_memory(1)); });
            ::setenv(b.variable.c_str(), take_line(a.out.read).c_str(), 1);
            b.hs.exchange(endpoint_with_memory(2));
            put_line(a.in.write, take_line(b.out.read));
            a_side.get();
        } else { // A is started second: the peer's line is in its variable
            auto b_side = std::async(std::launch::async, [&] { return b.hs.exchange(endpoint_with_memory(2)); });
            ::setenv(a.variable.c_str(), take_line(b.out.read).c_str(), 1);
            a.hs.exchange(endpoint_with_memory(1));
            put_line(b.in.write, take_line(a.out.read));
            b_side.get();
        }
        auto barrier = std::async(std::launch::async,
                                  [&] { return error_of([&] { a.hs.barrier(); }, EACCES); });
        auto own = take_line(a.out.read);
        EXPECT_THAT(own, HasSubstr("rcq-go auth="));
        put_line(a.in.write, own); // A's own go-ahead, back to A
        EXPECT_THAT(barrier.get(), HasSubstr("this side's own go-ahead came back"));
    }
}

TEST(EnvAuthentication, AForgedGoAheadIsRefused) {
    env_side a("A", &secret_a), b("B", &secret_a);
    auto a_side = std::async(std::launch::async, [&] { return a.hs.exchange(endpoint_with_memory(1)); });
    ::setenv(b.variable.c_str(), take_line(a.out.read).c_str(), 1);
    b.hs.exchange(endpoint_with_memory(2));
    put_line(a.in.write, take_line(b.out.read));
    a_side.get();
    put_line(a.in.write, "rcq-go auth=" + std::string(64, '0'));
    EXPECT_THAT(error_of([&] { a.hs.barrier(); }, EACCES),
                HasSubstr("the peer's go-ahead failed to authenticate"));
}

TEST(EnvAuthentication, AReplayedSecondSideIsRefused) {
    auto old = run_env_pair();
    env_side a("A", &secret_a);
    put_line(a.in.write, old.second_endpoint);
    EXPECT_THAT(error_of([&] { a.hs.exchange(endpoint_with_memory(1)); }, EACCES),
                HasSubstr("it belongs to another exchange"));
}

TEST(EnvAuthentication, APeerWithoutTheSecretOrWithAnotherIsRefused) {
    {
        env_side a("A", &secret_a);
        put_line(a.in.write, rcq::to_text(endpoint_with(2)));
        EXPECT_THAT(error_of([&] { a.hs.exchange(endpoint_with(1)); }, EACCES),
                    HasSubstr("it is not authenticated"));
    }
    {
        env_side a("A", nullptr);
        put_line(a.in.write, rcq::to_text(endpoint_with(2)) + " auth=x");
        EXPECT_THAT(error_of([&] { a.hs.exchange(endpoint_with(1)); }, EACCES),
                    HasSubstr("it is authenticated and this side has no shared secret"));
    }
    {
        env_side a("A", &secret_b);
        auto old = run_env_pair(); // made with secret_a
        ::setenv(a.variable.c_str(), old.first_endpoint.c_str(), 1);
        EXPECT_THAT(error_of([&] { a.hs.exchange(endpoint_with(1)); }, EACCES),
                    HasSubstr("its tag does not verify"));
    }
}

#endif // RCQ_WITH_SODIUM

// ---- the rule for memory tokens (with or without libsodium) -------------------------

TEST(MemoryTokenRule, TcpRefusesToSendAnRkeyWithoutASecret) {
    auto client = tcp::client("127.0.0.1", 1, 10s);
    auto msg = error_of([&] { client.exchange(endpoint_with_memory(2)); }, EACCES);
    EXPECT_THAT(msg, HasSubstr("tcp client: refusing to send an endpoint that carries a memory token"));
    EXPECT_THAT(msg, HasSubstr("authenticate()"));
    EXPECT_THAT(msg, HasSubstr("allow_memory_without_secret()"));
    auto server = tcp::server(0, 10s);
    EXPECT_THAT(error_of([&] { server.exchange(endpoint_with_memory(1)); }, EACCES),
                HasSubstr("tcp server: refusing to send"));
}

TEST(MemoryTokenRule, TcpSendsItWhenTheUserAllowsIt) {
    auto server = tcp::server(0, 10s);
    server.allow_memory_without_secret();
    auto client_side = std::async(std::launch::async, [port = server.port()] {
        auto client = tcp::client("127.0.0.1", port, 10s);
        client.allow_memory_without_secret();
        return client.exchange(endpoint_with_memory(2));
    });
    EXPECT_EQ(server.exchange(endpoint_with_memory(1)), endpoint_with_memory(2));
    EXPECT_EQ(client_side.get(), endpoint_with_memory(1));
}

TEST(MemoryTokenRule, FileRefusesToPublishAnRkeyWithoutASecret) {
    auto dir = fs::temp_directory_path();
    rcq::handshake::file f(dir, "rule" + std::to_string(::getpid()), "a", "b", 1s);
    EXPECT_THAT(error_of([&] { f.exchange(endpoint_with_memory(1)); }, EACCES),
                HasSubstr("file handshake as a: refusing to send an endpoint that carries a memory token"));
    EXPECT_FALSE(fs::exists(f.path_of("a", "endpoint"))); // nothing was written
}

TEST(MemoryTokenRule, EnvRefusesToWriteAnRkeyWithoutASecret) {
    rcq::handshake::env e(rcq::handshake::env_options{.timeout = 1s, .in_fd = -1, .out_fd = 2});
    ::setenv("RCQ_PEER_ENDPOINT", rcq::to_text(endpoint_with(2)).c_str(), 1);
    EXPECT_THAT(error_of([&] { e.exchange(endpoint_with_memory(1)); }, EACCES),
                HasSubstr("env handshake: refusing to send an endpoint that carries a memory token"));
    ::unsetenv("RCQ_PEER_ENDPOINT");
}

#if !RCQ_WITH_SODIUM
TEST(SharedSecret, WithoutLibsodiumASecretCannotBeMade) {
    EXPECT_THAT(error_of([] { shared_secret::from_env("PATH"); }, EOPNOTSUPP),
                HasSubstr("built without libsodium"));
}
#endif

} // namespace
