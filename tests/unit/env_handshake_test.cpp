// rcq::handshake::env over pipes, with the test playing the launcher: both
// roles, every bad variable, line and stream ending in a clear rcq::error
// within the time budget, and examples/launch_env.sh relaying between two
// copies of this very binary.
#include "support.hpp"

#include <rcq/handshake/env.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

namespace {

using unit_test::endpoint_with;
using unit_test::error_of;

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using rcq::detail::unique_fd;
using rcq::handshake::env;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

// ---- peer mode: this binary as one side of the launcher script ------------------
//
// examples/launch_env.sh starts two programs; the test below gives it this
// binary twice, with RCQ_ENV_TEST_ROLE saying which side to play. The check
// runs before main() and ends the process, so gtest never starts in that case.

int play_side(const std::string& role) {
    std::printf("narration: %s side starting\n", role.c_str()); // left in stdio's buffer
    if (role == "dies") return 3;
    bool first = role == "first";
    try {
        env side(10s);
        auto peer = side.exchange(endpoint_with(first ? 0x111 : 0x222));
        if (peer != endpoint_with(first ? 0x222 : 0x111)) {
            std::fprintf(stderr, "%s: wrong peer endpoint %s\n", role.c_str(), rcq::to_text(peer).c_str());
            return 1;
        }
        std::printf("narration: %s got qpn 0x%x\n", role.c_str(), peer.qpn);
        side.barrier();
        std::printf("narration: %s passed the barrier\n", role.c_str());
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", role.c_str(), e.what());
        return 1;
    }
}

[[maybe_unused]] const bool peer_mode_hook = [] {
    if (const char* role = std::getenv("RCQ_ENV_TEST_ROLE")) {
        int rc = play_side(role);
        std::fflush(stdout);
        std::_Exit(rc);
    }
    return false;
}();

// ---- helpers ------------------------------------------------------------------

struct pipe_fds {
    unique_fd read;
    unique_fd write;
    pipe_fds() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

void put(const unique_fd& fd, const std::string& text) {
    ASSERT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

// What the other end of a pipe has received so far, waiting at most 10 s per
// line (a broken test must not hang the suite).
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

bool has_data(const unique_fd& fd) {
    pollfd p{fd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

// A variable name no other test uses, unset on entry and on exit.
class scoped_variable {
public:
    explicit scoped_variable(std::string name) : name_(std::move(name)) { ::unsetenv(name_.c_str()); }
    ~scoped_variable() { ::unsetenv(name_.c_str()); }
    void set(const std::string& value) const { ::setenv(name_.c_str(), value.c_str(), 1); }
    const std::string& name() const { return name_; }

private:
    std::string name_;
};

// A side whose input is `in` and output `out`, under a test-specific variable.
env side_on(const pipe_fds& in, const pipe_fds& out, const scoped_variable& var,
            std::chrono::milliseconds timeout = 10s) {
    return env({.timeout = timeout, .variable = var.name(), .in_fd = in.read.get(), .out_fd = out.write.get()});
}

// ---- both roles ---------------------------------------------------------------

TEST(EnvHandshake, BothRolesThroughARelay) {
    pipe_fds a_in, a_out, b_in, b_out;
    scoped_variable a_var("RCQ_TEST_BOTH_A"), b_var("RCQ_TEST_BOTH_B");
    auto first = std::async(std::launch::async, [&] {
        auto a = side_on(a_in, a_out, a_var);
        auto peer = a.exchange(endpoint_with(1));
        a.barrier();
        return peer;
    });
    // The launcher: A's line goes into B's environment ...
    auto a_line = take_line(a_out.read);
    EXPECT_EQ(a_line, rcq::to_text(endpoint_with(1)));
    b_var.set(a_line);
    auto second = std::async(std::launch::async, [&] {
        auto b = side_on(b_in, b_out, b_var);
        auto peer = b.exchange(endpoint_with(2));
        b.barrier();
        return peer;
    });
    // ... B's line and B's go-ahead into A's input, A's go-ahead into B's.
    auto b_line = take_line(b_out.read);
    EXPECT_EQ(b_line, rcq::to_text(endpoint_with(2)));
    put(a_in.write, b_line + "\n");
    EXPECT_EQ(take_line(a_out.read), "rcq-go");
    put(b_in.write, "rcq-go\n");
    EXPECT_EQ(take_line(b_out.read), "rcq-go");
    put(a_in.write, "rcq-go\n");
    EXPECT_EQ(first.get(), endpoint_with(2));
    EXPECT_EQ(second.get(), endpoint_with(1));
}

TEST(EnvHandshake, CrLfAndBlanksAreAcceptedAndWhatFollowsIsLeftUnread) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_CRLF");
    put(in.write, rcq::to_text(endpoint_with(2)) + " \r\nrcq-go\t\r\nafter the handshake\n");
    auto side = side_on(in, out, var);
    EXPECT_EQ(side.exchange(endpoint_with(1)), endpoint_with(2));
    side.barrier();
    EXPECT_EQ(take_line(in.read), "after the handshake");
    EXPECT_EQ(take_line(out.read), rcq::to_text(endpoint_with(1)));
    EXPECT_EQ(take_line(out.read), "rcq-go");
}

TEST(EnvHandshake, BudgetStartsAtTheFirstCallNotAtConstruction) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_BUDGET");
    auto side = side_on(in, out, var, 300ms);
    std::this_thread::sleep_for(500ms);
    put(in.write, rcq::to_text(endpoint_with(2)) + "\nrcq-go\n");
    EXPECT_EQ(side.exchange(endpoint_with(1)), endpoint_with(2));
    side.barrier();
}

TEST(EnvHandshake, OptionsDescribeAndUseAfterMove) {
    env plain;
    EXPECT_EQ(plain.settings().variable, "RCQ_PEER_ENDPOINT");
    EXPECT_EQ(plain.settings().in_fd, 0);
    EXPECT_EQ(plain.settings().out_fd, 1);
    EXPECT_EQ(plain.settings().timeout, 30s);
    EXPECT_EQ(plain.describe(), "env handshake: peer endpoint from $RCQ_PEER_ENDPOINT, else from fd 0; ours to fd 1");
    env moved = std::move(plain);
    // NOLINTNEXTLINE(bugprone-use-after-move): the use after move under test
    EXPECT_THAT(error_of([&] { plain.barrier(); }, EINVAL),
                HasSubstr("env handshake: barrier() on a moved-from object"));
    EXPECT_THAT(error_of([] { env({.variable = "A=B"}); }, EINVAL),
                HasSubstr("env handshake: \"A=B\" is not a usable variable name"));
    EXPECT_THAT(error_of([] { env({.out_fd = -1}); }, EINVAL), HasSubstr("no output descriptor"));
}

// ---- the variable -------------------------------------------------------------------

TEST(EnvHandshake, VariableUnsetAndNoInput) {
    pipe_fds out;
    scoped_variable var("RCQ_TEST_NO_INPUT");
    env side({.variable = var.name(), .in_fd = -1, .out_fd = out.write.get()});
    auto msg = error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL);
    EXPECT_THAT(msg, HasSubstr("env handshake: RCQ_TEST_NO_INPUT is not set and there is no input to read "
                               "the peer's endpoint line from"));
    EXPECT_THAT(msg, HasSubstr("examples/launch_env.sh"));
    EXPECT_FALSE(has_data(out.read));
    EXPECT_THAT(error_of([&] { side.barrier(); }, EINVAL), HasSubstr("barrier() needs an input"));
}

TEST(EnvHandshake, VariableUnsetAndInputClosed) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_EOF");
    in.write.reset();
    auto side = side_on(in, out, var);
    auto msg = error_of([&] { side.exchange(endpoint_with(1)); }, ECONNRESET);
    EXPECT_THAT(msg, HasSubstr("env handshake: RCQ_TEST_EOF is not set and the input (fd " +
                               std::to_string(in.read.get()) + ") ended before the peer's endpoint line"));
    EXPECT_THAT(msg, HasSubstr("set RCQ_TEST_EOF to the peer's endpoint line"));
}

TEST(EnvHandshake, VariableSetButEmpty) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_EMPTY");
    var.set("");
    auto side = side_on(in, out, var);
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                AllOf(HasSubstr("env handshake: RCQ_TEST_EMPTY is set but empty"),
                      HasSubstr("leave it unset on that side")));
    EXPECT_FALSE(has_data(out.read)) << "nothing is written when the variable is bad";
}

