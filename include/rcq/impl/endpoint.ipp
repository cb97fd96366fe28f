// rcq/impl/endpoint.ipp - the endpoint codec's definitions, generated from
// the member list through Hana's reflection. Included by <rcq/endpoint.hpp>,
// or compiled once by <rcq/impl/src.hpp> under RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/endpoint.hpp>
#include <rcq/detail/hex.hpp>
#include <rcq/error.hpp>

#include <boost/hana/accessors.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/unpack.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <limits>
#include <system_error>

namespace rcq {

namespace detail {

// The type of the member an accessor pair refers to.
template <class Pair>
using member_type = std::remove_cvref_t<decltype(boost::hana::second(std::declval<Pair>())(
    std::declval<endpoint&>()))>;

template <class Pair>
constexpr std::string_view member_name(const Pair& pair) {
    return boost::hana::to<char const*>(boost::hana::first(pair));
}

constexpr std::size_t endpoint_payload_size() {
    return boost::hana::unpack(boost::hana::accessors<endpoint>(), [](auto... pairs) {
        return (std::size_t{0} + ... + wire_field<member_type<decltype(pairs)>>::size);
    });
}

static_assert(endpoint_header_size + endpoint_payload_size() == endpoint_wire_size,
              "rcq::endpoint_wire_size must be the header plus the members' wire sizes: "
              "update it (and bump endpoint_wire_version) after changing the member list");
static_assert(endpoint_payload_size() <= 0xffff, "the header's payload length field is 16 bits");
static_assert(decltype(boost::hana::length(boost::hana::accessors<endpoint>()))::value <= 32,
              "from_text tracks the keys it has seen in a 32-bit mask");

inline void append_hex(std::string& out, std::uint64_t value) {
    out += "0x" + hex(value);
}

std::string quote(std::string_view text, std::size_t limit) {
    static constexpr char hex_digits[] = "0123456789abcdef";
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size() && i < limit; ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex_digits[c >> 4];
            out += hex_digits[c & 0xf];
        }
    }
    if (text.size() > limit) out += "...";
    return out + "\"";
}

// Which versions met, for both forms' errors.
inline std::string version_mismatch(unsigned long peer_version) {
    return "version " + std::to_string(peer_version) +
           " not supported (the peer speaks endpoint version " + std::to_string(peer_version) +
           ", this build speaks version " + std::to_string(endpoint_wire_version) + ")";
}

[[noreturn]] inline void bad_wire(const std::string& what, const std::string& hint = {}) {
    throw_invalid("endpoint: " + what, hint, EPROTO);
}

void check_endpoint_header(std::span<const std::byte> bytes) {
    auto truncated = [&] {
        bad_wire("truncated: " + std::to_string(bytes.size()) + " of " +
                 std::to_string(endpoint_wire_size) + " bytes");
    };
    if (bytes.size() < endpoint_magic.size()) truncated();
    if (!std::equal(endpoint_magic.begin(), endpoint_magic.end(), bytes.begin())) {
        static constexpr char hex_digits[] = "0123456789abcdef";
        std::string got = "0x";
        std::string chars;
        bool printable = true;
        for (std::size_t i = 0; i < endpoint_magic.size(); ++i) {
            auto c = std::to_integer<unsigned char>(bytes[i]);
            got += hex_digits[c >> 4];
            got += hex_digits[c & 0xf];
            printable = printable && c >= 0x20 && c < 0x7f;
            chars += static_cast<char>(c);
        }
        if (printable) got += " " + quote(chars); // "GET ", "SSH-": names the intruder
        bad_wire("bad magic " + got + " (expected \"RCQE\")",
                 "the peer is not an rcq program or the port is shared with another service");
    }
    if (bytes.size() < endpoint_header_size) truncated();
    auto version = wire_field<std::uint16_t>::get(bytes.data() + 4);
    if (version != endpoint_wire_version)
        bad_wire(version_mismatch(version), "build both sides with the same rcq release");
    auto length = wire_field<std::uint16_t>::get(bytes.data() + 6);
    if (length != endpoint_payload_size())
        bad_wire("payload length " + std::to_string(length) + " does not match " +
                     std::to_string(endpoint_payload_size()) + " for version " +
                     std::to_string(endpoint_wire_version),
                 "the peer's endpoint layout differs under the same version; build both sides "
                 "from the same rcq sources");
}

