// rcq/buffer/borrowed.hpp - the caller's memory, registered by rcq.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/error.hpp>
#include <rcq/mr.hpp>

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>

namespace rcq::buffer {

/// An element type whose objects are single bytes that RDMA may overwrite:
/// char, signed char, unsigned char (std::uint8_t), char8_t or std::byte.
template <class T>
concept writable_byte =
    !std::is_const_v<T> && !std::is_volatile_v<T> &&
    (std::same_as<T, char> || std::same_as<T, signed char> || std::same_as<T, unsigned char> ||
     std::same_as<T, char8_t> || std::same_as<T, std::byte>);

/// The memory a borrowed buffer registers: built from any contiguous range of
/// writable bytes the caller keeps alive (std::vector<char>,
/// std::array<std::uint8_t, N>, std::string, std::span<std::byte>, a C
/// array...). A range of other elements is a compile error saying to pass
/// std::as_writable_bytes(std::span(range)); a temporary container (whose
/// memory would be gone before it is registered) does not convert.
class byte_range {
public:
    /// No memory: the borrowed buffer refuses it.
    byte_range() = default;

    /// The bytes of `range`, which must outlive the buffer that registers them.
    template <std::ranges::contiguous_range R>
        requires std::ranges::sized_range<R> &&
                 (std::is_lvalue_reference_v<R> || std::ranges::borrowed_range<R>)
    byte_range(R&& range) noexcept // NOLINT: implicit on purpose, for {.memory = v}
        : bytes_(as_bytes_of(std::ranges::data(range), std::ranges::size(range))) {}

    /// A temporary container: refused at compile time, since its memory would
    /// be freed before (or while) it is registered.
    template <std::ranges::contiguous_range R>
        requires(!std::is_lvalue_reference_v<R> && !std::ranges::borrowed_range<R>)
    byte_range(R&&) { // NOLINT
        static_assert(!sizeof(R),
                      "rcq::buffer::borrowed cannot register a temporary container: keep the "
                      "memory in a variable that outlives the connection, then {.memory = it}");
    }

    /// The bytes, as a span.
    std::span<std::byte> span() const noexcept { return bytes_; }
    /// The same, for code that takes a span.
    operator std::span<std::byte>() const noexcept { return bytes_; }

private:
    template <class T>
    static std::span<std::byte> as_bytes_of(T* data, std::size_t count) noexcept {
        static_assert(!std::is_const_v<T>,
                      "rcq::buffer::borrowed needs memory it may write to: pass a non-const range");
        static_assert(std::is_const_v<T> || writable_byte<T>,
                      "rcq::buffer::borrowed needs a contiguous range of bytes (char, unsigned "
                      "char, std::uint8_t, std::byte); for other elements write "
                      "{.memory = std::as_writable_bytes(std::span(range))}");
        if constexpr (writable_byte<T>)
            return {reinterpret_cast<std::byte*>(data), count};
        else
            return {};
    }

    std::span<std::byte> bytes_;
};

/// Memory the caller owns, which rcq registers for the connection's lifetime
/// and deregisters when done. Lifetime: the memory must stay allocated, and
/// must not be freed or remapped, until the connection (or this object) is
/// destroyed; rcq never frees it. Access is local write plus the remote
/// access asked for (IBV_ACCESS_REMOTE_*).
///
///     std::vector<char> memory(size);   // size from the command line
///     rcq::connection<rcq::buffer::borrowed> conn(handshake, {}, {.memory = memory});
class borrowed {
public:
    /// Marks this type as a buffer policy.
    using rcq_category = category::buffer;

    /// What to register.
    struct config {
        /// Any contiguous range of bytes (see rcq::buffer::byte_range); empty
        /// is refused with rcq::error (EINVAL).
        byte_range memory;
    };

    /// Registers `cfg.memory` on `domain` with local write plus `remote_access`.
    borrowed(ibv_pd* domain, const config& cfg, int remote_access = 0)
        : memory_(checked(cfg.memory)), mr_(domain, memory_, IBV_ACCESS_LOCAL_WRITE | remote_access) {}

    /// The caller's memory.
    std::span<std::byte> bytes() const noexcept { return memory_; }
    /// The local key of its registration.
    std::uint32_t lkey() const noexcept { return mr_.lkey(); }
    /// The remote key of its registration.
    std::uint32_t rkey() const noexcept { return mr_.rkey(); }
    /// Its registration.
    const rcq::mr& region() const noexcept { return mr_; }

    /// One line for the connection's narration.
    static const char* describe() noexcept { return "registered the caller's buffer"; }

private:
    static std::span<std::byte> checked(const byte_range& memory) {
        if (memory.span().empty())
            throw_invalid("rcq::buffer::borrowed: no memory given",
                          "set config.memory to the caller's buffer, e.g. {.memory = my_vector}");
        return memory.span();
    }

    std::span<std::byte> memory_;
    rcq::mr mr_;
};

} // namespace rcq::buffer
