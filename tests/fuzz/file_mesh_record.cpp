// libFuzzer harness: rcq::detail::parse_mesh_record, the parser of another
// rank's file in the file mesh handshake (a mesh of 3 ranks, the file of
// rank 1). The first input byte says whether a shared secret is in use
// (when rcq is built with libsodium; this harness is built without, so the
// tag lines are parsed and then refused); any input either parses or throws
// rcq::error.
#include <rcq/handshake/file_mesh.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    static const std::optional<rcq::shared_secret> secret = []() -> std::optional<rcq::shared_secret> {
        if (!rcq::authentication_available) return std::nullopt;
        constexpr std::string_view key = "rcq fuzzing secret, never used for real"; // as the seeds'
        return rcq::shared_secret::from_bytes(std::as_bytes(std::span(key.data(), key.size())));
    }();
    const rcq::shared_secret* with = (data[0] & 1) != 0 && secret ? &*secret : nullptr;
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    if (text.size() > rcq::handshake::file_mesh::max_file_size(3)) return 0; // refused unread
    try {
        auto r = rcq::detail::parse_mesh_record(text, 1, "job7", 3, with, "fuzz");
        if (r.nonce.size() != 32 || r.acks.size() != 3 || r.endpoints.size() != 3) __builtin_trap();
        if (!r.acks[1].empty()) __builtin_trap(); // the writer's own slot
    } catch (const rcq::error&) {
    }
    return 0;
}
