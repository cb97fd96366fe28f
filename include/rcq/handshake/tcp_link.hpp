// rcq/handshake/tcp_link.hpp - the TCP connection to one client that a
// tcp_listener has finished the handshake with, kept as its liveness signal.
#pragma once

#include <rcq/config.hpp>

#include <rcq/category.hpp>
#include <rcq/deadline.hpp>
#include <rcq/detail/socket.hpp>
#include <rcq/detail/tcp_arrival.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>

#include <chrono>
#include <string>
#include <utility>

namespace rcq::handshake {

/// The connection to one client after rcq::handshake::tcp_listener has
/// swapped endpoints with it and read its go-ahead: the client's address and
/// endpoint, and the open socket, whose closing by the client is the
/// liveness signal (peer_closed(), as handshake::tcp's). It is a handshake
/// policy whose work is nearly done: exchange() refuses (the endpoints were
/// swapped already) and barrier() sends our go-ahead, which the client is
/// waiting for, so an rcq::peer can hold it and peer.ready() lets the client
/// start.
///
/// Move-only; a moved-from or closed link has no connection (peer_closed()
/// is then false). Not thread-safe.
class tcp_link {
public:
    /// Marks this type as a handshake policy.
    using rcq_category = category::handshake;

    /// A link over the connected socket `fd` to the client at `address`,
    /// whose endpoint is `remote` and whose go-ahead has arrived; barrier()
    /// sends ours, `go_ahead` (rcq::detail::tcp_go_ahead_message: tagged
    /// when the exchange is authenticated), within `budget`.
    tcp_link(rcq::detail::unique_fd fd, std::string address, const endpoint& remote,
             std::chrono::milliseconds budget, std::string go_ahead)
        : fd_(std::move(fd)), address_(std::move(address)), remote_(remote), budget_(budget),
          go_ahead_(std::move(go_ahead)) {}

    /// Takes over; `other` is left without a connection.
    tcp_link(tcp_link&&) noexcept = default;
    /// Takes over; the old connection is closed.
    tcp_link& operator=(tcp_link&&) noexcept = default;
    tcp_link(const tcp_link&) = delete;
    tcp_link& operator=(const tcp_link&) = delete;

    /// Refuses (EINVAL): the listener swapped the endpoints already; the
    /// client's is remote().
    endpoint exchange(const endpoint&) {
        throw_invalid("tcp link to " + address_ + ": exchange() called on a connection the "
                          "listener has finished the handshake with",
                      "the client's endpoint is remote(); the QP is in RTS already");
    }

    /// Sends our go-ahead (8 or 40 bytes to a client waiting for them: the socket
    /// takes them at once), once; later calls return at once. The client's
    /// go-ahead has arrived already, so its receives are posted; once ours
    /// is sent the client may SEND, so call this when this side is ready for
    /// that (receives posted, completions routed). Throws rcq::error when the
    /// client has gone, or past the budget.
    void barrier() {
        if (sent_go_ahead_) return;
        if (!fd_) throw_invalid("tcp link: barrier() without a connection (moved from or closed)");
        rcq::detail::write_all(fd_.get(), std::as_bytes(std::span(go_ahead_)), deadline::after(budget_),
                               "tcp link: sending our go-ahead to " + address_);
        sent_go_ahead_ = true;
    }

    /// A liveness signal, without blocking: whether the client has closed the
    /// connection (its process ended for any reason, kill -9 included: its
    /// kernel closes the socket). A client whose machine stopped sends
    /// nothing and is seen only by the RDMA transport's retry limit. False
    /// without a connection.
    bool peer_closed() const noexcept { return fd_ && rcq::detail::peer_closed(fd_.get()); }

    /// The client's endpoint.
    const endpoint& remote() const noexcept { return remote_; }
    /// The client's address, "host:port".
    const std::string& address() const noexcept { return address_; }
    /// The socket (-1 without a connection), e.g. to wait for its closing in
    /// one's own poll(2) loop.
    int fd() const noexcept { return fd_.get(); }
    /// Closes the connection; idempotent. The client's peer_closed() sees it.
    void close() noexcept { fd_.reset(); }

    /// For the narration: "tcp link to 10.0.2.15:40112".
    std::string describe() const { return "tcp link to " + address_; }

private:
    rcq::detail::unique_fd fd_;
    std::string address_;
    endpoint remote_;
    std::chrono::milliseconds budget_;
    std::string go_ahead_; // our go-ahead, bound to this exchange
    bool sent_go_ahead_ = false;
};

} // namespace rcq::handshake
