// libFuzzer harness: the env handshake's reading of the peer's lines (its
// endpoint line, then the go-ahead), through the public API: the input is
// what arrives on the handshake's input pipe, then the pipe is closed.
// exchange() and barrier() either succeed or throw rcq::error; they never
// wait (the input is all there), so a short budget is never reached.
#include <rcq/handshake/env.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <fcntl.h>
#include <unistd.h>

namespace {

rcq::endpoint local() {
    rcq::endpoint ep{};
    ep.qpn = 1;
    return ep;
}

int null_fd() {
    static int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 60000) return 0; // must fit in the pipe before anyone reads it
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 16);
    std::size_t done = 0;
    while (done < size) {
        auto n = ::write(fds[1], data + done, size - done);
        if (n <= 0) std::abort();
        done += static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
    try {
        rcq::handshake::env hs(rcq::handshake::env_options{.timeout = std::chrono::seconds{5},
                                                           .variable = "RCQ_FUZZ_NEVER_SET",
                                                           .in_fd = fds[0],
                                                           .out_fd = null_fd()});
        hs.exchange(local());
        hs.barrier();
    } catch (const rcq::error& e) {
        if (e.code().value() == ETIMEDOUT) std::abort(); // all input was there: no wait
    }
    ::close(fds[0]);
    return 0;
}
