// libFuzzer harness: rcq::detail::parse_file_record, the parser of a peer's
// file in the file handshake. The first input byte picks the kind of file
// expected; any input either parses or throws rcq::error.
#include <rcq/handshake/file.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::string_view kind = (data[0] & 1) != 0 ? "endpoint" : "ready";
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    if (text.size() > rcq::handshake::file::max_file_size) return 0; // refused unread
    try {
        auto r = rcq::detail::parse_file_record(text, kind, "job42", "server", "fuzz");
        if (r.nonce.size() != 32) __builtin_trap();
    } catch (const rcq::error&) {
    }
    return 0;
}
