// custom_policies: rcq::connection with two policies written here, not in rcq.
//
//   custom_policies [device] [--quiet]
//
// - unix_socket_handshake: swaps endpoints over a Unix domain socket, for two
//   processes on one machine (a handshake policy).
// - spin_then_yield<N>: polls N times with a pause instruction between
//   polls, then yields the core between polls (a polling policy).
//
// They are combined with the built-in rcq::buffer::borrowed. The program
// forks: the parent is one side, the child the other; each sends a message
// and checks the one it receives.
#include <rcq/rcq.hpp>

#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

// A handshake policy: a type tagged with rcq::category::handshake that can
// exchange() endpoints and barrier(), bounded by a deadline (see
// rcq/policy.hpp for the concept). It reuses rcq's endpoint codec and its
// deadline-bounded socket I/O.
class unix_socket_handshake {
public:
    using rcq_category = rcq::category::handshake;

    static unix_socket_handshake listen(const std::string& path, std::chrono::milliseconds timeout) {
        unix_socket_handshake h(path, timeout);
        sockaddr_un addr = address(path);
        ::unlink(path.c_str());
        h.listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!h.listener_ || ::bind(h.listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(h.listener_.get(), 1) != 0)
            rcq::throw_error("unix socket handshake: listening on " + path);
        return h;
    }

    static unix_socket_handshake connect(const std::string& path, std::chrono::milliseconds timeout) {
        return unix_socket_handshake(path, timeout);
    }

    rcq::endpoint exchange(const rcq::endpoint& local) {
        open();
        const auto out = rcq::encode(local);
        rcq::detail::write_all(conn_.get(), out, deadline_, "unix socket handshake: sending");
        std::array<std::byte, rcq::endpoint_wire_size> in{};
        rcq::detail::read_exact(conn_.get(), in, deadline_, "unix socket handshake: receiving");
        return rcq::decode(in);
    }

    void barrier() {
        const std::byte go{0x47};
        std::byte got{};
        rcq::detail::write_all(conn_.get(), std::span(&go, 1), deadline_, "unix socket handshake: go-ahead");
        rcq::detail::read_exact(conn_.get(), std::span(&got, 1), deadline_, "unix socket handshake: go-ahead");
        if (got != go) rcq::throw_invalid("unix socket handshake: the peer sent no go-ahead");
    }

    std::string describe() const { return "unix socket " + path_; }

private:
    unix_socket_handshake(std::string path, std::chrono::milliseconds timeout)
        : path_(std::move(path)), deadline_(rcq::deadline::after(timeout)) {}

    static sockaddr_un address(const std::string& path) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof addr.sun_path) rcq::throw_invalid("socket path too long: " + path);
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        return addr;
    }

    void open() {
        if (conn_) return;
        if (listener_) { // server: accept one peer before the deadline
            if (!rcq::detail::wait_for(listener_.get(), POLLIN, deadline_, "unix socket handshake: accept"))
                rcq::throw_error("unix socket handshake: no peer on " + path_, {}, ETIMEDOUT);
            conn_.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
            if (!conn_) rcq::throw_error("unix socket handshake: accept on " + path_);
            listener_.reset();
            return;
        }
        const sockaddr_un addr = address(path_);
        while (true) { // client: retry until the server listens, or the deadline
            conn_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (::connect(conn_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
            if (deadline_.expired())
                rcq::throw_error("unix socket handshake: could not connect to " + path_,
                                 "is the other side running?");
            ::usleep(10000);
        }
        ::fcntl(conn_.get(), F_SETFL, ::fcntl(conn_.get(), F_GETFL) | O_NONBLOCK);
    }

    std::string path_;
    rcq::deadline deadline_;
    rcq::detail::unique_fd listener_, conn_;
};

// A polling policy: tagged with rcq::category::poll, it makes the CQ it
// waits on and waits under a deadline without throwing. Its own state (how
// often it yielded) is reached through connection::poll_policy().
template <unsigned Spins>
class spin_then_yield {
public:
    using rcq_category = rcq::category::poll;

    explicit spin_then_yield(ibv_context*) noexcept {}

    rcq::cq make_cq(ibv_context* ctx, int depth) { return rcq::cq(ctx, depth); }

    int wait(const rcq::cq& c, std::span<ibv_wc> out, const rcq::deadline& until) noexcept {
        for (unsigned i = 0;; ++i) {
            if (int n = c.poll(out); n != 0) return n;
            if (i < Spins) {
                __builtin_ia32_pause(); // let the sibling hyperthread run
            } else {
                if (until.expired()) return 0;
                sched_yield();
                ++yields_;
            }
        }
    }

    unsigned long yields() const noexcept { return yields_; }
    static const char* describe() noexcept { return "spin with pause, then yield"; }

private:
    unsigned long yields_ = 0;
};

using connection =
    rcq::connection<spin_then_yield<1000>, rcq::buffer::borrowed, unix_socket_handshake>;

static int run_side(bool first, const std::string& device, bool quiet) {
    const std::string path = "/tmp/rcq-custom-policies-" + std::to_string(first ? getpid() : getppid());
    const auto timeout = std::chrono::seconds(20);
    std::vector<std::byte> memory(8192); // borrowed: ours, registered by rcq
    rcq::connection_options opts;
    opts.device = device;
    opts.narrate = quiet ? nullptr : &std::cout;
    connection conn(first ? unix_socket_handshake::listen(path, timeout)
                          : unix_socket_handshake::connect(path, timeout),
                    opts, {.memory = memory});
    const std::string mine = first ? "first side" : "second side";
    const std::string theirs = first ? "second side" : "first side";
    if (conn.post_recv(4096, 4096, 1) != 0) rcq::throw_error("ibv_post_recv");
    conn.ready();
    std::memcpy(memory.data(), mine.data(), mine.size());
    if (conn.post_send(0, static_cast<std::uint32_t>(mine.size()), 2) != 0) rcq::throw_error("ibv_post_send");
    std::string got;
    for (int i = 0; i < 2; ++i) {
        const ibv_wc wc = conn.wait("the SEND and the peer's message");
        if (wc.wr_id == 1) got.assign(reinterpret_cast<const char*>(memory.data() + 4096), wc.byte_len);
    }
    if (got != theirs) rcq::throw_invalid("expected \"" + theirs + "\", got \"" + got + "\"");
    std::cout << "[" << mine << "] received \"" << got << "\" through custom policies ("
              << conn.poll_policy().yields() << " yields while waiting)\n";
    if (first) ::unlink(path.c_str());
    return 0;
}

int main(int argc, char** argv) {
    std::string device;
    bool quiet = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--quiet") quiet = true;
        else if (arg == "-h" || arg == "--help") {
            std::cout << "usage: custom_policies [device] [--quiet]\n";
            return 0;
        } else device = arg;
    }
    std::cout << std::flush;
    const pid_t child = fork();
    if (child < 0) {
        std::perror("fork");
        return 1;
    }
    int status = 1;
    try {
        status = run_side(child != 0, device, quiet || child == 0);
    } catch (const std::exception& e) {
        std::cerr << "custom_policies (" << (child != 0 ? "first" : "second") << " side): error: " << e.what() << '\n';
        status = 1;
    }
    if (child == 0) _exit(status);
    int child_status = 0;
    waitpid(child, &child_status, 0);
    const bool ok = status == 0 && WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0;
    std::cout << (ok ? "custom_policies: both sides succeeded\n" : "custom_policies: FAILED\n");
    return ok ? 0 : 1;
}