TEST(EnvHandshake, VariableMalformed) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_BAD");
    auto side = side_on(in, out, var);
    var.set("rcq2 qpn=0x1 psn=0x2");
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("env handshake: RCQ_TEST_BAD: endpoint text: missing key \"lid\""));
    var.set("rcq7 qpn=0x1");
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                AllOf(HasSubstr("RCQ_TEST_BAD: endpoint text: version 7 not supported"),
                      HasSubstr("build both sides with the same rcq release")));
    var.set(std::string(3000, 'x'));
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("RCQ_TEST_BAD: endpoint text: 3000 characters is too long (at most 1024)"));
    EXPECT_FALSE(has_data(out.read));
}

TEST(EnvHandshake, OwnEndpointRelayedBack) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_ECHO");
    var.set(rcq::to_text(endpoint_with(1)));
    auto side = side_on(in, out, var);
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                AllOf(HasSubstr("env handshake: the peer's endpoint is our own"),
                      HasSubstr("gave this side its own line back")));
}

// ---- the input ------------------------------------------------------------------------

TEST(EnvHandshake, InputEndsMidLine) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_MID");
    put(in.write, "rcq1 qpn=");
    in.write.reset();
    auto side = side_on(in, out, var);
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, ECONNRESET),
                HasSubstr("env handshake: the input (fd " + std::to_string(in.read.get()) +
                          ") ended after 9 bytes, before the peer's endpoint line was complete"));
}

