// libFuzzer harness: rcq::from_text, the parser of the endpoint's text form
// (the env handshake's line and variable, the file handshake's "endpoint"
// line). Any input either parses or throws rcq::error; what parses prints
// back to a line that parses to the same endpoint.
#include <rcq/endpoint.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto ep = rcq::from_text(text);
        if (rcq::from_text(rcq::to_text(ep)) != ep) std::abort();
    } catch (const rcq::error&) {
    }
    return 0;
}
