// rcq::handshake::file in a temporary folder per test: both sides in
// threads, files left by earlier runs, and every malformed or missing file
// ending in a clear rcq::error within the time budget.
#include "support.hpp"

#include <rcq/handshake/file.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::error_of;

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using rcq::handshake::file;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

// A fresh folder per test (so tests can run in parallel), removed after.
class FileHandshake : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "rcq-file-test-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir = pattern;
    }
    void TearDown() override {
        std::error_code ec;
        fs::permissions(dir, fs::perms::owner_all, ec);
        fs::remove_all(dir, ec);
    }

    file side(std::string self, std::string peer, std::chrono::milliseconds timeout = 10s,
              std::string session = "job42") const {
        return file(dir, std::move(session), std::move(self), std::move(peer), timeout);
    }

    std::vector<std::string> listing() const {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
        return names;
    }

    void put(const std::string& name, const std::string& content) const {
        std::ofstream(dir / name, std::ios::binary) << content;
    }

    // A well-formed file as the format describes it.
    static std::string record(const std::string& kind, const std::string& side, const std::string& nonce,
                              const std::string& ack, const std::string& session = "job42") {
        std::string text = "rcq-file-handshake 1\nfile " + kind + "\nsession " + session + "\nside " +
                           side + "\nnonce " + nonce + "\nack " + ack +
                           "\nhost oldhost\npid 1\ntime 1000000000\n";
        if (kind == "endpoint") text += "endpoint " + rcq::to_text(endpoint_with(0xdead)) + "\n";
        return text;
    }

    // Has the client wait for the server's endpoint with a bad file in its place.
    std::string client_error_with_server_file(const std::string& content, int code) const {
        put("job42.server.endpoint", content);
        auto client = side("client", "server", 5s);
        auto start = clock_type::now();
        auto msg = error_of([&] { client.exchange(endpoint_with(2)); }, code);
        EXPECT_LT(clock_type::now() - start, 2s) << "a malformed file is reported at once";
        return msg;
    }

    fs::path dir;
};

const std::string old_a = "0123456789abcdef0123456789abcdef";
const std::string old_b = "fedcba9876543210fedcba9876543210";

// Runs both sides, the client in a thread started after `client_delay`.
std::pair<rcq::endpoint, rcq::endpoint> run_pair(file server, file client,
                                                 std::chrono::milliseconds client_delay = 0ms) {
    auto client_side = std::async(std::launch::async, [&client, client_delay] {
        std::this_thread::sleep_for(client_delay);
        auto peer = client.exchange(endpoint_with(2));
        client.barrier();
        return peer;
    });
    rcq::endpoint at_server{};
    try {
        at_server = server.exchange(endpoint_with(1));
        server.barrier();
    } catch (...) {
        client_side.wait();
        throw;
    }
    return {at_server, client_side.get()};
}

// ---- both roles ------------------------------------------------------------------

TEST_F(FileHandshake, ExchangeAndBarrierLeaveNothingBehind) {
    auto [at_server, at_client] = run_pair(side("server", "client"), side("client", "server"));
    EXPECT_EQ(at_server, endpoint_with(2));
    EXPECT_EQ(at_client, endpoint_with(1));
    EXPECT_THAT(listing(), IsEmpty());
}

TEST_F(FileHandshake, EitherSideMayStartFirst) {
    auto [s1, c1] = run_pair(side("server", "client"), side("client", "server"), 300ms);
    EXPECT_EQ(s1, endpoint_with(2));
    EXPECT_EQ(c1, endpoint_with(1));
    // The client first: the roles only name the files.
    auto server = side("server", "client");
    auto client = side("client", "server");
    auto server_side = std::async(std::launch::async, [&server] {
        std::this_thread::sleep_for(300ms);
        auto peer = server.exchange(endpoint_with(1));
        server.barrier();
        return peer;
    });
    EXPECT_EQ(client.exchange(endpoint_with(2)), endpoint_with(1));
    client.barrier();
    EXPECT_EQ(server_side.get(), endpoint_with(2));
    EXPECT_THAT(listing(), IsEmpty());
}