TEST(EnvHandshake, OverlongLineIsRefusedWithoutWaitingForItsEnd) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_LONG");
    put(in.write, std::string(2000, 'a')); // no newline, and the pipe stays open
    auto side = side_on(in, out, var, 5s);
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EPROTO),
                HasSubstr("env handshake: the peer's endpoint line on fd " + std::to_string(in.read.get()) +
                          " is longer than 1024 bytes"));
    EXPECT_LT(clock_type::now() - start, 2s);
}

TEST(EnvHandshake, A16MiBFloodIsRefusedAfterOneLine) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    unique_fd ours(fds[0]), theirs(fds[1]);
    auto flood = std::async(std::launch::async, [&theirs] {
        std::string chunk(1 << 16, 'A');
        for (std::size_t sent = 0; sent < (16u << 20);) {
            auto n = ::send(theirs.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
            if (n <= 0) return; // the reader is gone
            sent += static_cast<std::size_t>(n);
        }
    });
    pipe_fds out;
    scoped_variable var("RCQ_TEST_FLOOD");
    env side({.timeout = 5s, .variable = var.name(), .in_fd = ours.get(), .out_fd = out.write.get()});
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EPROTO),
                HasSubstr("is longer than 1024 bytes"));
    ours.reset(); // ends the flood
    flood.get();
}

TEST(EnvHandshake, OneBytePerSecondIsCutOffByTheDeadline) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_SLOW");
    auto slow = std::async(std::launch::async, [&in] {
        for (char c : rcq::to_text(endpoint_with(2)) + "\n") {
            if (::write(in.write.get(), &c, 1) != 1) return;
            std::this_thread::sleep_for(1s);
            if (c == 'q') return; // a few bytes are enough
        }
    });
    auto side = side_on(in, out, var, 2500ms);
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, ETIMEDOUT),
                HasSubstr("env handshake: timed out after 2500 ms waiting for the peer's endpoint line"));
    EXPECT_LT(clock_type::now() - start, 8s); // a hang check, not a timing
    slow.get();
}

TEST(EnvHandshake, NoTimeLimitAndBadTimeouts) {
    using ms = std::chrono::milliseconds;
    for (auto t : {ms::zero(), ms{-1}, ms::min()})
        EXPECT_THAT(error_of([&] { env e(t); }, EINVAL), HasSubstr("the timeout must be positive"));
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_UNLIMITED");
    put(in.write, rcq::to_text(endpoint_with(2)) + "\nrcq-go\n");
    auto side = side_on(in, out, var, ms::max());
    EXPECT_EQ(side.exchange(endpoint_with(1)), endpoint_with(2));
    side.barrier();
}

