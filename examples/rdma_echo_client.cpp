// rdma_echo_client: one of many clients of rdma_echo_server.
//
// Connects to the server over TCP (a plain handshake::tcp client: the server's
// listener speaks the same protocol), brings its RC QP to RTS, then sends -n
// messages whose sizes vary from 1 byte to -s bytes (at most 4096, the
// server's slot), each filled with a pattern of its own, and checks every
// byte of each echo. An empty message tells the server it has finished.
// Prints one line when connected and one when done.
#include "example_options.hpp"

#include <rcq/connection.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <unistd.h>

namespace {

/// The server's SRQ slot: the largest message it can take.
constexpr std::size_t largest = 4096;
constexpr std::uint64_t send_id = 1;
constexpr std::uint64_t recv_id = 2;

/// The size of message `i`: the first is 1 byte, the second `most`, the
/// others spread between (a multiplicative hash of i, so consecutive
/// messages differ in size).
std::uint32_t size_of(std::size_t i, std::size_t most) {
    if (i == 0) return 1;
    if (i == 1) return static_cast<std::uint32_t>(most);
    return static_cast<std::uint32_t>(1 + (i * 2654435761u) % most);
}

template <class Poll>
int run_client(const example::options& opt, std::size_t messages, std::size_t most) {
    using namespace rcq;
    connection_options co = example::connection_options(opt);
    co.narrate = nullptr; // one line per client, not per step
    const auto start = std::chrono::steady_clock::now();
    connection<Poll, buffer::owned<2 * largest>, handshake::tcp> conn(
        handshake::tcp::client(opt.server, opt.port, opt.timeout), co);
    const std::string who = "[echo client " + std::to_string(::getpid()) + "] ";
    const auto since_start = [start] {
        return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count()) +
               " ms";
    };
    std::cout << who << "connected in " << since_start() << " to " << opt.server << ":" << opt.port << " (QPN " << conn.queue_pair().qp_num()
              << "), sending " << messages << " messages of 1.." << most << " bytes\n"
              << std::flush;
    // The echo lands in the second half; the message goes out of the first.
    const auto out = conn.buffer().first(largest);
    const auto in = conn.buffer().subspan(largest, largest);
    if (int rc = conn.post_recv(largest, largest, recv_id); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
    conn.ready();

    std::uint64_t bytes = 0;
    const auto seed = static_cast<std::uint8_t>(::getpid());
    for (std::size_t i = 0; i < messages; ++i) {
        const std::uint32_t size = size_of(i, most);
        const auto pattern = static_cast<std::uint8_t>(seed + i * 13);
        example::fill_message(out.first(size), {}, pattern);
        if (int rc = conn.post_send(0, size, send_id); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
        const ibv_wc echo = conn.wait_recv("the echo of message " + std::to_string(i));
        conn.wait_for(send_id, "the completion of message " + std::to_string(i));
        if (echo.byte_len != size)
            rcq::throw_invalid("the echo of message " + std::to_string(i) + " has " + std::to_string(echo.byte_len) +
                               " bytes, expected " + std::to_string(size));
        if (auto bad = example::check_message(in.first(size), {}, pattern))
            rcq::throw_invalid("byte " + std::to_string(*bad) + " of the echo of message " + std::to_string(i) +
                               " (" + std::to_string(size) + " bytes) is wrong");
        bytes += size;
        // The next echo's receive, before the next message can cause it.
        if (int rc = conn.post_recv(largest, largest, recv_id); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
    }
    // An empty SEND: "finished". Its completion means the server has it.
    if (int rc = conn.post_send(0, 0, send_id); rc != 0) rcq::throw_error("ibv_post_send", {}, rc);
    conn.wait_for(send_id, "the completion of the closing empty message");
    std::cout << who << "done: " << messages << " messages, " << bytes << " bytes echoed in " << since_start()
              << ", every byte checked\n"
              << std::flush;
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return example::run("rdma_echo_client", true, [&] {
        const example::options opt = example::parse(argc, argv, true);
        if (opt.handshake != example::handshake_kind::tcp)
            throw example::usage_error("the echo server listens over TCP: --handshake=tcp only");
        if (opt.size > largest)
            throw example::usage_error("-s " + std::to_string(opt.size) + ": the server takes messages of at most " +
                                       std::to_string(largest) + " bytes");
        const std::size_t messages = opt.iterations != 0 ? opt.iterations : 100;
        switch (opt.poll) {
        case example::poll_kind::busy: return run_client<rcq::poll::busy>(opt, messages, opt.size);
        case example::poll_kind::blocking: return run_client<rcq::poll::blocking>(opt, messages, opt.size);
        default: return run_client<rcq::poll::adaptive<>>(opt, messages, opt.size);
        }
    });
}
