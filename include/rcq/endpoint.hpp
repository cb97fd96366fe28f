// rcq/endpoint.hpp - what a peer needs to connect an RC queue pair, and its
// binary (TCP) and text (files, environment variables) forms.
#pragma once

#include <rcq/config.hpp>
#include <rcq/detail/dependent_false.hpp>
#include <rcq/error.hpp>

#include <boost/hana/define_struct.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace rcq {

/// The 16 bytes of an InfiniBand/RoCE GID, in network order (as in ibv_gid::raw).
using gid_bytes = std::array<std::uint8_t, 16>;

/// Everything the remote side needs to bring its RC QP to RTR against ours,
/// plus an optional token for one remote memory region (RDMA READ/WRITE).
///
/// The member list below is the single source of truth for both wire forms:
/// encode/decode and to_text/from_text walk it through Hana's reflection, so
/// a member added here is carried by every transport without further code
/// (only its kind must be an unsigned integer or a byte array). Changing the
/// list changes the wire format: bump endpoint_wire_version and correct
/// endpoint_wire_size, which the codec checks against this list at compile time.
struct endpoint {
    BOOST_HANA_DEFINE_STRUCT(endpoint,
        (std::uint32_t, qpn),          // queue pair number (24 bits used)
        (std::uint32_t, psn),          // first packet sequence number (24 bits used)
        (std::uint16_t, lid),          // 0 on RoCE; routing uses the GID
        (gid_bytes, gid),              // RoCEv2: the IPv4-mapped or IPv6 address
        (std::uint64_t, remote_addr),  // memory token: all three zero when absent
        (std::uint32_t, rkey),
        (std::uint64_t, remote_len),
        (std::uint16_t, mtu),          // largest path MTU we can use, in bytes (256..4096)
        (std::uint8_t, initiator_depth),      // RDMA READs/atomics we want outstanding
        (std::uint8_t, responder_resources)); // RDMA READs/atomics we accept outstanding

    /// Whether the peer offered a memory region. A region of length zero
    /// cannot be accessed, so the length alone decides; address 0 and rkey 0
    /// are legal values (zero-based MRs) and say nothing on their own.
    bool has_memory() const noexcept { return remote_len != 0; }

    /// Member-wise equality.
    friend bool operator==(const endpoint&, const endpoint&) = default;
};

namespace detail {

// How one kind of endpoint member is laid out on the wire. Unsigned integers
// go big-endian, byte arrays byte by byte; anything else is refused at compile
// time so that a new member cannot be silently mis-encoded.
template <class T>
struct wire_field {
    static_assert(dependent_false<T>,
                  "rcq::endpoint members must be unsigned integers or std::array<std::uint8_t, N>; "
                  "to add another kind of member, specialise rcq::detail::wire_field for it");
};

template <class T>
    requires(std::unsigned_integral<T> && !std::same_as<T, bool>)
struct wire_field<T> {
    static constexpr std::size_t size = sizeof(T);
    static void put(T value, std::byte* out) noexcept {
        for (std::size_t i = 0; i < size; ++i)
            out[i] = static_cast<std::byte>(value >> (8 * (size - 1 - i)));
    }
    static T get(const std::byte* in) noexcept {
        T value = 0;
        for (std::size_t i = 0; i < size; ++i)
            value = static_cast<T>((value << 8) | std::to_integer<T>(in[i]));
        return value;
    }
};

template <std::size_t N>
struct wire_field<std::array<std::uint8_t, N>> {
    static constexpr std::size_t size = N;
    static void put(const std::array<std::uint8_t, N>& value, std::byte* out) noexcept {
        for (std::size_t i = 0; i < N; ++i) out[i] = static_cast<std::byte>(value[i]);
    }
    static std::array<std::uint8_t, N> get(const std::byte* in) noexcept {
        std::array<std::uint8_t, N> value{};
        for (std::size_t i = 0; i < N; ++i) value[i] = std::to_integer<std::uint8_t>(in[i]);
        return value;
    }
};

// Header: magic "RCQE", version (u16), payload length (u16), all big-endian.
inline constexpr std::array<std::byte, 4> endpoint_magic{std::byte{'R'}, std::byte{'C'},
                                                         std::byte{'Q'}, std::byte{'E'}};
inline constexpr std::size_t endpoint_header_size = 8;

} // namespace detail

/// Version of both the binary and the text form ("rcq2 ..."). Peers must agree.
/// Version 2 added mtu, initiator_depth and responder_resources.
inline constexpr std::uint16_t endpoint_wire_version = 2;

/// Size of an encoded endpoint: 8 bytes of header plus the members (50 bytes
/// in version 2). Stated here rather than summed through the reflection so that
/// a program including this header does not instantiate it; the codec checks
/// at compile time that the figure matches the member list.
inline constexpr std::size_t endpoint_wire_size = detail::endpoint_header_size + 50;

/// from_text refuses longer input before looking at it.
inline constexpr std::size_t endpoint_text_max = 1024;

/// The binary form: header, then each member big-endian in declaration order.
RCQ_DECL std::array<std::byte, endpoint_wire_size> encode(const endpoint& ep);

/// Parses the binary form. The input must be exactly one message; magic,
/// version and payload length are checked. Throws rcq::error (EPROTO) saying
/// what was wrong; never reads outside `bytes`.
RCQ_DECL endpoint decode(std::span<const std::byte> bytes);

/// One line, no trailing newline:
/// `rcq2 qpn=0x.. psn=0x.. lid=0x.. gid=xxxx:...:xxxx remote_addr=0x.. rkey=0x.. remote_len=0x..
/// mtu=0x.. initiator_depth=0x.. responder_resources=0x..`
RCQ_DECL std::string to_text(const endpoint& ep);

/// Parses to_text's form. Keys may come in any order, separated by spaces or
/// tabs; leading and trailing white space (a newline from a file) is ignored.
/// Numbers are hex with a 0x prefix. Unknown, missing or duplicate keys, bad
/// or oversized numbers, a wrong prefix or version, stray characters and
/// input over endpoint_text_max characters throw rcq::error (EINVAL).
RCQ_DECL endpoint from_text(std::string_view text);

/// A GID as eight colon-separated groups of four lowercase hex digits, never
/// abbreviated ("fe80:0000:0000:0000:...") so that GIDs line up in logs.
RCQ_DECL std::string gid_to_string(const gid_bytes& gid);

namespace detail {

// Quotes untrusted text for an error message: printable ASCII as is, the rest
// as \xNN, cut after `limit` characters so a hostile peer cannot flood logs.
RCQ_DECL std::string quote(std::string_view text, std::size_t limit = 40);

// Checks the 8-byte header at the start of `bytes` (which must hold at least
// 4 bytes for the magic and 8 for the rest; shorter input is "truncated").
// Split out so a transport can reject a foreign peer after 8 bytes instead of
// waiting for a full message that will never come.
RCQ_DECL void check_endpoint_header(std::span<const std::byte> bytes);

} // namespace detail

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/endpoint.ipp>
#endif
