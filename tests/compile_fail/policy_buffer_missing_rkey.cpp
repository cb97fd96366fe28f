// expect-error: the buffer policy does not satisfy rcq::buffer_policy
// A type tagged as a buffer policy must still do what the category needs.
#include <rcq/connection.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

struct my_buffer {
    using rcq_category = rcq::category::buffer;
    struct config {};
    my_buffer(ibv_pd*, const config&, int) {}
    std::span<std::byte> bytes() const { return {}; }
    std::uint32_t lkey() const { return 0; }
#ifndef RCQ_BREAK
    std::uint32_t rkey() const { return 0; }
#endif
};

using conn = rcq::connection<my_buffer>;
static_assert(sizeof(conn) > 0);

int main() {}
