// Every combination of the built-in policies (3 polling x 3 buffer x 3
// handshake) does a SEND/RECV round trip on a real device, every byte
// checked; and the blocking policy waits without spinning.
#include "rdma_env.hpp"

#include <rcq/rcq.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::uint32_t message = 2048;
constexpr auto budget = std::chrono::seconds(20);

std::string host() {
    const char* ip = std::getenv("RCQ_IP");
    return ip != nullptr ? ip : "127.0.0.1";
}

// -- handshakes: a connected pair of each transport --------------------------

template <class H>
struct handshake_pair;

template <>
struct handshake_pair<rcq::handshake::tcp> {
    rcq::handshake::tcp a = rcq::handshake::tcp::server(0, budget);
    rcq::handshake::tcp b = rcq::handshake::tcp::client(host(), a.port(), budget);
    void before_b() {}
};

template <>
struct handshake_pair<rcq::handshake::file> {
    static std::string make_folder() {
        std::string pattern = (std::filesystem::temp_directory_path() / "rcq-policies-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return pattern;
    }
    std::string folder = make_folder();
    rcq::handshake::file a{folder, "combo", "a", "b", budget};
    rcq::handshake::file b{folder, "combo", "b", "a", budget};
    void before_b() {}
    ~handshake_pair() { std::filesystem::remove_all(folder); }
};

// The launcher's part, played by threads: A (started first) prints its
// endpoint line; it becomes B's variable; then the lines are relayed.
template <>
struct handshake_pair<rcq::handshake::env> {
    struct pipe_fds {
        int read = -1, write = -1;
        pipe_fds() {
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
            read = fds[0];
            write = fds[1];
        }
        ~pipe_fds() {
            ::close(read);
            ::close(write);
        }
    };
    static inline std::atomic<int> counter{0};

    pipe_fds a_out, a_in, b_out, b_in;
    std::string variable = "RCQ_TEST_PEER_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    rcq::handshake::env a{{.timeout = budget, .variable = variable + "_UNSET", .in_fd = a_in.read,
                           .out_fd = a_out.write}};
    rcq::handshake::env b{{.timeout = budget, .variable = variable, .in_fd = b_in.read,
                           .out_fd = b_out.write}};
    std::thread a_to_b, b_to_a;

    // A line, or "" at end of input or after 20 s without one.
    static std::string read_line(int fd) {
        std::string line;
        char c;
        pollfd pfd{fd, POLLIN, 0};
        while (::poll(&pfd, 1, 20000) == 1 && ::read(fd, &c, 1) == 1) {
            line += c;
            if (c == '\n') break;
        }
        return line;
    }
    // Copies lines until the barrier's go-ahead has passed.
    static void relay(int from, int to) {
        for (;;) {
            const std::string line = read_line(from);
            if (line.empty() || ::write(to, line.data(), line.size()) < 0) return;
            if (line.rfind("rcq-go", 0) == 0) return;
        }
    }
    // Called before B starts: B's variable must hold A's line.
    void before_b() {
        std::string line = read_line(a_out.read);
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
        ::setenv(variable.c_str(), line.c_str(), 1);
        a_to_b = std::thread(relay, a_out.read, b_in.write);
        b_to_a = std::thread(relay, b_out.read, a_in.write);
    }
    ~handshake_pair() {
        // Closing the write ends lets the relays finish if a side failed.
        ::close(std::exchange(a_out.write, -1));
        ::close(std::exchange(b_out.write, -1));
        if (a_to_b.joinable()) a_to_b.join();
        if (b_to_a.joinable()) b_to_a.join();
        ::unsetenv(variable.c_str());
    }
};

// -- buffers: each side's config for each policy ------------------------------

template <class B>
struct buffer_source;

template <std::size_t Bytes>
struct buffer_source<rcq::buffer::owned<Bytes>> {
    typename rcq::buffer::owned<Bytes>::config config() { return {}; }
};

template <>
struct buffer_source<rcq::buffer::borrowed> {
    std::vector<std::byte> memory = std::vector<std::byte>(8192);
    rcq::buffer::borrowed::config config() { return {.memory = memory}; }
};

template <>
struct buffer_source<rcq::buffer::external> {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd{ctx};
    std::vector<std::byte> memory = std::vector<std::byte>(8192);
    rcq::mr region{pd, memory};
    rcq::buffer::external::config config() { return {.mr = region.get()}; }
};

// -- one side's round trip -----------------------------------------------------

std::byte pattern(unsigned seed, std::size_t i) { return std::byte(seed * 41 + i * 7 + (i >> 8)); }

template <class Connection>
void run_side(Connection& conn, unsigned mine, unsigned theirs) {
    ASSERT_EQ(conn.post_recv(message, message, 1), 0);
    conn.ready();
    auto bytes = conn.buffer();
    for (std::size_t i = 0; i < message; ++i) bytes[i] = pattern(mine, i);
    ASSERT_EQ(conn.post_send(0, message, 2), 0);
    bool sent = false, received = false;
    while (!sent || !received) {
        const ibv_wc wc = conn.wait("the round trip");
        if (wc.wr_id == 2) sent = true;
        if (wc.wr_id == 1) {
            received = true;
            ASSERT_EQ(wc.byte_len, message);
        }
    }
    for (std::size_t i = 0; i < message; ++i)
        ASSERT_EQ(bytes[message + i], pattern(theirs, i)) << "byte " << i;
}

template <class Poll, class Buffer, class Handshake>
struct combination {
    using poll = Poll;
    using buffer = Buffer;
    using handshake = Handshake;
};