TEST_F(FileHandshake, SessionsInOneFolderDoNotMix) {
    auto s2 = std::async(std::launch::async, [this] {
        return run_pair(side("server", "client", 10s, "other"), side("client", "server", 10s, "other"));
    });
    auto [at_server, at_client] = run_pair(side("server", "client"), side("client", "server"));
    EXPECT_EQ(at_server, endpoint_with(2));
    EXPECT_EQ(at_client, endpoint_with(1));
    s2.get();
    EXPECT_THAT(listing(), IsEmpty());
}

TEST_F(FileHandshake, NamedOptionsAndDescribe) {
    file f({.folder = dir, .session = "run-7", .self = "a", .peer = "b", .timeout = 2s,
            .poll_interval = 5ms});
    EXPECT_EQ(f.describe(), "file handshake in " + dir.string() + ", session run-7, as a (peer b)");
    EXPECT_EQ(f.path_of("a", "endpoint"), dir / "run-7.a.endpoint");
    EXPECT_EQ(f.settings().poll_interval, 5ms);
}

TEST_F(FileHandshake, BudgetStartsAtTheFirstCallNotAtConstruction) {
    auto server = side("server", "client", 400ms);
    auto client = side("client", "server", 400ms);
    std::this_thread::sleep_for(600ms); // device set-up and the like, not charged
    auto [at_server, at_client] = run_pair(std::move(server), std::move(client));
    EXPECT_EQ(at_server, endpoint_with(2));
}

// ---- files from earlier runs ------------------------------------------------------

TEST_F(FileHandshake, StaleFilesOfAnEarlierRunAreNeverTakenForThePeers) {
    // A crashed earlier run left every file it could have.
    put("job42.client.endpoint", record("endpoint", "client", old_b, old_a));
    put("job42.client.ready", record("ready", "client", old_b, old_a));
    put("job42.server.endpoint", record("endpoint", "server", old_a, old_b));
    put("job42.server.ready", record("ready", "server", old_a, old_b));
    auto [at_server, at_client] =
        run_pair(side("server", "client"), side("client", "server"), 300ms);
    EXPECT_EQ(at_server, endpoint_with(2)); // not 0xdead from the old file
    EXPECT_EQ(at_client, endpoint_with(1));
    EXPECT_THAT(listing(), IsEmpty());
}

TEST_F(FileHandshake, OnlyAStaleFileIsATimeoutNamingIt) {
    put("job42.client.endpoint", record("endpoint", "client", old_b, old_a));
    auto server = side("server", "client", 300ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 5s);
    EXPECT_THAT(msg, HasSubstr("file handshake as server: " + (dir / "job42.client.endpoint").string() +
                               " never acknowledged this run within 300 ms"));
    EXPECT_THAT(msg, HasSubstr("leftover of an earlier run"));
    // It acknowledged the dead nonce, which is harmless.
    std::ifstream in(dir / "job42.server.endpoint");
    std::stringstream content;
    content << in.rdbuf();
    EXPECT_THAT(content.str(), HasSubstr("ack " + old_b + "\n"));
}

// ---- nobody there ---------------------------------------------------------------------

