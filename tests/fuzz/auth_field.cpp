// libFuzzer harness: the authentication parts of the text handshakes' peer
// input. The first input byte picks what the rest is:
//   0: an env endpoint line ("rcq2 ... auth=<nonce>:<echo>:<tag>"),
//   1: an env go-ahead line ("rcq-go auth=<tag>"),
//   2, 3: a file handshake "endpoint" or "ready" record with its "tag" line.
// Each goes through the parsers the handshakes use (detail::split_env_auth,
// detail::parse_env_auth, detail::parse_file_record), then through the tag
// checks with the fixed secret the seeds were made with (so the seeds'
// tags verify). Anything either parses or throws rcq::error; a tag that
// verifies no longer does with one bit changed.
// fuzz-flags: -DRCQ_WITH_SODIUM=1 -lsodium
#include <rcq/detail/auth.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

namespace {

const rcq::shared_secret& secret() {
    static const auto s = [] {
        constexpr std::string_view text = "rcq fuzzing secret, never used for real";
        return rcq::shared_secret::from_bytes(std::as_bytes(std::span(text.data(), text.size())));
    }();
    return s;
}

void env_endpoint_line(std::string_view line) {
    const auto parts = rcq::detail::split_env_auth(line);
    const std::string_view text = parts.text, token = parts.auth;
    auto ep = rcq::from_text(text);
    if (token.empty()) return;
    auto auth = rcq::detail::parse_env_auth(token, "fuzz");
    if (auth.nonce.size() != 64) std::abort();
    auto verifies = [&] { return secret().verify(auth.tag, {"rcq env endpoint", auth.nonce, auth.echo, text}); };
    if (verifies()) {
        auth.tag[0] ^= 1;
        if (verifies()) std::abort();
    }
    (void)ep;
}

void env_go_line(std::string_view line) {
    auto [go, token] = rcq::detail::split_env_auth(line);
    rcq::shared_secret::tag_type tag{};
    if (go != rcq::handshake::env::go_line || !rcq::detail::parse_hex_bytes(token, tag)) return;
    static const std::string first_nonce(64, 'a'), second_nonce(64, 'b'); // the seeds' nonces
    const rcq::detail::go_ahead_binding binding{"env", "first", first_nonce, second_nonce};
    if (rcq::detail::go_ahead_verifies(secret(), tag, binding)) {
        tag[31] ^= 0x80;
        if (rcq::detail::go_ahead_verifies(secret(), tag, binding)) std::abort();
    }
}

void file_record(std::string_view kind, std::string_view text) {
    if (text.size() > rcq::handshake::file::max_file_size) return; // refused unread
    auto r = rcq::detail::parse_file_record(text, kind, "job42", "server", "fuzz");
    if (r.tag.empty()) return;
    rcq::shared_secret::tag_type tag{};
    if (!rcq::detail::parse_hex_bytes(r.tag, tag)) std::abort(); // the parser checked it
    auto verifies = [&] {
        return kind == "ready" ? rcq::detail::go_ahead_verifies(secret(), tag, {"file", "server", r.nonce, r.ack})
                               : secret().verify(tag, {"rcq file handshake", kind, "job42", "server", r.nonce,
                                                       r.ack, r.endpoint_text});
    };
    if (verifies()) {
        tag[7] ^= 4;
        if (verifies()) std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        switch (data[0] % 4) {
        case 0: env_endpoint_line(rest); break;
        case 1: env_go_line(rest); break;
        case 2: file_record("endpoint", rest); break;
        default: file_record("ready", rest); break;
        }
    } catch (const rcq::error&) {
    }
    return 0;
}
