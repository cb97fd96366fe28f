// Binary and text forms of rcq::endpoint: round trips, and every kind of
// malformed input giving a clear rcq::error rather than a crash.
#include <rcq/endpoint.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

namespace {

using ::testing::HasSubstr;
using bytes = std::vector<std::byte>;

rcq::endpoint random_endpoint(std::mt19937_64& rng) {
    rcq::endpoint ep{};
    ep.qpn = static_cast<std::uint32_t>(rng());
    ep.psn = static_cast<std::uint32_t>(rng());
    ep.lid = static_cast<std::uint16_t>(rng());
    for (auto& b : ep.gid) b = static_cast<std::uint8_t>(rng());
    ep.remote_addr = rng();
    ep.rkey = static_cast<std::uint32_t>(rng());
    ep.remote_len = rng();
    ep.mtu = static_cast<std::uint16_t>(rng());
    ep.initiator_depth = static_cast<std::uint8_t>(rng());
    ep.responder_resources = static_cast<std::uint8_t>(rng());
    return ep;
}

rcq::endpoint sample() {
    return {.qpn = 0x11,
            .psn = 0xabcdef,
            .lid = 0,
            .gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1},
            .remote_addr = 0x7f0012345000,
            .rkey = 0x1234,
            .remote_len = 4096,
            .mtu = 1024,
            .initiator_depth = 16,
            .responder_resources = 8};
}

bytes encoded(const rcq::endpoint& ep) {
    auto wire = rcq::encode(ep);
    return bytes(wire.begin(), wire.end());
}

// The message of the rcq::error that decoding `in` throws; fails the test
// if it throws anything else or nothing.
std::string decode_error(const bytes& in) {
    try {
        rcq::decode(in);
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code().value(), EPROTO) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "decode accepted malformed input";
    return {};
}