TEST(EnvHandshake, MalformedPeerLine) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_GARBAGE");
    put(in.write, "hello there\n");
    auto side = side_on(in, out, var);
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EINVAL),
                HasSubstr("env handshake: the peer's endpoint line on fd " + std::to_string(in.read.get()) +
                          ": endpoint text: expected the line to start with \"rcq2\", got \"hello\""));
}

TEST(EnvHandshake, NoPeerLineIsATimeout) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_SILENT");
    auto side = side_on(in, out, var, 300ms);
    auto start = clock_type::now();
    auto msg = error_of([&] { side.exchange(endpoint_with(1)); }, ETIMEDOUT);
    auto elapsed = clock_type::now() - start;
    EXPECT_THAT(msg, HasSubstr("env handshake: timed out after 300 ms waiting for the peer's endpoint line "
                               "on fd " + std::to_string(in.read.get()) + " (0 bytes so far)"));
    EXPECT_THAT(msg, HasSubstr("RCQ_TEST_SILENT is not set, so this side waits for the launcher"));
    EXPECT_EQ(take_line(out.read), rcq::to_text(endpoint_with(1))) << "ours was written first";
    EXPECT_GE(elapsed, 280ms);
    EXPECT_LT(elapsed, 5s); // a hang check, not a timing
}

TEST(EnvHandshake, InputNotOpen) {
    pipe_fds out;
    scoped_variable var("RCQ_TEST_BADF");
    int closed_fd = ::dup(out.read.get());
    ::close(closed_fd);
    env side({.timeout = 1s, .variable = var.name(), .in_fd = closed_fd, .out_fd = out.write.get()});
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EBADF),
                HasSubstr("poll on a descriptor that is not open"));
}

// ---- the barrier ------------------------------------------------------------------------

TEST(EnvHandshake, BarrierWithAnotherLine) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_NOT_GO");
    var.set(rcq::to_text(endpoint_with(2)));
    put(in.write, "rcq-stop\n");
    auto side = side_on(in, out, var);
    EXPECT_EQ(side.exchange(endpoint_with(1)), endpoint_with(2));
    EXPECT_THAT(error_of([&] { side.barrier(); }, EPROTO),
                AllOf(HasSubstr("env handshake: expected the go-ahead line \"rcq-go\" on fd " +
                                std::to_string(in.read.get()) + ", got \"rcq-stop\""),
                      HasSubstr("the launcher must relay each side's lines")));
}

TEST(EnvHandshake, BarrierInputClosed) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_GO_EOF");
    var.set(rcq::to_text(endpoint_with(2)));
    in.write.reset();
    auto side = side_on(in, out, var);
    EXPECT_EQ(side.exchange(endpoint_with(1)), endpoint_with(2)); // the variable suffices
    EXPECT_THAT(error_of([&] { side.barrier(); }, ECONNRESET),
                HasSubstr("ended after 0 bytes, before the go-ahead line \"rcq-go\" was complete"));
}

TEST(EnvHandshake, PeerNeverReachesTheBarrier) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_NO_GO");
    var.set(rcq::to_text(endpoint_with(2)));
    auto side = side_on(in, out, var, 300ms);
    side.exchange(endpoint_with(1));
    auto start = clock_type::now();
    auto msg = error_of([&] { side.barrier(); }, ETIMEDOUT);
    EXPECT_LT(clock_type::now() - start, 5s);
    EXPECT_THAT(msg, HasSubstr("env handshake: timed out after 300 ms waiting for the go-ahead line"));
    EXPECT_THAT(msg, HasSubstr("the peer did not reach its barrier"));
}

// ---- the output ------------------------------------------------------------------------------

TEST(EnvHandshake, OutputClosedIsAnErrorNotSigpipe) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_EPIPE");
    var.set(rcq::to_text(endpoint_with(2)));
    out.read.reset();
    auto side = side_on(in, out, var);
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, EPIPE),
                HasSubstr("env handshake: cannot write our endpoint line to fd " +
                          std::to_string(out.write.get()) + ": nobody reads it any more"));
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    EXPECT_EQ(sigismember(&pending, SIGPIPE), 0) << "no SIGPIPE left pending";
}