template <class Combination>
class Policies : public testing::Test {};

#define RCQ_COMBOS_FOR(P)                                                                          \
    combination<P, rcq::buffer::owned<8192>, rcq::handshake::tcp>,                                 \
        combination<P, rcq::buffer::owned<8192>, rcq::handshake::file>,                            \
        combination<P, rcq::buffer::owned<8192>, rcq::handshake::env>,                             \
        combination<P, rcq::buffer::borrowed, rcq::handshake::tcp>,                                \
        combination<P, rcq::buffer::borrowed, rcq::handshake::file>,                               \
        combination<P, rcq::buffer::borrowed, rcq::handshake::env>,                                \
        combination<P, rcq::buffer::external, rcq::handshake::tcp>,                                \
        combination<P, rcq::buffer::external, rcq::handshake::file>,                               \
        combination<P, rcq::buffer::external, rcq::handshake::env>

using all_combinations = testing::Types<RCQ_COMBOS_FOR(rcq::poll::busy),
                                        RCQ_COMBOS_FOR(rcq::poll::blocking),
                                        RCQ_COMBOS_FOR(rcq::poll::adaptive<64>)>;
#undef RCQ_COMBOS_FOR

class combination_names {
public:
    template <class C>
    static std::string GetName(int) {
        return name(static_cast<typename C::poll*>(nullptr)) + "_" +
               name(static_cast<typename C::buffer*>(nullptr)) + "_" +
               name(static_cast<typename C::handshake*>(nullptr));
    }

private:
    static std::string name(rcq::poll::busy*) { return "busy"; }
    static std::string name(rcq::poll::blocking*) { return "blocking"; }
    static std::string name(rcq::poll::adaptive<64>*) { return "adaptive"; }
    static std::string name(rcq::buffer::owned<8192>*) { return "owned"; }
    static std::string name(rcq::buffer::borrowed*) { return "borrowed"; }
    static std::string name(rcq::buffer::external*) { return "external"; }
    static std::string name(rcq::handshake::tcp*) { return "tcp"; }
    static std::string name(rcq::handshake::file*) { return "file"; }
    static std::string name(rcq::handshake::env*) { return "env"; }
};

TYPED_TEST_SUITE(Policies, all_combinations, combination_names);

TYPED_TEST(Policies, RoundTripWithEveryByteChecked) {
    using C = TypeParam;
    using connection = rcq::connection<typename C::handshake, typename C::buffer, typename C::poll>;
    handshake_pair<typename C::handshake> handshakes;
    buffer_source<typename C::buffer> a_memory, b_memory;
    rcq::connection_options opts;
    opts.device = rdma_test::device_name();
    opts.gid_index = rdma_test::gid_index();

    auto side_a = std::async(std::launch::async, [&] {
        connection conn(std::move(handshakes.a), opts, a_memory.config());
        run_side(conn, 1, 2);
    });
    handshakes.before_b();
    connection conn(std::move(handshakes.b), opts, b_memory.config());
    run_side(conn, 2, 1);
    side_a.get();
}

// -- the blocking policy sleeps --------------------------------------------------

double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

template <class Poll>
double cpu_seconds_of_an_idle_wait(std::chrono::milliseconds wait) {
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    Poll poller(ctx);
    rcq::cq c = poller.make_cq(ctx, 16);
    ibv_wc wc{};
    const double before = thread_cpu_seconds();
    const int n = poller.wait(c, {&wc, 1}, rcq::deadline::after(wait));
    const double used = thread_cpu_seconds() - before;
    EXPECT_EQ(n, 0) << "a completion arrived on an idle CQ";
    return used;
}

TEST(PoliciesIdle, BlockingWaitsAWholeSecondWithoutSpinning) {
    const double blocking = cpu_seconds_of_an_idle_wait<rcq::poll::blocking>(std::chrono::seconds(1));
    const double busy = cpu_seconds_of_an_idle_wait<rcq::poll::busy>(std::chrono::milliseconds(200));
    std::cout << "CPU time of an idle wait: blocking " << blocking * 1e3 << " ms over 1 s; busy "
              << busy * 1e3 << " ms over 0.2 s\n";
    EXPECT_LT(blocking, 0.1) << "the blocking policy used the CPU while it waited";
    EXPECT_GT(busy, 0.01) << "the busy policy is expected to spin (sanity check of the measure)";
}

// -- huge pages ----------------------------------------------------------------

TEST(PoliciesBuffer, OwnedMemoryOnHugePagesWhenSomeAreReserved) {
    const char* knob = "/proc/sys/vm/nr_hugepages";
    long reserved = 0;
    if (std::FILE* f = std::fopen(knob, "r")) {
        if (std::fscanf(f, "%ld", &reserved) != 1) reserved = 0;
        std::fclose(f);
    }
    if (reserved < 2) {
        std::FILE* f = std::fopen(knob, "w");
        if (f == nullptr) GTEST_SKIP() << "no huge pages reserved, and " << knob << " is not writable here";
        std::fputs("2", f);
        std::fclose(f);
    }
    rcq::context ctx = rcq::context::open(rdma_test::device_name());
    rcq::pd pd(ctx);
    rcq::buffer::owned<4096> on_huge(pd, {.huge_pages = true});
    EXPECT_TRUE(on_huge.on_huge_pages()) << on_huge.describe();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(on_huge.bytes().data()) % (2 << 20), 0u);
    rcq::buffer::owned<4096> normal(pd);
    EXPECT_FALSE(normal.on_huge_pages());
}

} // namespace
