// Writes the fuzz harnesses' seed corpus (tests/fuzz/corpus/<harness>/) with
// rcq's own encoders, so that the seeds follow the wire version: endpoints
// from rcq::encode and rcq::to_text, RDMA CM tokens from encode_cm_token,
// tags from rcq::shared_secret and detail::go_ahead_tag with a fixed secret
// and fixed nonces (so the output is the same on every run). The ctest
// `fuzz_seeds_current` runs it and compares with the committed seeds; after
// a wire change, regenerate them with
//   build/tests/rcq_fuzz_seeds tests/fuzz/corpus
#include <rcq/detail/auth.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>
#include <rcq/handshake/rdma_cm.hpp>
#include <rcq/handshake/file_mesh.hpp>
#include <rcq/secret.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;

rcq::endpoint plain() {
    rcq::endpoint ep{};
    ep.qpn = 0x11;
    ep.psn = 0x123456;
    ep.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 2, 15};
    ep.mtu = 1024;
    ep.initiator_depth = 16;
    ep.responder_resources = 16;
    return ep;
}

rcq::endpoint with_memory() {
    auto ep = plain();
    ep.remote_addr = 0x7f0000001000;
    ep.rkey = 0x1234;
    ep.remote_len = 0x1000;
    return ep;
}

std::string bytes_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A harness whose first input byte picks a mode: that byte, then `rest`.
std::string picked(unsigned char mode, std::string_view rest) {
    return std::string(1, static_cast<char>(mode)) + std::string(rest);
}

const rcq::shared_secret& secret() {
    static const auto s = [] {
        constexpr std::string_view text = "rcq fuzzing secret, never used for real";
        return rcq::shared_secret::from_bytes(std::as_bytes(std::span(text.data(), text.size())));
    }();
    return s;
}

const std::string nonce_a(64, 'a'); // env nonces: 32 bytes as hex
const std::string nonce_b(64, 'b');
const std::string file_nonce_a = "0123456789abcdef0123456789abcdef"; // file nonces: 16 bytes
const std::string file_nonce_b = "fedcba9876543210fedcba9876543210";

// A file handshake record as rcq::handshake::file writes it, from the
// server (the side the harnesses expect) of session job42.
std::string file_record(std::string_view kind, std::string_view endpoint_text, bool tagged) {
    std::string text(rcq::detail::file_format_line);
    text += "\nfile " + std::string(kind) + "\nsession job42\nside server\nnonce " + file_nonce_a +
            "\nack " + file_nonce_b + "\nhost node7\npid 4242\ntime 1718000000\n";
    if (!endpoint_text.empty()) text += "endpoint " + std::string(endpoint_text) + "\n";
    if (tagged) {
        auto tag = kind == "ready"
                       ? rcq::detail::go_ahead_tag(secret(), {"file", "server", file_nonce_a, file_nonce_b})
                       : secret().tag({"rcq file handshake", kind, "job42", "server", file_nonce_a,
                                       file_nonce_b, endpoint_text});
        text += "tag " + rcq::detail::hex_bytes(tag) + "\n";
    }
    return text;
}

// The file of rank 1 in a file mesh of 3 ranks, session job7, as
// rcq::handshake::file_mesh writes it once it has every rank's nonce.
std::string mesh_record(bool tagged) {
    std::string text(rcq::detail::mesh_format_line);
    text += "\nsession job7\nrank 1\nsize 3\nstate ready\nnonce " + file_nonce_a + "\nack 0 " +
            file_nonce_b + "\nack 2 " + file_nonce_b + "\nhost node7\npid 4242\ntime 1718000000\n";
    auto ep = plain();
    for (std::uint32_t j : {0u, 2u}) {
        ep.qpn = 0x100 + j;
        text += "endpoint " + std::to_string(j) + " " + rcq::to_text(ep) + "\n";
    }
    if (tagged) text += "tag " + rcq::detail::hex_bytes(secret().tag({"rcq file mesh", text})) + "\n";
    return text;
}

