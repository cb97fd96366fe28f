// rdma_write_read: SEND/RECV both ways, then one-sided RDMA WRITE and READ.
//
//   rdma_write_read server [device] [port] [gid_index] [flags]
//   rdma_write_read client <server_ip> [device] [port] [gid_index] [flags]
//
// with the flags of rdma_server and rdma_client (-s up to 65536).
//
// Both sides grant the peer remote read and write on their buffer, so the
// memory token (address, rkey, length) travels with each endpoint. After a
// greeting each way, the client WRITEs a message into the server's buffer,
// READs it back into its own and compares, then SENDs "done"; the server,
// which took no part in the WRITE or READ, checks the bytes that arrived in
// its memory. Both end with the closing exchange of rdma_server/rdma_client
// (example_options.hpp), so neither exits before both have succeeded.
// Narrates each step unless --quiet.
//
// An rkey is remote access to the buffer, so rcq sends it only over an
// authenticated handshake unless told otherwise: with RCQ_SECRET set (the
// same secret on both sides) the handshake is authenticated; without it this
// example says so and sends the token in the clear, as on a trusted test
// network.
#include "example_options.hpp"

#include <rcq/rcq.hpp>

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace {

constexpr std::size_t message_at = 0;      // SEND/RECV messages
constexpr std::size_t written_at = 65536;  // where the client WRITEs in the server
constexpr std::size_t readback_at = 131072; // where the client READs back into
constexpr std::size_t closing_at = 196608;  // the closing words
constexpr std::uint32_t small = 64;

using connection = rcq::connection<rcq::buffer::owned<262144>>;

rcq::handshake::tcp authenticated(rcq::handshake::tcp hs, auto say) {
    if (std::getenv("RCQ_SECRET") != nullptr) {
        hs.authenticate(rcq::shared_secret::from_env("RCQ_SECRET"));
        say("the handshake is authenticated with $RCQ_SECRET");
    } else {
        hs.allow_memory_without_secret();
        say("RCQ_SECRET is not set: the memory token goes unauthenticated (trusted network only)");
    }
    return hs;
}

rcq::connection_options remote_options(const example::options& opt) {
    rcq::connection_options c = example::connection_options(opt);
    c.remote_access = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
    return c;
}

void post_recv(connection& conn, std::uint64_t id) {
    if (int rc = conn.post_recv(message_at, small, id); rc != 0) rcq::throw_error("ibv_post_recv", {}, rc);
}

void send_text(connection& conn, std::string_view text, std::uint64_t id) {
    std::memcpy(conn.buffer().data() + message_at, text.data(), text.size());
    if (int rc = conn.post_send(message_at, static_cast<std::uint32_t>(text.size()), id); rc != 0)
        rcq::throw_error("ibv_post_send", {}, rc);
}

std::string text_of(connection& conn, const ibv_wc& wc) {
    return {reinterpret_cast<const char*>(conn.buffer().data() + message_at), wc.byte_len};
}

int serve(const example::options& opt, auto say) {
    say("waiting for a client on TCP port " + std::to_string(opt.port));
    connection conn(authenticated(rcq::handshake::tcp::server(opt.port, opt.timeout), say),
                    remote_options(opt));
    post_recv(conn, 1);
    conn.ready();
    say("client says: \"" + text_of(conn, conn.wait_recv("the client's greeting")) + "\"");
    post_recv(conn, 2); // for the client's "done", before it can be sent
    example::post_closing_recv(conn, closing_at); // then for its closing "ok"
    send_text(conn, "hello from the server", 3);
    conn.wait_for(3, "the reply (SEND)"); // the "done" may complete first: set aside
    say("replied; now the client WRITEs into this buffer and READs it back");

    const ibv_wc done = conn.wait_recv("the client's \"done\"");
    const std::string said = text_of(conn, done);
    // The length comes from the peer: checked against the area it may write.
    const std::size_t length = example::length_from_peer(said, "done ", readback_at - written_at);
    auto arrived = conn.buffer().subspan(written_at, length);
    if (auto bad = example::check_message(arrived, "written by the client", 0x3c))
        rcq::throw_invalid("byte " + std::to_string(*bad) + " the client wrote is wrong");
    say("the client's RDMA WRITE left " + std::to_string(length) + " bytes at offset " +
        std::to_string(written_at) + ": \"" +
        std::string(example::greeting_of(arrived, "written by the client")) +
        "\" (every byte checked)");
    example::closing_exchange(conn, say, closing_at);
    say("done");
    return 0;
}

int connect(const example::options& opt, auto say) {
    say("connecting to " + opt.server + ":" + std::to_string(opt.port));
    connection conn(authenticated(rcq::handshake::tcp::client(opt.server, opt.port, opt.timeout), say),
                    remote_options(opt));
    const rcq::remote_region server = rcq::remote_region::of(conn.remote());
    say("the server's memory: " + std::to_string(server.length()) + " bytes, rkey 0x" +
        rcq::detail::hex(server.rkey()));

    post_recv(conn, 1);
    example::post_closing_recv(conn, closing_at);
    conn.ready();
    send_text(conn, "hello from the client", 2);
    for (int seen = 0; seen < 2; ++seen) {
        const ibv_wc wc = conn.wait("the greeting's SEND and the server's reply");
        if (wc.opcode == IBV_WC_RECV) say("server says: \"" + text_of(conn, wc) + "\"");
    }

    const auto length = static_cast<std::uint32_t>(opt.size);
    auto out = conn.buffer().subspan(written_at, length);
    example::fill_message(out, "written by the client", 0x3c);
    const ibv_sge from = rcq::local(conn.buffer_policy(), written_at, length);
    rcq::write_op write(from, server.slice(written_at, length), 10);
    if (int rc = conn.queue_pair().post_send(write); rc != 0) rcq::throw_error("ibv_post_send(WRITE)", {}, rc);
    conn.wait("the RDMA WRITE");
    say("RDMA WRITE of " + std::to_string(length) + " bytes into the server's buffer completed");

    const ibv_sge into = rcq::local(conn.buffer_policy(), readback_at, length);
    rcq::read_op read(into, server.slice(written_at, length), 11);
    if (int rc = conn.queue_pair().post_send(read); rc != 0) rcq::throw_error("ibv_post_send(READ)", {}, rc);
    conn.wait("the RDMA READ");
    if (std::memcmp(conn.buffer().data() + written_at, conn.buffer().data() + readback_at, length) != 0)
        rcq::throw_invalid("the bytes READ back differ from those written");
    say("RDMA READ brought the " + std::to_string(length) + " bytes back: identical");

    send_text(conn, "done " + std::to_string(length), 12);
    conn.wait("the \"done\" SEND");
    example::closing_exchange(conn, say, closing_at);
    say("done");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const std::string_view role = argc > 1 ? argv[1] : "";
    const bool is_client = role == "client";
    return example::run("rdma_write_read", is_client, [&] {
        if (role != "server" && role != "client")
            throw example::usage_error("the first argument must be `server` or `client`");
        example::options opt = example::parse(argc - 1, argv + 1, is_client);
        if (opt.size > 65536) throw example::usage_error("rdma_write_read takes -s up to 65536");
        auto say = [&](const std::string& line) {
            if (!opt.quiet) std::cout << (is_client ? "[client] " : "[server] ") << line << '\n' << std::flush;
        };
        return is_client ? connect(opt, say) : serve(opt, say);
    });
}