// Text form: one parser/printer per kind of member, picked by overloading.
inline void append_text(std::string& out, std::uint64_t value) {
    append_hex(out, value);
}
inline void append_text(std::string& out, const gid_bytes& gid) {
    out += gid_to_string(gid);
}

[[noreturn]] inline void bad_text(const std::string& what, const std::string& hint = {}) {
    throw_invalid("endpoint text: " + what, hint, EINVAL);
}

template <std::unsigned_integral T>
void parse_text(std::string_view key, std::string_view value, T& out) {
    auto where = std::string(key) + "=" + quote(value);
    if (value.size() < 3 || value[0] != '0' || value[1] != 'x')
        bad_text(where + ": expected a hex number such as 0x1a2b");
    auto digits = value.substr(2);
    T parsed{};
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed, 16);
    if (ec == std::errc::result_out_of_range)
        bad_text(where + " does not fit in " + std::to_string(std::numeric_limits<T>::digits) +
                 " bits");
    if (ec != std::errc{} || end != digits.data() + digits.size())
        bad_text(where + ": expected a hex number such as 0x1a2b");
    out = parsed;
}

inline void parse_text(std::string_view key, std::string_view value, gid_bytes& out) {
    auto fail = [&] {
        bad_text(std::string(key) + "=" + quote(value) +
                 ": expected 8 groups of 4 hex digits separated by ':'");
    };
    if (value.size() != 8 * 4 + 7) fail();
    gid_bytes parsed{};
    for (std::size_t group = 0; group < 8; ++group) {
        auto text = value.substr(group * 5, 4);
        if (group < 7 && value[group * 5 + 4] != ':') fail();
        std::uint16_t word = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + 4, word, 16);
        if (ec != std::errc{} || end != text.data() + 4) fail();
        parsed[2 * group] = static_cast<std::uint8_t>(word >> 8);
        parsed[2 * group + 1] = static_cast<std::uint8_t>(word);
    }
    out = parsed;
}

inline std::string endpoint_key_list() {
    std::string keys;
    boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
        if (!keys.empty()) keys += ' ';
        keys += member_name(pair);
    });
    return keys;
}

} // namespace detail

std::array<std::byte, endpoint_wire_size> encode(const endpoint& ep) {
    std::array<std::byte, endpoint_wire_size> out{};
    std::copy(detail::endpoint_magic.begin(), detail::endpoint_magic.end(), out.begin());
    detail::wire_field<std::uint16_t>::put(endpoint_wire_version, out.data() + 4);
    detail::wire_field<std::uint16_t>::put(detail::endpoint_payload_size(), out.data() + 6);
    std::size_t at = detail::endpoint_header_size;
    boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
        using field = detail::wire_field<detail::member_type<decltype(pair)>>;
        field::put(boost::hana::second(pair)(ep), out.data() + at);
        at += field::size;
    });
    return out;
}

endpoint decode(std::span<const std::byte> bytes) {
    detail::check_endpoint_header(bytes);
    if (bytes.size() < endpoint_wire_size)
        detail::bad_wire("truncated: " + std::to_string(bytes.size()) + " of " +
                         std::to_string(endpoint_wire_size) + " bytes");
    if (bytes.size() > endpoint_wire_size)
        detail::bad_wire(std::to_string(bytes.size() - endpoint_wire_size) +
                         " unexpected bytes after the " + std::to_string(endpoint_wire_size) +
                         "-byte message");
    endpoint ep{};
    std::size_t at = detail::endpoint_header_size;
    boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
        using field = detail::wire_field<detail::member_type<decltype(pair)>>;
        boost::hana::second(pair)(ep) = field::get(bytes.data() + at);
        at += field::size;
    });
    return ep;
}

