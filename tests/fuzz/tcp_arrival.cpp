// libFuzzer harness: the TCP server's check of a client's first bytes as they
// arrive (rcq::detail::check_arriving_endpoint). The first input byte picks
// the size of the pieces the rest arrives in, as recv(2) might cut it. A
// message the check calls complete must decode; a throw must be rcq::error.
#include <rcq/handshake/tcp.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t piece = 1 + data[0] % 16;
    auto rest = std::as_bytes(std::span(data + 1, size - 1));
    std::array<std::byte, rcq::endpoint_wire_size> in{};
    std::size_t got = 0;
    try {
        while (!rest.empty()) {
            auto n = std::min({piece, rest.size(), in.size() - got});
            std::copy_n(rest.begin(), n, in.begin() + static_cast<std::ptrdiff_t>(got));
            got += n;
            rest = rest.subspan(n);
            if (rcq::detail::check_arriving_endpoint(std::span(in).first(got))) {
                rcq::decode(in); // must not throw: the server calls it unguarded
                return 0;
            }
        }
    } catch (const rcq::error&) {
    }
    return 0;
}
