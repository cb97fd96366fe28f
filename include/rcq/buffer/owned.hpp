// rcq/buffer/owned.hpp - memory that rcq allocates and registers.
#pragma once

#include <rcq/error.hpp>
#include <rcq/mr.hpp>
#include <rcq/pd.hpp>
#include <rcq/category.hpp>

#include <infiniband/verbs.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>

namespace rcq::buffer {

/// `Bytes` of page-aligned memory, zero-filled, allocated and registered by
/// rcq and freed after deregistration. Least privilege: local write, plus the
/// remote access the caller asks for in `config::access`.
template <std::size_t Bytes = 4096>
class owned {
    static_assert(Bytes > 0, "rcq::buffer::owned<Bytes>: Bytes must be positive");

public:
    using rcq_category = category::buffer;

    struct config {
        /// Extra IBV_ACCESS_* flags, e.g. IBV_ACCESS_REMOTE_WRITE.
        int access = 0;
    };

    owned(const pd& domain, const config& cfg = {})
        : memory_(allocate()), mr_(domain, {memory_.get(), size()}, IBV_ACCESS_LOCAL_WRITE | cfg.access) {}

    static constexpr std::size_t size() noexcept { return Bytes; }
    std::span<std::byte> bytes() const noexcept { return {memory_.get(), Bytes}; }
    std::uint32_t lkey() const noexcept { return mr_.lkey(); }
    std::uint32_t rkey() const noexcept { return mr_.rkey(); }
    const rcq::mr& region() const noexcept { return mr_; }

private:
    struct free_memory {
        void operator()(std::byte* p) const noexcept { std::free(p); }
    };

    static std::unique_ptr<std::byte, free_memory> allocate() {
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t rounded = (Bytes + page - 1) / page * page;
        auto* p = static_cast<std::byte*>(std::aligned_alloc(page, rounded));
        if (p == nullptr) throw_error("aligned_alloc(" + std::to_string(rounded) + " bytes)");
        std::memset(p, 0, rounded);
        return std::unique_ptr<std::byte, free_memory>(p);
    }

    std::unique_ptr<std::byte, free_memory> memory_; // declared first: outlives mr_
    rcq::mr mr_;
};

} // namespace rcq::buffer