TEST_F(FileHandshake, PeerNeverComesIsATimeoutNamingThePath) {
    auto server = side("server", "client", 300ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { server.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("file handshake as server: no endpoint from the client at " +
                               (dir / "job42.client.endpoint").string() + " within 300 ms"));
    EXPECT_THAT(msg, HasSubstr("start the client with the same folder and session \"job42\""));
    EXPECT_GE(elapsed, 280ms);
    EXPECT_LT(elapsed, 5s); // a hang check, not a timing
}

TEST_F(FileHandshake, PeerThatNeverReachesTheBarrier) {
    auto server = side("server", "client", 800ms);
    auto client = side("client", "server", 800ms);
    auto client_side = std::async(std::launch::async, [&client] { return client.exchange(endpoint_with(2)); });
    EXPECT_EQ(server.exchange(endpoint_with(1)), endpoint_with(2));
    EXPECT_EQ(client_side.get(), endpoint_with(1)); // and then the client stops
    auto start = clock_type::now();
    auto msg = error_of([&] { server.barrier(); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 5s);
    EXPECT_THAT(msg, HasSubstr("file handshake as server: the client did not reach the barrier within "
                               "800 ms: no " + (dir / "job42.client.ready").string()));
    EXPECT_THAT(msg, HasSubstr("has not called barrier()"));
}

// ---- the folder and the names -------------------------------------------------------

TEST_F(FileHandshake, MissingFolder) {
    auto msg = error_of([&] { file(dir / "nope", "job42", "server", "client"); }, ENOENT);
    EXPECT_THAT(msg, HasSubstr("file handshake as server: cannot use folder " + (dir / "nope").string()));
    EXPECT_THAT(msg, HasSubstr("it does not exist; create it first"));
}

TEST_F(FileHandshake, FolderIsAFile) {
    put("plain", "x");
    auto msg = error_of([&] { file(dir / "plain", "job42", "server", "client"); }, ENOTDIR);
    EXPECT_THAT(msg, HasSubstr((dir / "plain").string() + " is not a folder"));
}

TEST_F(FileHandshake, FolderNotWritable) {
    ASSERT_EQ(::chmod(dir.c_str(), 0555), 0);
    auto attempt = [this]() -> std::string {
        try {
            auto f = side("server", "client", 300ms);
            f.exchange(endpoint_with(1));
        } catch (const rcq::error& e) {
            return std::to_string(e.code().value()) + " " + e.what();
        }
        return "no error";
    };
    std::string msg;
    if (::geteuid() != 0) {
        msg = attempt();
    } else {
        // Root writes anywhere: try as nobody in a child process.
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            ::close(fds[0]);
            std::string result = (::setgid(65534) == 0 && ::setuid(65534) == 0) ? attempt() : "setuid failed";
            auto n = ::write(fds[1], result.data(), result.size());
            ::_exit(n < 0 ? 1 : 0);
        }
        ::close(fds[1]);
        char buf[2048];
        ssize_t n;
        while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<std::size_t>(n));
        ::close(fds[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
    }
    EXPECT_THAT(msg, AllOf(HasSubstr(std::to_string(EACCES) + " file handshake as server: folder " +
                                     dir.string() + " is not writable"),
                           HasSubstr("fix the folder's permissions")));
}

TEST_F(FileHandshake, BadNames) {
    EXPECT_THAT(error_of([&] { side("server", "client", 1s, ""); }, EINVAL),
                AllOf(HasSubstr("file handshake: session name \"\" is not usable in a file name"),
                      HasSubstr("use 1 to 64 letters, digits, '-' or '_'")));
    EXPECT_THAT(error_of([&] { side("../etc", "client"); }, EINVAL),
                HasSubstr("self name \"../etc\" is not usable"));
    EXPECT_THAT(error_of([&] { side("server", "a/b"); }, EINVAL), HasSubstr("peer name \"a/b\""));
    EXPECT_THAT(error_of([&] { side("server", "client", 1s, "job.42"); }, EINVAL),
                HasSubstr("session name \"job.42\""));
    EXPECT_THAT(error_of([&] { side("ser ver", "client"); }, EINVAL), HasSubstr("self name \"ser ver\""));
    EXPECT_THAT(error_of([&] { side(std::string(65, 'x'), "client"); }, EINVAL), HasSubstr("self name"));
    EXPECT_THAT(error_of([&] { side("same", "same"); }, EINVAL),
                HasSubstr("file handshake as same: self and peer are both \"same\""));
    EXPECT_THAT(error_of([&] { side("server", "client", 0ms); }, EINVAL),
                HasSubstr("the timeout must be positive"));
}

// ---- malformed peer files ---------------------------------------------------------------

TEST_F(FileHandshake, GarbageFile) {
    auto msg = client_error_with_server_file("GET / HTTP/1.0\r\n\r\n", EPROTO);
    EXPECT_THAT(msg, HasSubstr("file handshake as client: " + (dir / "job42.server.endpoint").string() +
                               ": expected the first line \"rcq-file-handshake 1\", got \"GET / HTTP/1.0\\x0d\""));
    EXPECT_THAT(msg, HasSubstr("if it is a leftover, delete it"));
}

TEST_F(FileHandshake, EmptyFile) {
    EXPECT_THAT(client_error_with_server_file("", EPROTO), HasSubstr("endpoint: empty file"));
}

TEST_F(FileHandshake, TruncatedFile) {
    auto full = record("endpoint", "server", old_a, "none");
    EXPECT_THAT(client_error_with_server_file(full.substr(0, full.size() - 20), EPROTO),
                HasSubstr("truncated (the last line has no newline)"));
    auto cut_at_line = full.substr(0, full.find("endpoint rcq2"));
    EXPECT_THAT(client_error_with_server_file(cut_at_line, EPROTO),
                HasSubstr("truncated or incomplete: no \"endpoint\" line"));
}

TEST_F(FileHandshake, OversizedFileIsNotRead) {
    auto big = record("endpoint", "server", old_a, "none") + std::string(5000, '#') + "\n";
    EXPECT_THAT(client_error_with_server_file(big, EPROTO),
                HasSubstr("bytes is too large for a handshake file (at most 4096)"));
}

TEST_F(FileHandshake, A16MiBFileIsRefusedUnread) {
    EXPECT_THAT(client_error_with_server_file(std::string(16u << 20, 'A'), EPROTO),
                HasSubstr("16777216 bytes is too large for a handshake file (at most 4096)"));
}

TEST_F(FileHandshake, WrongVersion) {
    auto v2 = record("endpoint", "server", old_a, "none");
    v2.replace(v2.find(" 1\n"), 3, " 2\n");
    auto msg = client_error_with_server_file(v2, EPROTO);
    EXPECT_THAT(msg, HasSubstr("format \"2\" not supported (this build reads version 1)"));
    EXPECT_THAT(msg, HasSubstr("build both sides with the same rcq release"));
}

TEST_F(FileHandshake, WrongEndpointVersionInside) {
    auto text = record("endpoint", "server", old_a, "none");
    text.replace(text.find("endpoint rcq2"), 13, "endpoint rcq9");
    EXPECT_THAT(client_error_with_server_file(text, EINVAL),
                HasSubstr("job42.server.endpoint: endpoint text: version 9 not supported"));
}

TEST_F(FileHandshake, BadEndpointText) {
    auto text = record("endpoint", "server", old_a, "none");
    text.replace(text.find("qpn=0x"), 6, "qpn=zz");
    EXPECT_THAT(client_error_with_server_file(text, EINVAL),
                HasSubstr("endpoint text: qpn=\"zzdead\": expected a hex number"));
}

TEST_F(FileHandshake, FileOfAnotherSessionOrSideOrKind) {
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "server", old_a, "none", "job1"), EPROTO),
                HasSubstr("belongs to session \"job1\", not \"job42\""));
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "client", old_a, "none"), EPROTO),
                HasSubstr("was written by side \"client\", not \"server\""));
    EXPECT_THAT(client_error_with_server_file(record("ready", "server", old_a, "none"), EPROTO),
                HasSubstr("holds a \"ready\" record, expected \"endpoint\""));
}

