// libFuzzer harness: rcq::decode, the parser of the TCP handshake's endpoint
// message. Any input either decodes or throws rcq::error; what decodes
// encodes back to the same bytes.
#include <rcq/endpoint.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto bytes = std::as_bytes(std::span(data, size));
    try {
        auto ep = rcq::decode(bytes);
        auto again = rcq::encode(ep);
        if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) std::abort();
    } catch (const rcq::error&) {
    }
    return 0;
}
