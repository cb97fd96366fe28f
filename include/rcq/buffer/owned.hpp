// rcq/buffer/owned.hpp - memory that rcq allocates and registers.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/config.hpp>
#include <rcq/error.hpp>
#include <rcq/mr.hpp>

#include <infiniband/verbs.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace rcq::buffer {

/// The `Bytes` argument of rcq::buffer::owned that leaves the size to run
/// time: `owned<run_time_size>` takes it from `config::bytes`.
inline constexpr std::size_t run_time_size = std::dynamic_extent;

namespace detail {
/// Settings of an owned buffer whose size is a template argument.
struct owned_fixed_config {
    /// Map 2 MiB huge pages (falls back to normal pages, and says so).
    bool huge_pages = false;
};
/// Settings of rcq::buffer::owned<run_time_size>.
struct owned_run_time_config {
    /// The buffer's size in bytes; must be positive.
    std::size_t bytes = 0;
    /// Map 2 MiB huge pages (falls back to normal pages, and says so).
    bool huge_pages = false;
};

/// Anonymous memory mapped for an owned buffer; unmapped when destroyed.
struct owned_mapping {
    std::byte* data = nullptr; ///< The first byte.
    std::size_t length = 0;    ///< The mapped length: whole pages.
    bool huge = false;         ///< Whether the pages are 2 MiB huge pages.

    /// Takes over a mapping.
    owned_mapping(std::byte* d, std::size_t n, bool h) noexcept : data(d), length(n), huge(h) {}
    /// Takes the mapping over from `other`.
    owned_mapping(owned_mapping&& other) noexcept
        : data(std::exchange(other.data, nullptr)), length(other.length), huge(other.huge) {}
    owned_mapping& operator=(owned_mapping&&) = delete;
    ~owned_mapping() {
        if (data != nullptr) munmap(data, length);
    }
};

/// Maps `size` bytes (rounded up to whole pages), zero-filled, on 2 MiB huge
/// pages when `huge_pages` is set and some are reserved, else on normal
/// pages; `note` says which for the narration. Throws rcq::error when the
/// size cannot be mapped.
RCQ_DECL owned_mapping map_owned(std::size_t size, bool huge_pages, std::string& note);
} // namespace detail

/// `Bytes` of page-aligned, zero-filled memory that rcq maps, registers, and
/// unmaps after deregistering. Access is least privilege: local write, plus
/// only the remote access asked for (IBV_ACCESS_REMOTE_*).
///
/// The size is fixed at compile time (`owned<65536>`), or, with
/// `owned<rcq::buffer::run_time_size>`, chosen at run time through
/// `config::bytes` (e.g. from a command-line option); a size of 0 is refused
/// with rcq::error (EINVAL).
///
/// With `config::huge_pages`, the memory comes from 2 MiB huge pages (fewer
/// NIC translation entries for large buffers); when the system has none
/// reserved (/proc/sys/vm/nr_hugepages), it falls back to normal pages and
/// describe() says so.
template <std::size_t Bytes = 4096>
class owned {
    static_assert(Bytes > 0, "rcq::buffer::owned<Bytes>: Bytes must be positive; for a size "
                             "known only at run time write owned<rcq::buffer::run_time_size>");

    static constexpr bool fixed = Bytes != run_time_size;

public:
    /// Marks this type as a buffer policy.
    using rcq_category = category::buffer;

    /// `{.huge_pages}` for a fixed size; `{.bytes, .huge_pages}` for
    /// owned<run_time_size>.
    using config = std::conditional_t<fixed, detail::owned_fixed_config,
                                      detail::owned_run_time_config>;

    /// Maps and registers the memory on `domain`; throws rcq::error when
    /// mapping or registering fails, or when a run-time size is 0.
    explicit owned(ibv_pd* domain, const config& cfg = {}, int remote_access = 0)
        : size_(checked_size(cfg)),
          memory_(detail::map_owned(size_, cfg.huge_pages, note_)),
          mr_(domain, bytes(), IBV_ACCESS_LOCAL_WRITE | remote_access) {}

    /// Takes over the memory and its registration.
    owned(owned&&) noexcept = default;
    owned& operator=(owned&&) = delete;

    /// The buffer's size in bytes (a constant expression when fixed).
    static constexpr std::size_t size() noexcept
        requires fixed
    {
        return Bytes;
    }
    /// The buffer's size in bytes, as chosen at run time.
    std::size_t size() const noexcept
        requires(!fixed)
    {
        return size_;
    }
    /// The whole buffer.
    std::span<std::byte> bytes() const noexcept { return {memory_.data, size_}; }
    /// The local key of its registration.
    std::uint32_t lkey() const noexcept { return mr_.lkey(); }
    /// The remote key of its registration.
    std::uint32_t rkey() const noexcept { return mr_.rkey(); }
    /// Its registration.
    const rcq::mr& region() const noexcept { return mr_; }
    /// Whether the memory came from huge pages.
    bool on_huge_pages() const noexcept { return memory_.huge; }

    /// One line for the connection's narration.
    std::string describe() const { return "registered an owned buffer" + note_; }

private:
    static std::size_t checked_size(const config& cfg) {
        if constexpr (fixed) {
            return Bytes;
        } else {
            if (cfg.bytes == 0)
                throw_invalid("rcq::buffer::owned<run_time_size>: config.bytes is 0",
                              "set config.bytes to the buffer's size, e.g. {.bytes = 1 << 20}");
            return cfg.bytes;
        }
    }

    std::size_t size_;   // Bytes, or config::bytes
    std::string note_;   // set by map_owned(), before memory_ is built
    detail::owned_mapping memory_; // declared before mr_: outlives the registration
    rcq::mr mr_;
};

} // namespace rcq::buffer

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/buffer/owned.ipp>
#endif