// An env endpoint line with its auth= part, as the env handshake writes it.
std::string env_line(const rcq::endpoint& ep, const std::string& nonce, const std::string& echo) {
    auto text = rcq::to_text(ep);
    return text + " auth=" + nonce + ":" + echo + ":" +
           rcq::detail::hex_bytes(secret().tag({"rcq env endpoint", nonce, echo, text}));
}

std::string env_go(std::string_view sender, const std::string& from, const std::string& to) {
    return std::string(rcq::handshake::env::go_line) + " auth=" +
           rcq::detail::hex_bytes(rcq::detail::go_ahead_tag(secret(), {"env", sender, from, to}));
}

class writer {
public:
    explicit writer(fs::path root) : root_(std::move(root)) {}
    void operator()(const std::string& harness, const std::string& name, const std::string& content) {
        fs::create_directories(root_ / harness);
        std::ofstream out(root_ / harness / name, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out) throw std::runtime_error("cannot write " + (root_ / harness / name).string());
    }

private:
    fs::path root_;
};

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " CORPUS_DIR (writes CORPUS_DIR/<harness>/<seed>)\n";
        return 2;
    }
    writer put(argv[1]);
    const auto wire = bytes_of(rcq::encode(plain()));
    const auto wire_memory = bytes_of(rcq::encode(with_memory()));
    // The header of the version before this one: the version check's other side.
    std::string older = wire.substr(0, rcq::detail::endpoint_header_size);
    older[5] = static_cast<char>(rcq::endpoint_wire_version - 1);

    put("decode", "plain", wire);
    put("decode", "memory", wire_memory);
    put("decode", "header_only", wire.substr(0, rcq::detail::endpoint_header_size));
    put("decode", "older_version", older + wire.substr(rcq::detail::endpoint_header_size));
    put("decode", "http", "GET / HTTP/1.1\r\n\r\n");

    const auto text = rcq::to_text(plain());
    put("from_text", "plain", text);
    put("from_text", "memory", rcq::to_text(with_memory()));
    put("from_text", "bad_key", "rcq" + std::to_string(rcq::endpoint_wire_version) + " qpn=0x1 color=0x2");
    put("from_text", "older_version", "rcq" + std::to_string(rcq::endpoint_wire_version - 1) +
                                          text.substr(text.find(' ')));

    put("tcp_arrival", "whole", picked(15, wire));
    put("tcp_arrival", "pieces", picked(2, wire_memory));
    put("tcp_arrival", "ssh", picked(3, "SSH-2.0-OpenSSH_9.2\r\n"));

    put("file_record", "endpoint", picked(1, file_record("endpoint", text, false)));
    put("file_record", "ready", picked(0, file_record("ready", {}, false)));

    put("file_mesh_record", "plain", picked(0, mesh_record(false)));
    put("file_mesh_record", "tagged", picked(1, mesh_record(true)));

    const std::string go(rcq::handshake::env::go_line);
    put("env_lines", "both", text + "\n" + go + "\n");
    put("env_lines", "crlf", text + "\r\n" + go + "\r\n");
    put("env_lines", "garbage", "rcq-x\n");

    put("auth_field", "env_first", picked(0, env_line(with_memory(), nonce_a, "none")));
    put("auth_field", "env_second", picked(0, env_line(plain(), nonce_b, nonce_a)));
    put("auth_field", "env_go", picked(1, env_go("first", nonce_a, nonce_b)));
    put("auth_field", "file_endpoint",
        picked(2, file_record("endpoint", rcq::to_text(with_memory()), true)));
    put("auth_field", "file_ready", picked(3, file_record("ready", {}, true)));

    namespace cm = rcq::handshake::detail;
    const auto token = bytes_of(cm::encode_cm_token(with_memory()));
    put("cm_token", "padded", token + std::string(cm::cm_request_private_data_max - token.size(), '\0'));
    put("cm_token", "exact", bytes_of(cm::encode_cm_token(plain())));
    put("cm_token", "short", token.substr(0, 10));
    return 0;
}