TEST(EnvHandshake, OutputNobodyReadsIsATimeout) {
    pipe_fds in, out;
    scoped_variable var("RCQ_TEST_FULL");
    var.set(rcq::to_text(endpoint_with(2)));
    // Fill the pipe to the brim.
    ::fcntl(out.write.get(), F_SETFL, O_NONBLOCK);
    std::string block(4096, 'z');
    while (::write(out.write.get(), block.data(), block.size()) > 0) {
    }
    while (::write(out.write.get(), block.data(), 1) > 0) {
    }
    auto side = side_on(in, out, var, 300ms);
    auto start = clock_type::now();
    EXPECT_THAT(error_of([&] { side.exchange(endpoint_with(1)); }, ETIMEDOUT),
                AllOf(HasSubstr("env handshake: timed out after 300 ms writing our endpoint line"),
                      HasSubstr("nobody reads this side's output")));
    EXPECT_LT(clock_type::now() - start, 5s);
}

// ---- the launcher script --------------------------------------------------------------------

struct run_result {
    int status = -1;
    std::string output;
};

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs examples/launch_env.sh on two copies of this binary playing `a` and `b`.
run_result launch(const std::string& a_role, const std::string& b_role) {
    const fs::path script = fs::path(__FILE__).parent_path() / ".." / ".." / "examples" / "launch_env.sh";
    if (!fs::exists(script) || std::system("command -v bash timeout >/dev/null 2>&1") != 0) return {};
    std::string dir_template = (fs::temp_directory_path() / "rcq-env-test-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) return {};
    const fs::path dir = dir_template;
    const std::string self = shell_quote(fs::read_symlink("/proc/self/exe").string());
    const std::string command = "timeout 60 bash " + shell_quote(script.string()) + " -t 20 env RCQ_ENV_TEST_ROLE=" +
                                a_role + " " + self + " -- env RCQ_ENV_TEST_ROLE=" + b_role + " " + self +
                                " >" + shell_quote((dir / "out").string()) + " 2>&1 </dev/null";
    run_result r;
    int raw = std::system(command.c_str());
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    std::ifstream in(dir / "out");
    std::stringstream text;
    text << in.rdbuf();
    r.output = text.str();
    fs::remove_all(dir);
    return r;
}

TEST(EnvHandshakeLauncher, RelaysBothWays) {
    auto r = launch("first", "second");
    if (r.status == -1) GTEST_SKIP() << "examples/launch_env.sh, bash or timeout not found";
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("[A] narration: first side starting"));
    EXPECT_THAT(r.output, HasSubstr("[A] " + rcq::to_text(endpoint_with(0x111))));
    EXPECT_THAT(r.output, HasSubstr("[B] " + rcq::to_text(endpoint_with(0x222))));
    EXPECT_THAT(r.output, HasSubstr("[A] narration: first got qpn 0x222"));
    EXPECT_THAT(r.output, HasSubstr("[B] narration: second got qpn 0x111"));
    EXPECT_THAT(r.output, HasSubstr("[A] narration: first passed the barrier"));
    EXPECT_THAT(r.output, HasSubstr("[B] narration: second passed the barrier"));
}

TEST(EnvHandshakeLauncher, FailsFastWhenASideFails) {
    auto start = clock_type::now();
    auto r = launch("first", "dies");
    if (r.status == -1) GTEST_SKIP() << "examples/launch_env.sh, bash or timeout not found";
    EXPECT_LT(clock_type::now() - start, 15s) << "A is not left waiting for its 20 s budget";
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("launch_env: B failed with status 3\n"));
    EXPECT_THAT(r.output, Not(HasSubstr("passed the barrier")));

    r = launch("dies", "second");
    EXPECT_EQ(r.status, 3) << r.output;
    EXPECT_THAT(r.output, HasSubstr("launch_env: A ended (status 3) before printing its endpoint line"));
}

} // namespace