TEST_F(FileHandshake, BadNonceUnknownAndDuplicateLines) {
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "server", "1234", "none"), EPROTO),
                HasSubstr("bad nonce \"1234\" (expected 32 hex digits)"));
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "server", old_a, "maybe"), EPROTO),
                HasSubstr("bad ack \"maybe\""));
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "server", old_a, "none") + "color red\n",
                                              EPROTO),
                HasSubstr("unknown line \"color red\""));
    EXPECT_THAT(client_error_with_server_file(record("endpoint", "server", old_a, "none") + "pid 2\n",
                                              EPROTO),
                HasSubstr("duplicate line \"pid\""));
}

TEST_F(FileHandshake, AFifoInPlaceOfTheFileDoesNotHang) {
    ASSERT_EQ(::mkfifo((dir / "job42.server.endpoint").c_str(), 0644), 0);
    auto client = side("client", "server", 5s);
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { client.exchange(endpoint_with(2)); }, EPROTO),
                HasSubstr("job42.server.endpoint: not a regular file"));
    EXPECT_LT(clock_type::now() - start, 2s);
}

// ---- call order and lifetime ------------------------------------------------------------

TEST_F(FileHandshake, CallsOutOfOrderAndUseAfterMove) {
    auto server = side("server", "client", 300ms);
    EXPECT_THAT(error_of([&] { server.barrier(); }, EINVAL),
                AllOf(HasSubstr("file handshake as server: barrier() called out of order"),
                      HasSubstr("call exchange() first")));
    auto moved = std::move(server);
    // NOLINTNEXTLINE(bugprone-use-after-move): the use after move under test
    EXPECT_THAT(error_of([&] { server.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("file handshake: exchange() on a moved-from object"));
    error_of([&] { moved.exchange(endpoint_with(1)); }, ETIMEDOUT);
}

TEST_F(FileHandshake, ExchangeTwiceIsRefused) {
    auto server = side("server", "client");
    auto client = side("client", "server");
    auto client_side = std::async(std::launch::async, [&client] { return client.exchange(endpoint_with(2)); });
    server.exchange(endpoint_with(1));
    client_side.get();
    EXPECT_THAT(error_of([&] { server.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("exchange() called out of order"));
}

// ---- who may read and plant the files ------------------------------------------------

TEST_F(FileHandshake, FilesAreCreatedReadableByThisUserOnly) {
    auto old_mask = ::umask(0); // even with the most permissive umask
    auto client = side("client", "server", 200ms);
    error_of([&] { client.exchange(endpoint_with(2)); }, ETIMEDOUT);
    ::umask(old_mask);
    struct stat st{};
    ASSERT_EQ(::stat((dir / "job42.client.endpoint").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(FileHandshake, ASymbolicLinkInPlaceOfThePeerFileIsRefused) {
    put("elsewhere", record("endpoint", "server", old_a, "none"));
    fs::create_symlink(dir / "elsewhere", dir / "job42.server.endpoint");
    auto client = side("client", "server", 5s);
    auto msg = error_of([&] { client.exchange(endpoint_with(2)); }, ELOOP);
    EXPECT_THAT(msg, HasSubstr("job42.server.endpoint is a symbolic link; refused"));
}

TEST_F(FileHandshake, APeerFileOwnedByAnotherUserIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "only root can give a file to another user";
    put("job42.server.endpoint", record("endpoint", "server", old_a, "none"));
    ASSERT_EQ(::chown((dir / "job42.server.endpoint").c_str(), 65534, 65534), 0);
    auto client = side("client", "server", 5s);
    auto msg = error_of([&] { client.exchange(endpoint_with(2)); }, EPERM);
    EXPECT_THAT(msg, HasSubstr("job42.server.endpoint is owned by uid 65534, not by this user (uid 0)"));
    EXPECT_THAT(msg, HasSubstr("run both sides as the same user"));
}

// ---- durations at their extremes --------------------------------------------------------

TEST_F(FileHandshake, NoTimeLimit) {
    auto [at_server, at_client] =
        run_pair(side("server", "client", std::chrono::milliseconds::max()),
                 side("client", "server", std::chrono::milliseconds::max()), 100ms);
    EXPECT_EQ(at_server, endpoint_with(2));
    EXPECT_EQ(at_client, endpoint_with(1));
}

TEST_F(FileHandshake, AHugePollIntervalStillEndsAtTheDeadline) {
    file client(file::options{.folder = dir, .session = "job42", .self = "client", .peer = "server",
                              .timeout = 300ms, .poll_interval = std::chrono::milliseconds::max()});
    auto start = clock_type::now();
    error_of([&] { client.exchange(endpoint_with(2)); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 5s);
}

TEST_F(FileHandshake, ZeroOrNegativeDurationsAreRefused) {
    using ms = std::chrono::milliseconds;
    for (auto t : {ms::zero(), ms{-1}, ms::min()}) {
        EXPECT_THAT(error_of([&] { side("client", "server", t); }, EINVAL),
                    HasSubstr("the timeout must be positive"));
        EXPECT_THAT(error_of([&] {
                        file(file::options{.folder = dir, .session = "s", .self = "a", .peer = "b",
                                           .poll_interval = t});
                    }, EINVAL),
                    HasSubstr("the poll interval must be positive"));
    }
}

} // namespace
