// rcq/buffer/borrowed.hpp - the caller's memory, registered by rcq.
#pragma once

#include <rcq/category.hpp>
#include <rcq/error.hpp>
#include <rcq/mr.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rcq::buffer {

/// Memory the caller owns, which rcq registers for the connection's lifetime
/// and deregisters when done. Lifetime: the memory must stay allocated, and
/// must not be freed or remapped, until the connection (or this object) is
/// destroyed; rcq never frees it. Access is local write plus the remote
/// access asked for (IBV_ACCESS_REMOTE_*).
class borrowed {
public:
    using rcq_category = category::buffer;

    struct config {
        std::span<std::byte> memory;
    };

    borrowed(ibv_pd* domain, const config& cfg, int remote_access = 0)
        : memory_(checked(cfg.memory)), mr_(domain, memory_, IBV_ACCESS_LOCAL_WRITE | remote_access) {}

    std::span<std::byte> bytes() const noexcept { return memory_; }
    std::uint32_t lkey() const noexcept { return mr_.lkey(); }
    std::uint32_t rkey() const noexcept { return mr_.rkey(); }
    const rcq::mr& region() const noexcept { return mr_; }

    static const char* describe() noexcept { return "registered the caller's buffer"; }

private:
    static std::span<std::byte> checked(std::span<std::byte> memory) {
        if (memory.empty())
            throw_invalid("rcq::buffer::borrowed: no memory given",
                          "set config.memory to the caller's buffer, e.g. "
                          "{.memory = std::as_writable_bytes(std::span(my_vector))}");
        return memory;
    }

    std::span<std::byte> memory_;
    rcq::mr mr_;
};

} // namespace rcq::buffer
