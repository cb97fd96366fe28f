// rcq/impl/buffer/owned.ipp - the mapping of rcq::buffer::owned, which is not a template.
// Included by <rcq/buffer/owned.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/buffer/owned.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <unistd.h>
#include <string>

namespace rcq::buffer::detail {

owned_mapping map_owned(std::size_t size, bool huge_pages, std::string& note) {
    constexpr std::size_t huge_page = std::size_t{2} << 20;
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    // Rounding up to whole pages must not wrap around (to a length of 0).
    if (size > std::size_t{1} << 47)
        throw_error("rcq::buffer::owned: " + std::to_string(size) + " bytes is larger than any "
                        "address space a process has (128 TiB)",
                    "is the buffer's size what was meant?", ENOMEM);
    if (huge_pages) {
        const std::size_t length = (size + huge_page - 1) / huge_page * huge_page;
        void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags | MAP_HUGETLB, -1, 0);
        if (p != MAP_FAILED) {
            note = " on huge pages";
            return owned_mapping(static_cast<std::byte*>(p), length, true);
        }
        note = std::string(" on normal pages (huge pages unavailable: ") + std::strerror(errno) +
               "; reserve some with `sysctl vm.nr_hugepages=N`)";
    }
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t length = (size + page - 1) / page * page;
    void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) {
        const int err = errno;
        throw_error("mmap(" + std::to_string(length) + " bytes)",
                    err == ENOMEM ? "is the buffer's size what was meant?" : "", err);
    }
    return owned_mapping(static_cast<std::byte*>(p), length, false); // anonymous maps are zeroed
}

} // namespace rcq::buffer::detail
