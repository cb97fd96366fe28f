// libFuzzer harness: rcq::handshake::detail::decode_cm_token, the parser of
// an rcq peer's RDMA CM private data (a connect request or reply, which the
// CM pads with zeros). Any input either decodes or throws rcq::error; what
// decodes encodes back to the input's first cm_token_size bytes.
// fuzz-flags: -lrdmacm -libverbs
#include <rcq/handshake/rdma_cm.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace cm = rcq::handshake::detail;
    if (size > cm::cm_reply_private_data_max) return 0; // the CM delivers no more
    auto bytes = std::as_bytes(std::span(data, size));
    try {
        auto ep = cm::decode_cm_token(bytes);
        auto again = cm::encode_cm_token(ep);
        if (!std::equal(again.begin(), again.end(), bytes.begin())) std::abort();
    } catch (const rcq::error&) {
    }
    return 0;
}
