// rcq/listener.hpp - many peers accepted on one TCP port, each with its QP
// on the shared resources of a process.
#pragma once

#include <rcq/config.hpp>

#include <rcq/endpoint.hpp>
#include <rcq/handshake/tcp_link.hpp>
#include <rcq/handshake/tcp_listener.hpp>
#include <rcq/peer.hpp>
#include <rcq/qp.hpp>
#include <rcq/secret.hpp>
#include <rcq/state.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace rcq {

/// The receive-posting step of listener::accept for QPs that take their
/// receives from an SRQ: nothing to do.
struct no_receives {
    /// Does nothing: the SRQ holds the receives.
    void operator()(qp<state::rts>&) const noexcept {}
};

/// Serves a TCP port for clients that connect with handshake::tcp::client
/// (or rcq::connection with one): each accepted client gets a QP made from
/// `Resources` (an rcq::resources<...>: its PD, its CQ, its SRQ if it has
/// one), brought to RTS against the client's endpoint. The handshakes run in
/// a handshake::tcp_listener: all at once, each under its own deadline, a
/// stranger refused without a reply, a failing client reported alone.
///
///     rcq::resources<> res({.max_qps = 64, .srq_depth = 256});
///     rcq::listener server(res, 18515);
///     for (;;) {
///         rcq::peer<rcq::handshake::tcp_link> p = server.accept(std::chrono::seconds{30});
///         routes.add(p.qp_num(), ...);   // its completions arrive on res.completion_queue()
///         p.ready();                     // our go-ahead: the client may send now
///     }
///
/// The returned peer's QP is in RTS and the client's go-ahead has arrived
/// (its receives are posted); the client waits for ours, which ready()
/// sends, and sends nothing before it. So the QP's completions can be routed
/// first; its receives must be posted by then: on the SRQ, or by the
/// `post_receives` step of accept() for QPs with their own receive queue. The
/// peer's handshake is its handshake::tcp_link: peer_gone() is true once the
/// client's process has ended.
///
/// Sizing: the shared CQ holds what resources_options::max_qps QPs can have
/// outstanding; accept no more peers than that at a time. Must not outlive
/// `Resources`, nor its peers the resources. Move-only; not thread-safe.
template <class Resources>
class listener {
public:
    /// What accept() returns: a QP in RTS and the connection to its client.
    using peer_type = peer<handshake::tcp_link>;

    /// Binds to `port` (0: any free port, see port()) and listens now.
    /// Throws rcq::error (a busy port, say).
    listener(Resources& res, std::uint16_t port, handshake::tcp_listener_options options = {})
        : res_(&res), tcp_(port, std::move(options)) {}

    /// Requires every client to prove it knows `secret` (and proves it in turn).
    void authenticate(shared_secret secret) { tcp_.authenticate(std::move(secret)); }
    /// Lets our endpoints carry the buffer's memory token without authentication.
    void allow_memory_without_secret() noexcept { tcp_.allow_memory_without_secret(); }

    /// Serves the handshakes in progress until one client is connected, for
    /// at most `timeout`. For each client whose endpoint arrives: a QP on the
    /// shared resources (make_qp), our endpoint for it, INIT -> RTS against
    /// the client's, then `post_receives(qp<state::rts>&)` (may throw), then
    /// our endpoint and go-ahead go out. Throws rcq::error as
    /// handshake::tcp_listener::accept: one client's failure (its QP is
    /// destroyed) or ETIMEDOUT; the listener goes on either way.
    template <class PostReceives = no_receives>
    peer_type accept(std::chrono::milliseconds timeout, PostReceives&& post_receives = {}) {
        return to_peer(tcp_.accept(preparer(post_receives), timeout));
    }

    /// As accept(), but returns nothing when no client completed within
    /// `timeout` (zero: look once, without waiting), for a server loop that
    /// polls its CQ in between.
    template <class PostReceives = no_receives>
    std::optional<peer_type> try_accept(std::chrono::milliseconds timeout,
                                        PostReceives&& post_receives = {}) {
        auto done = tcp_.try_accept(preparer(post_receives), timeout);
        if (!done) return std::nullopt;
        return to_peer(std::move(*done));
    }

    /// Closes the port and the handshakes in progress; accepted peers go on.
    void stop() noexcept { tcp_.stop(); }
    /// The port (the kernel's choice when 0 was asked).
    std::uint16_t port() const noexcept { return tcp_.port(); }
    /// The handshake layer, for its counters (pending(), refused(), last_refusal()).
    const handshake::tcp_listener<qp<state::rts>>& handshakes() const noexcept { return tcp_; }

private:
    // Stage 2 of the handshake: the client's QP, in RTS, receives posted.
    template <class PostReceives>
    auto preparer(PostReceives& post_receives) {
        return [this, &post_receives](const endpoint& remote) {
            auto q = res_->make_qp();
            const endpoint local = res_->local_endpoint(q);
            auto ready = res_->to_rts(std::move(q), local, remote);
            post_receives(ready);
            return handshake::tcp_reply<qp<state::rts>>{local, std::move(ready)};
        };
    }

    peer_type to_peer(handshake::tcp_accepted<qp<state::rts>>&& done) const {
        const endpoint remote = done.link.remote();
        return peer_type(std::move(done.link), std::move(done.attached), done.local, remote,
                         res_->options().narrate);
    }

    Resources* res_;
    handshake::tcp_listener<qp<state::rts>> tcp_;
};

} // namespace rcq
