// rcq/remote.hpp - the peer's memory that one-sided operations reach.
#pragma once

#include <rcq/config.hpp>

#include <rcq/detail/hex.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace rcq {

/// A part of the peer's registered memory, checked against its region: the
/// target of an RDMA WRITE or READ, which may move at most `length` bytes
/// (checked when the request is built).
struct remote_slice {
    /// The remote address.
    std::uint64_t addr = 0;
    /// The remote key.
    std::uint32_t rkey = 0;
    /// The length in bytes.
    std::uint32_t length = 0;
};

/// An 8-byte word of the peer's memory, aligned: the target of an atomic.
struct remote_word {
    /// The remote address of the 8-byte word.
    std::uint64_t addr = 0;
    /// The remote key.
    std::uint32_t rkey = 0;
};

/// The peer's memory token (address, rkey, length), as it travels in the
/// endpoint. Every slice or word taken from it is checked against its bounds
/// when it is taken, so a WRITE or READ that would reach outside the region
/// is refused with rcq::error before anything is posted. Take slices once,
/// outside the hot loop; posting them costs nothing more.
class remote_region {
public:
    remote_region() = default;
    /// The peer's region: its address, rkey and length (from its endpoint).
    remote_region(std::uint64_t addr, std::uint32_t rkey, std::uint64_t length) noexcept
        : addr_(addr), rkey_(rkey), length_(length) {}

    /// The token a peer sent with its endpoint; throws when it sent none.
    static remote_region of(const endpoint& peer) {
        if (!peer.has_memory())
            throw_invalid("the peer's endpoint carries no memory token",
                          "the peer must grant remote access (connection_options::remote_access)");
        return {peer.remote_addr, peer.rkey, peer.remote_len};
    }

    /// The region's remote address.
    std::uint64_t addr() const noexcept { return addr_; }
    /// The region's remote key.
    std::uint32_t rkey() const noexcept { return rkey_; }
    /// The region's length in bytes.
    std::uint64_t length() const noexcept { return length_; }

    /// `length` bytes at `offset`; throws unless they lie inside the region.
    remote_slice slice(std::uint64_t offset, std::uint32_t length) const {
        if (offset > length_ || length > length_ - offset)
            throw_invalid("remote access of " + std::to_string(length) + " bytes at offset " +
                              std::to_string(offset) + " reaches outside the peer's " +
                              std::to_string(length_) + "-byte region",
                          "keep offset + length within the region the peer advertised", ERANGE);
        return {addr_ + offset, rkey_, length};
    }

    /// The `index`-th word of type `T` (an 8-byte integer: atomics act on
    /// 64-bit integer words); throws when it is outside the region or not
    /// 8-byte aligned.
    template <class T = std::uint64_t>
    remote_word word(std::uint64_t index) const {
        static_assert(std::is_integral_v<T> && sizeof(T) == 8,
                      "rcq::remote_region::word<T>: RDMA atomics act on 8-byte integer words; use "
                      "std::uint64_t or std::int64_t");
        if (index >= length_ / 8)
            throw_invalid("remote word " + std::to_string(index) + " is outside the peer's " +
                              std::to_string(length_) + "-byte region (" +
                              std::to_string(length_ / 8) + " words)",
                          "keep the index below the region's length / 8", ERANGE);
        const remote_slice s = slice(index * 8, 8);
        if (s.addr % 8 != 0)
            throw_invalid("remote atomic word at 0x" + detail::hex(s.addr) + " is not 8-byte aligned",
                          "register the peer's memory 8-byte aligned", EINVAL);
        return {s.addr, s.rkey};
    }

private:
    std::uint64_t addr_ = 0;
    std::uint32_t rkey_ = 0;
    std::uint64_t length_ = 0;
};

} // namespace rcq