std::string gid_to_string(const gid_bytes& gid) {
    static constexpr char hex_digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(39);
    for (std::size_t i = 0; i < gid.size(); ++i) {
        if (i != 0 && i % 2 == 0) out += ':';
        out += hex_digits[gid[i] >> 4];
        out += hex_digits[gid[i] & 0xf];
    }
    return out;
}

std::string to_text(const endpoint& ep) {
    std::string out = "rcq" + std::to_string(endpoint_wire_version);
    boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
        out += ' ';
        out += detail::member_name(pair);
        out += '=';
        detail::append_text(out, boost::hana::second(pair)(ep));
    });
    return out;
}

endpoint from_text(std::string_view text) {
    if (text.size() > endpoint_text_max)
        detail::bad_text(std::to_string(text.size()) + " characters is too long (at most " +
                         std::to_string(endpoint_text_max) + ")");
    constexpr std::string_view blank = " \t\r\n";
    auto first = text.find_first_not_of(blank);
    text = first == std::string_view::npos ? std::string_view{} : text.substr(first);
    text = text.substr(0, text.find_last_not_of(blank) + 1);
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c != ' ' && c != '\t' && (c < 0x21 || c > 0x7e))
            detail::bad_text("unexpected character " + detail::quote(text.substr(i, 1)) +
                             " at offset " + std::to_string(i) +
                             " (the form is one line of ASCII)");
    }

    // Splits off the next space- or tab-separated token; empty at the end.
    auto next_token = [&text] {
        auto start = text.find_first_not_of(" \t");
        if (start == std::string_view::npos) {
            text = {};
            return text;
        }
        text = text.substr(start);
        auto token = text.substr(0, text.find_first_of(" \t"));
        text = text.substr(token.size());
        return token;
    };

    const std::string prefix = "rcq" + std::to_string(endpoint_wire_version);
    auto head = next_token();
    if (head != prefix) {
        auto version = head.substr(head.size() < 3 ? head.size() : 3);
        bool numbered = head.substr(0, 3) == "rcq" && !version.empty() && version.size() <= 5 &&
                        version.find_first_not_of("0123456789") == std::string_view::npos;
        if (numbered)
            detail::bad_text(detail::version_mismatch(std::stoul(std::string(version))),
                             "build both sides with the same rcq release");
        detail::bad_text("expected the line to start with \"" + prefix + "\", got " +
                             detail::quote(head),
                         "the text must come from rcq::to_text");
    }

    endpoint ep{};
    std::uint32_t seen = 0; // one bit per member, in declaration order
    for (auto token = next_token(); !token.empty(); token = next_token()) {
        auto eq = token.find('=');
        if (eq == std::string_view::npos)
            detail::bad_text(detail::quote(token) + " is not key=value");
        auto key = token.substr(0, eq);
        auto value = token.substr(eq + 1);
        bool known = false;
        std::size_t index = 0;
        boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
            if (!known && detail::member_name(pair) == key) {
                known = true;
                if (seen & (1u << index)) detail::bad_text("duplicate key " + detail::quote(key));
                seen |= 1u << index;
                detail::parse_text(key, value, boost::hana::second(pair)(ep));
            }
            ++index;
        });
        if (!known)
            detail::bad_text("unknown key " + detail::quote(key) +
                             " (known keys: " + detail::endpoint_key_list() + ")");
    }
    std::size_t index = 0;
    boost::hana::for_each(boost::hana::accessors<endpoint>(), [&](auto pair) {
        if (!(seen & (1u << index)))
            detail::bad_text("missing key \"" + std::string(detail::member_name(pair)) + "\"");
        ++index;
    });
    return ep;
}

} // namespace rcq
