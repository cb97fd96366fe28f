// Raw TCP peers for the unit tests of the TCP handshake's server sides: a
// socket that does exactly what a test tells it (connect, send some bytes,
// send them slowly, wait for the close).
#pragma once

#include <rcq/detail/socket.hpp>
#include <rcq/endpoint.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace unit_test {

using rcq::detail::unique_fd;

inline unique_fd raw_socket() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM, 0));
    timeval tv{10, 0}; // a broken test must not hang the suite
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
}

inline unique_fd raw_connect(std::uint16_t port) {
    auto fd = raw_socket();
    auto addr = loopback(port);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("raw_connect failed");
    return fd;
}

inline void raw_send(const unique_fd& fd, const std::vector<std::byte>& data) {
    ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
}

inline std::vector<std::byte> wire_of(const rcq::endpoint& ep) {
    auto w = rcq::encode(ep);
    return {w.begin(), w.end()};
}

inline std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> bytes(text.size());
    std::transform(text.begin(), text.end(), bytes.begin(), [](char c) { return std::byte(c); });
    return bytes;
}

// Reads until the other side closes; returns how many bytes came.
inline std::size_t bytes_until_close(const unique_fd& fd) {
    std::size_t total = 0;
    std::byte sink[4096];
    for (;;) {
        auto n = ::recv(fd.get(), sink, sizeof sink, 0);
        if (n <= 0) return total;
        total += static_cast<std::size_t>(n);
    }
}

// Sends `data` one byte every `gap` until it is all sent or the peer is gone.
inline void send_slowly(const unique_fd& fd, const std::vector<std::byte>& data, std::chrono::milliseconds gap) {
    for (auto b : data) {
        if (::send(fd.get(), &b, 1, MSG_NOSIGNAL) != 1) return;
        std::this_thread::sleep_for(gap);
    }
}

} // namespace unit_test