std::string text_error(std::string_view in) {
    try {
        rcq::from_text(in);
    } catch (const rcq::error& e) {
        EXPECT_EQ(e.code().value(), EINVAL) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "from_text accepted: " << in;
    return {};
}

// ---- binary form -----------------------------------------------------------

TEST(EndpointWire, SizeIsHeaderPlusMembers) {
    EXPECT_EQ(rcq::endpoint_wire_size, 8u + 4 + 4 + 2 + 16 + 8 + 4 + 8 + 2 + 1 + 1);
}

TEST(EndpointWire, LayoutIsBigEndianInDeclarationOrder) {
    auto wire = encoded(sample());
    const bytes expected_start{std::byte{'R'}, std::byte{'C'}, std::byte{'Q'}, std::byte{'E'},
                               std::byte{0},   std::byte{2},   std::byte{0},   std::byte{50},
                               std::byte{0},   std::byte{0},   std::byte{0},   std::byte{0x11},
                               std::byte{0},   std::byte{0xab}, std::byte{0xcd}, std::byte{0xef}};
    EXPECT_EQ(bytes(wire.begin(), wire.begin() + 16), expected_start);
    // ... remote_len 4096 = 0x...1000, mtu 1024 = 0x0400, depths 16 and 8.
    const bytes expected_end{std::byte{0x10}, std::byte{0}, std::byte{4}, std::byte{0},
                             std::byte{16}, std::byte{8}};
    EXPECT_EQ(bytes(wire.end() - 6, wire.end()), expected_end);
}

TEST(EndpointWire, RandomRoundTrips) {
    std::mt19937_64 rng(42);
    for (int i = 0; i < 1000; ++i) {
        auto ep = random_endpoint(rng);
        ASSERT_EQ(rcq::decode(rcq::encode(ep)), ep);
    }
}

TEST(EndpointWire, EveryTruncationIsReported) {
    auto wire = encoded(sample());
    for (std::size_t n = 0; n < wire.size(); ++n) {
        auto msg = decode_error(bytes(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(n)));
        EXPECT_THAT(msg, HasSubstr("endpoint: truncated: " + std::to_string(n) + " of 58 bytes"));
    }
}

TEST(EndpointWire, TrailingBytesAreRejected) {
    auto wire = encoded(sample());
    wire.resize(wire.size() + 3);
    EXPECT_THAT(decode_error(wire), HasSubstr("3 unexpected bytes after the 58-byte message"));
}

TEST(EndpointWire, BadMagicNamesWhatArrived) {
    auto wire = encoded(sample());
    wire[0] = std::byte{'G'}, wire[1] = std::byte{'E'}, wire[2] = std::byte{'T'}, wire[3] = std::byte{' '};
    auto msg = decode_error(wire);
    EXPECT_THAT(msg, HasSubstr("endpoint: bad magic 0x47455420 \"GET \" (expected \"RCQE\")"));
    EXPECT_THAT(msg, HasSubstr("the port is shared with another service"));

    wire[0] = std::byte{0xff}; // not printable: hex only
    EXPECT_THAT(decode_error(wire), HasSubstr("bad magic 0xff455420 (expected"));
}

TEST(EndpointWire, UnknownVersion) {
    auto wire = encoded(sample());
    wire[5] = std::byte{7};
    EXPECT_THAT(decode_error(wire),
                HasSubstr("endpoint: version 7 not supported (the peer speaks endpoint version 7, "
                          "this build speaks version 2)"));
    // A peer of the previous release, which lacked mtu and the READ depths.
    wire[5] = std::byte{1};
    wire[7] = std::byte{46};
    EXPECT_THAT(decode_error(wire),
                HasSubstr("version 1 not supported (the peer speaks endpoint version 1, this build "
                          "speaks version 2)"));
}

TEST(EndpointWire, PayloadLengthMustMatch) {
    auto wire = encoded(sample());
    wire[6] = std::byte{0x0f}, wire[7] = std::byte{0xa0}; // 4000: oversized
    EXPECT_THAT(decode_error(wire), HasSubstr("payload length 4000 does not match 50 for version 2"));
    wire[6] = std::byte{0}, wire[7] = std::byte{46}; // undersized: version 1's length
    EXPECT_THAT(decode_error(wire), HasSubstr("payload length 46 does not match 50 for version 2"));
}

TEST(EndpointWire, HeaderIsCheckedBeforeLength) {
    // A foreign peer is named as such even when it sent little.
    const bytes hello{std::byte{'S'}, std::byte{'S'}, std::byte{'H'}, std::byte{'-'}, std::byte{'2'}};
    EXPECT_THAT(decode_error(hello), HasSubstr("bad magic"));
}

TEST(EndpointWire, RandomBytesDecodeOrThrow) {
    std::mt19937_64 rng(7);
    auto valid = encoded(sample());
    int decoded = 0;
    for (int i = 0; i < 10000; ++i) {
        bytes in(rng() % 128);
        for (auto& b : in) b = static_cast<std::byte>(rng());
        // Every third input starts like a real message, to get past the magic.
        if (i % 3 == 0)
            std::copy_n(valid.begin(), std::min<std::size_t>(in.size(), 4 + rng() % 5), in.begin());
        if (i % 3 == 1 && in.size() >= valid.size()) {
            in.assign(valid.begin(), valid.end());
            in[rng() % in.size()] ^= static_cast<std::byte>(1 + rng() % 255);
        }
        try {
            rcq::decode(in);
            ++decoded;
        } catch (const rcq::error&) {
        }
    }
    EXPECT_GT(decoded, 0); // flipped member bytes still decode
}

// ---- text form -------------------------------------------------------------

TEST(EndpointText, Form) {
    EXPECT_EQ(rcq::to_text(sample()),
              "rcq2 qpn=0x11 psn=0xabcdef lid=0x0 gid=0000:0000:0000:0000:0000:ffff:0a00:0001 "
              "remote_addr=0x7f0012345000 rkey=0x1234 remote_len=0x1000 mtu=0x400 "
              "initiator_depth=0x10 responder_resources=0x8");
}

TEST(EndpointText, RandomRoundTrips) {
    std::mt19937_64 rng(43);
    for (int i = 0; i < 1000; ++i) {
        auto ep = random_endpoint(rng);
        ASSERT_EQ(rcq::from_text(rcq::to_text(ep)), ep) << rcq::to_text(ep);
    }
}

TEST(EndpointText, AcceptsReorderedKeysExtraBlanksAndANewline) {
    auto ep = rcq::from_text("  rcq2\tremote_len=0x1000 rkey=0x1234  remote_addr=0x7F0012345000 "
                             "responder_resources=0x08 initiator_depth=0x10 mtu=0x400 "
                             "gid=0000:0000:0000:0000:0000:FFFF:0a00:0001 lid=0x0000 psn=0xabcdef "
                             "qpn=0x11\r\n");
    EXPECT_EQ(ep, sample());
}

TEST(EndpointText, GidToString) {
    rcq::gid_bytes gid{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x02, 0xc9, 0xff, 0xfe, 0, 0, 0x01};
    EXPECT_EQ(rcq::gid_to_string(gid), "fe80:0000:0000:0000:0202:c9ff:fe00:0001");
}

TEST(EndpointText, HasMemory) {
    EXPECT_TRUE(sample().has_memory());
    auto ep = sample();
    ep.remote_len = 0;
    EXPECT_FALSE(ep.has_memory());
}

// The sample's text with one key's value replaced (or the key removed when
// `value` is empty).
std::string with(const std::string& key, const std::string& value) {
    auto text = rcq::to_text(sample());
    auto at = text.find(" " + key + "=");
    auto end = text.find(' ', at + 1);
    auto rest = end == std::string::npos ? std::string() : text.substr(end);
    return text.substr(0, at) + (value.empty() ? "" : " " + key + "=" + value) + rest;
}

TEST(EndpointText, UnknownKey) {
    auto msg = text_error(rcq::to_text(sample()) + " sl=0x3");
    EXPECT_THAT(msg, HasSubstr("endpoint text: unknown key \"sl\""));
    EXPECT_THAT(msg, HasSubstr("known keys: qpn psn lid gid remote_addr rkey remote_len mtu "
                               "initiator_depth responder_resources"));
}

TEST(EndpointText, MissingKey) {
    EXPECT_THAT(text_error(with("psn", "")), HasSubstr("missing key \"psn\""));
    EXPECT_THAT(text_error(with("remote_len", "")), HasSubstr("missing key \"remote_len\""));
    EXPECT_THAT(text_error(with("mtu", "")), HasSubstr("missing key \"mtu\""));
    EXPECT_THAT(text_error("rcq2"), HasSubstr("missing key \"qpn\""));
}

TEST(EndpointText, DuplicateKey) {
    EXPECT_THAT(text_error(rcq::to_text(sample()) + " qpn=0x12"), HasSubstr("duplicate key \"qpn\""));
}

TEST(EndpointText, BadNumbers) {
    for (const char* bad : {"12", "0x", "0xzz", "0x12g", "-0x1", "0x-1", "0x+1", "x12", "0X12", "0x 1"}) {
        auto text = std::string(bad) == "0x 1" ? with("qpn", "0x") + " 1" : with("qpn", bad);
        EXPECT_THAT(text_error(text), ::testing::AnyOf(HasSubstr("expected a hex number"),
                                                       HasSubstr("is not key=value")))
            << bad;
    }
    EXPECT_THAT(text_error(with("rkey", "")  + " rkey="), HasSubstr("rkey=\"\": expected a hex number"));
}

TEST(EndpointText, ValueTooLargeForItsField) {
    EXPECT_THAT(text_error(with("lid", "0x10000")), HasSubstr("lid=\"0x10000\" does not fit in 16 bits"));
    EXPECT_THAT(text_error(with("qpn", "0x100000000")), HasSubstr("does not fit in 32 bits"));
    EXPECT_THAT(text_error(with("remote_len", "0x10000000000000000")),
                HasSubstr("does not fit in 64 bits"));
    // Leading zeros are not a size problem.
    EXPECT_EQ(rcq::from_text(with("lid", "0x00000000000000000000ffff")).lid, 0xffff);
}

TEST(EndpointText, BadGid) {
    for (const char* bad : {"fe80::1", "fe80:0000:0000:0000:0202:c9ff:fe00",
                            "fe80:0000:0000:0000:0202:c9ff:fe00:0001:0000",
                            "fe80-0000:0000:0000:0202:c9ff:fe00:0001",
                            "fe80:0000:0000:0000:0202:c9ff:fe00:000g",
                            "fe80:00000:000:0000:0202:c9ff:fe00:0001",
                            "fe80:0000:0000:0000:0202:c9ff:fe00:+001", ""}) {
        auto text = with("gid", bad) + (*bad ? "" : " gid=");
        EXPECT_THAT(text_error(text), HasSubstr("expected 8 groups of 4 hex digits")) << bad;
    }
}

TEST(EndpointText, WrongPrefixOrVersion) {
    auto body = rcq::to_text(sample()).substr(4);
    EXPECT_THAT(text_error("rcq1" + body),
                HasSubstr("endpoint text: version 1 not supported (the peer speaks endpoint version 1, "
                          "this build speaks version 2)"));
    EXPECT_THAT(text_error("rcq3" + body), HasSubstr("the peer speaks endpoint version 3"));
    EXPECT_THAT(text_error("rcx2" + body), HasSubstr("expected the line to start with \"rcq2\", got \"rcx2\""));
    EXPECT_THAT(text_error(body.substr(1)), HasSubstr("expected the line to start with \"rcq2\""));
    EXPECT_THAT(text_error(""), HasSubstr("expected the line to start with \"rcq2\", got \"\""));
    EXPECT_THAT(text_error("rcq" + body), HasSubstr("got \"rcq\""));
}

TEST(EndpointText, NotKeyValue) {
    EXPECT_THAT(text_error(rcq::to_text(sample()) + " hello"), HasSubstr("\"hello\" is not key=value"));
}

TEST(EndpointText, StrayCharacters) {
    auto text = rcq::to_text(sample());
    EXPECT_THAT(text_error(text.substr(0, 10) + '\n' + text.substr(10)),
                HasSubstr("unexpected character \"\\x0a\" at offset 10"));
    EXPECT_THAT(text_error(text + std::string(1, '\0') + "x"), HasSubstr("unexpected character \"\\x00\""));
    EXPECT_THAT(text_error(text + "\xc3\xa9"), HasSubstr("unexpected character \"\\xc3\""));
}

TEST(EndpointText, OverlongInput) {
    auto text = rcq::to_text(sample());
    EXPECT_EQ(rcq::from_text(text + std::string(rcq::endpoint_text_max - text.size(), ' ')), sample());
    EXPECT_THAT(text_error(text + std::string(rcq::endpoint_text_max + 1 - text.size(), ' ')),
                HasSubstr("1025 characters is too long (at most 1024)"));
}

TEST(EndpointText, HostileTextIsQuotedAndCut) {
    auto msg = text_error("rcq2 " + std::string(500, 'k') + "=0x1");
    EXPECT_THAT(msg, HasSubstr("unknown key \"kkkk"));
    EXPECT_THAT(msg, HasSubstr("...\""));
    EXPECT_LT(msg.size(), 300u);
}

TEST(EndpointText, RandomTextParsesOrThrows) {
    std::mt19937_64 rng(11);
    const std::string valid = rcq::to_text(sample());
    const std::string alphabet = "rcq2 =0x:abcdefgABCDEF0123456789 qpnsidlmteukor_\t\n\r\xff";
    for (int i = 0; i < 10000; ++i) {
        std::string in;
        switch (i % 3) {
        case 0: // random characters from the form's alphabet
            in.resize(rng() % 200);
            for (auto& c : in) c = alphabet[rng() % alphabet.size()];
            break;
        case 1: // the valid line with one character changed, removed or added
            in = valid;
            in[rng() % in.size()] = static_cast<char>(rng());
            if (rng() % 2) in.erase(rng() % in.size(), 1 + rng() % 8);
            break;
        default: // raw bytes
            in.resize(rng() % 1100);
            for (auto& c : in) c = static_cast<char>(rng());
        }
        try {
            rcq::from_text(in);
        } catch (const rcq::error&) {
        }
    }
}

} // namespace
