// libFuzzer harness: the authentication parts of the text handshakes' peer
// input. The first input byte picks what the rest is:
//   0: an env endpoint line ("rcq2 ... auth=<nonce>:<echo>:<tag>"),
//   1: an env go-ahead line ("rcq-go auth=<tag>"),
//   2, 3: a file handshake "endpoint" or "ready" record with its "tag" line.
// Each goes through the parsers the handshakes use (detail::split_env_auth,
// detail::parse_env_auth, detail::parse_file_record), then through the tag
// checks with a fixed secret. Anything either parses or throws rcq::error;
// a tag never verifies (the fuzzer does not know the secret).
// fuzz-flags: -DRCQ_WITH_SODIUM=1 -lsodium
#include <rcq/detail/auth.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
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
    auto [text, token] = rcq::detail::split_env_auth(line);
    auto ep = rcq::from_text(text);
    if (token.empty()) return;
    auto auth = rcq::detail::parse_env_auth(token, "fuzz");
    if (auth.nonce.size() != 64) std::abort();
    if (secret().verify(auth.tag, {"rcq env endpoint", auth.nonce, auth.echo, text})) std::abort();
    (void)ep;
}

void env_go_line(std::string_view line) {
    auto [go, token] = rcq::detail::split_env_auth(line);
    rcq::shared_secret::tag_type tag{};
    if (go != rcq::handshake::env::go_line || !rcq::detail::parse_hex_bytes(token, tag)) return;
    if (rcq::detail::go_ahead_verifies(secret(), tag, {"env", "first", "a", "b"})) std::abort();
}

void file_record(std::string_view kind, std::string_view text) {
    if (text.size() > rcq::handshake::file::max_file_size) return; // refused unread
    auto r = rcq::detail::parse_file_record(text, kind, "job42", "server", "fuzz");
    if (r.tag.empty()) return;
    rcq::shared_secret::tag_type tag{};
    if (!rcq::detail::parse_hex_bytes(r.tag, tag)) std::abort(); // the parser checked it
    const bool verifies =
        kind == "ready" ? rcq::detail::go_ahead_verifies(secret(), tag, {"file", "server", r.nonce, r.ack})
                        : secret().verify(tag, {"rcq file handshake", kind, "job42", "server", r.nonce,
                                                r.ack, r.endpoint_text});
    if (verifies) std::abort();
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
