// rcq/buffer/owned.hpp - memory that rcq allocates and registers.
#pragma once

#include <rcq/category.hpp>
#include <rcq/error.hpp>
#include <rcq/mr.hpp>

#include <infiniband/verbs.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>

namespace rcq::buffer {

/// `Bytes` of page-aligned, zero-filled memory that rcq maps, registers, and
/// unmaps after deregistering. Access is least privilege: local write, plus
/// only the remote access asked for (IBV_ACCESS_REMOTE_*).
///
/// With `config::huge_pages`, the memory comes from 2 MiB huge pages (fewer
/// NIC translation entries for large buffers); when the system has none
/// reserved (/proc/sys/vm/nr_hugepages), it falls back to normal pages and
/// describe() says so.
template <std::size_t Bytes = 4096>
class owned {
    static_assert(Bytes > 0, "rcq::buffer::owned<Bytes>: Bytes must be positive");

public:
    using rcq_category = category::buffer;

    struct config {
        bool huge_pages = false;
    };

    explicit owned(ibv_pd* domain, const config& cfg = {}, int remote_access = 0)
        : memory_(map(cfg.huge_pages, note_)),
          mr_(domain, bytes(), IBV_ACCESS_LOCAL_WRITE | remote_access) {}

    owned(owned&&) noexcept = default;
    owned& operator=(owned&&) = delete;

    static constexpr std::size_t size() noexcept { return Bytes; }
    std::span<std::byte> bytes() const noexcept { return {memory_.data, Bytes}; }
    std::uint32_t lkey() const noexcept { return mr_.lkey(); }
    std::uint32_t rkey() const noexcept { return mr_.rkey(); }
    const rcq::mr& region() const noexcept { return mr_; }
    bool on_huge_pages() const noexcept { return memory_.huge; }

    std::string describe() const { return "registered an owned buffer" + note_; }

private:
    static constexpr std::size_t huge_page = std::size_t{2} << 20;

    struct mapping {
        std::byte* data = nullptr;
        std::size_t length = 0;
        bool huge = false;

        mapping(std::byte* d, std::size_t n, bool h) noexcept : data(d), length(n), huge(h) {}
        mapping(mapping&& other) noexcept
            : data(std::exchange(other.data, nullptr)), length(other.length), huge(other.huge) {}
        mapping& operator=(mapping&&) = delete;
        ~mapping() {
            if (data != nullptr) munmap(data, length);
        }
    };

    static mapping map(bool huge_pages, std::string& note) {
        const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
        if (huge_pages) {
            const std::size_t length = (Bytes + huge_page - 1) / huge_page * huge_page;
            void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags | MAP_HUGETLB, -1, 0);
            if (p != MAP_FAILED) {
                note = " on huge pages";
                return mapping(static_cast<std::byte*>(p), length, true);
            }
            note = std::string(" on normal pages (huge pages unavailable: ") + std::strerror(errno) +
                   "; reserve some with `sysctl vm.nr_hugepages=N`)";
        }
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        const std::size_t length = (Bytes + page - 1) / page * page;
        void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (p == MAP_FAILED) throw_error("mmap(" + std::to_string(length) + " bytes)");
        return mapping(static_cast<std::byte*>(p), length, false); // anonymous maps are zeroed
    }

    std::string note_;   // set by map(), before memory_ is built
    mapping memory_;     // declared before mr_: outlives the registration
    rcq::mr mr_;
};

} // namespace rcq::buffer
