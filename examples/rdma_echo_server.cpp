// rdma_echo_server: one process serving many rdma_echo_client processes.
//
// It holds one device context, one protection domain, one registered buffer,
// one shared receive queue and one completion queue for all its clients; each
// client that connects to its TCP port gets an RC QP on them (rcq::listener).
// Every message a client SENDs lands in a slot of the SRQ's buffer
// (rcq::srq_pool); the server finds the client by the completion's QP number
// (rcq::router) and SENDs the same bytes back from that slot, then gives the
// slot back to the SRQ once the echo has completed. A client that sends an
// empty message has finished; one whose process ends without it (killed,
// crashed) is torn down alone (rcq::tear_down) while the others go on.
//
// One line per client connected, finished or gone; runs until SIGINT or
// SIGTERM, or until --clients=N clients have finished.
#include "example_options.hpp"

#include <rcq/listener.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/resources.hpp>
#include <rcq/router.hpp>
#include <rcq/srq_pool.hpp>
#include <rcq/teardown.hpp>

#include <array>
#include <csignal>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

/// The largest message: one SRQ slot.
constexpr std::uint32_t slot_size = 4096;
/// Receives on the SRQ, shared by all clients; each client has at most a few
/// messages in flight, so twice the clients is plenty.
constexpr std::uint32_t slots = 256;
/// Clients at a time; the CQ is sized for them.
constexpr std::uint32_t max_clients = 128;
/// The upper bits of an echo's wr_id; the lower 32 are its slot.
constexpr std::uint64_t echo_tag = std::uint64_t(0xec40) << 32;

using resources_type = rcq::resources<rcq::poll::blocking, rcq::buffer::owned<slots * slot_size>>;
using listener_type = rcq::listener<resources_type>;

struct client {
    client(listener_type::peer_type p, std::string a) : peer(std::move(p)), address(std::move(a)) {}
    listener_type::peer_type peer;
    std::string address;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    bool finished = false; // its empty message arrived
    std::optional<rcq::deadline> leave_by; // finished: torn down once it has closed, or then
    std::string failure;   // why it is to be torn down; empty while it is fine
};

volatile std::sig_atomic_t stop_requested = 0;
extern "C" void on_stop_signal(int) { stop_requested = 1; }

} // namespace

int main(int argc, char** argv) {
    return example::run("rdma_echo_server", false, [&] {
        const example::options opt = example::parse(argc, argv, false);
        auto say = [&](const std::string& line) { std::cout << "[echo server] " << line << '\n' << std::flush; };
        std::signal(SIGINT, on_stop_signal);
        std::signal(SIGTERM, on_stop_signal);

        rcq::resources_options ro;
        ro.device = opt.device;
        ro.gid_index = opt.gid_index;
        ro.max_mtu = opt.mtu;
        ro.traffic_class = opt.traffic_class;
        ro.service_level = opt.service_level;
        ro.caps.max_send_wr = 8;
        ro.max_qps = max_clients;
        ro.srq_depth = slots;
        resources_type res(ro);
        rcq::srq_pool pool(*res.shared_receive_queue(), res.buffer(), res.buffer_policy().lkey(),
                           slot_size, slots);
        if (const int rc = pool.post_all(); rc != 0) rcq::throw_error("posting the SRQ's receives", {}, rc);
        listener_type server(res, opt.port,
                             {.hello_timeout = std::chrono::seconds{10}, .talk_timeout = opt.timeout});
        say("device " + rcq::device_name(res.device()) + ", GID " + res.gid().address() +
            ": one PD, one CQ, one SRQ of " + std::to_string(slots) + " x " + std::to_string(slot_size) +
            " bytes for all clients; listening on port " + std::to_string(server.port()));

        rcq::router<client> routes(max_clients);
        std::vector<std::unique_ptr<client>> clients;
        std::size_t finished = 0, lost = 0, refused_seen = 0;

        // Every completion, routed to its client: a message to echo, or an
        // echo done (its slot goes back to the SRQ). Never throws: a failure
        // marks the client, which is torn down outside the routing.
        auto on_completion = [&](client& c, const ibv_wc& wc) {
            if (rcq::srq_pool::owns(wc.wr_id)) { // a receive on the SRQ
                const std::uint32_t slot = rcq::srq_pool::slot_of(wc.wr_id);
                (void)pool.taken(slot);
                if (wc.status != IBV_WC_SUCCESS || wc.byte_len == 0) {
                    if (wc.status != IBV_WC_SUCCESS && c.failure.empty())
                        c.failure = std::string("receive failed: ") + ibv_wc_status_str(wc.status);
                    if (wc.status == IBV_WC_SUCCESS) c.finished = true;
                    (void)pool.repost(slot);
                    return;
                }
                // The echo goes out of the slot the message landed in: no copy.
                const ibv_sge sge = rcq::local(res.buffer_policy(), std::size_t(slot) * slot_size, wc.byte_len);
                rcq::send_op echo(sge, echo_tag | slot);
                if (const int rc = c.peer.queue_pair().post_send(echo); rc != 0) {
                    if (c.failure.empty()) c.failure = "ibv_post_send of an echo: " + std::to_string(rc);
                    (void)pool.repost(slot);
                    return;
                }
                ++c.messages;
                c.bytes += wc.byte_len;
                return;
            }
            if ((wc.wr_id & ~std::uint64_t(0xffffffff)) == echo_tag) { // an echo done (or flushed)
                (void)pool.repost(static_cast<std::uint32_t>(wc.wr_id));
                if (wc.status != IBV_WC_SUCCESS && c.failure.empty())
                    c.failure = std::string("echo failed: ") + ibv_wc_status_str(wc.status);
            }
        };
        auto on_unknown = [&](const ibv_wc& wc) {
            if (rcq::srq_pool::owns(wc.wr_id)) {
                (void)pool.taken(rcq::srq_pool::slot_of(wc.wr_id));
                (void)pool.repost(rcq::srq_pool::slot_of(wc.wr_id));
            } else if ((wc.wr_id & ~std::uint64_t(0xffffffff)) == echo_tag) {
                (void)pool.repost(static_cast<std::uint32_t>(wc.wr_id));
            }
        };

        auto tear_down = [&](std::size_t i, const std::string& line) {
            auto& c = *clients[i];
            if (!line.empty()) say(line);
            try {
                rcq::tear_down(std::move(c.peer).release_qp(), routes, res.poll_policy(),
                               res.completion_queue(), on_completion, on_unknown);
            } catch (const rcq::error& e) {
                say("tearing down " + c.address + ": " + e.what());
            }
            clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
        };

        std::array<ibv_wc, 32> batch{};
        // A client that has gone may have finished first: its empty message
        // can still be in the CQ. Takes every completion there, then says.
        auto drained_finished = [&](const client& c) {
            while (routes.poll(res.completion_queue(), batch, on_completion, on_unknown) > 0) {
            }
            return c.finished;
        };
        auto next_liveness_check = rcq::deadline::after(std::chrono::milliseconds{100});
        while (!stop_requested && (opt.clients == 0 || finished < opt.clients)) {
            // New clients: a look at the handshakes' sockets, without waiting
            // while clients are connected, briefly otherwise.
            try {
                const auto wait = clients.empty() ? std::chrono::milliseconds{50} : std::chrono::milliseconds{0};
                if (clients.size() < max_clients) {
                    if (auto p = server.try_accept(wait)) {
                        std::string address = p->handshake().address();
                        auto c = std::make_unique<client>(std::move(*p), std::move(address));
                        if (routes.add(c->peer.qp_num(), *c) != 0)
                            rcq::throw_invalid("routing QPN " + std::to_string(c->peer.qp_num()));
                        clients.push_back(std::move(c));
                        auto& added = *clients.back();
                        say("client " + added.address + " connected (QPN " + std::to_string(added.peer.qp_num()) +
                            ", " + std::to_string(clients.size()) + " connected)");
                        // Routed: now our go-ahead, after which the client sends.
                        try {
                            added.peer.ready();
                        } catch (const rcq::error& e) {
                            added.failure = e.what();
                        }
                    }
                }
            } catch (const rcq::error& e) {
                say("a client's handshake failed: " + std::string(e.what()));
            }
            if (server.handshakes().refused() != refused_seen) {
                refused_seen = server.handshakes().refused();
                say("refused a connection that did not speak rcq (" + std::to_string(refused_seen) +
                    " so far): " + server.handshakes().last_refusal());
            }

            // Completions, waiting a little when there are none.
            if (!clients.empty()) {
                const int n = routes.wait(res.poll_policy(), res.completion_queue(), batch,
                                          rcq::deadline::after(std::chrono::milliseconds{5}),
                                          on_completion, on_unknown);
                if (n < 0) rcq::throw_error("polling the CQ", {}, -n);
            }

            // Clients to let go: finished, failed, or gone.
            const bool check_liveness = next_liveness_check.expired();
            if (check_liveness) next_liveness_check = rcq::deadline::after(std::chrono::milliseconds{100});
            for (std::size_t i = clients.size(); i-- > 0;) {
                auto& c = *clients[i];
                const std::string counts = std::to_string(c.messages) + " messages, " +
                                           std::to_string(c.bytes) + " bytes echoed";
                if (c.finished) {
                    // Its last SEND has arrived; the QP stays until the client
                    // has closed (or for a second), so that the ACK of that
                    // SEND is not cut off by our teardown.
                    if (!c.leave_by) {
                        ++finished;
                        say("client " + c.address + " finished: " + counts + ", every byte checked by it");
                        c.leave_by = rcq::deadline::after(std::chrono::seconds{1});
                    }
                    if (c.peer.peer_gone() || c.leave_by->expired()) tear_down(i, {});
                } else if (!c.failure.empty()) {
                    ++lost;
                    tear_down(i, "client " + c.address + " failed after " + counts + ": " + c.failure);
                } else if (check_liveness && c.peer.peer_gone() && !drained_finished(c)) {
                    ++lost;
                    tear_down(i, "client " + c.address + " gone after " + counts +
                                     " (its process ended); the others go on");
                }
            }
        }
        // The last ones to finish get the same time to close as the others.
        for (const auto until = rcq::deadline::after(std::chrono::seconds{1}); !until.expired();) {
            bool waiting = false;
            for (auto& c : clients) waiting = waiting || (c->finished && !c->peer.peer_gone());
            if (!waiting) break;
            std::this_thread::sleep_for(std::chrono::milliseconds{10});
        }
        say(std::to_string(finished) + " client(s) finished, " + std::to_string(lost) + " lost, " +
            std::to_string(refused_seen) + " stranger(s) refused; " +
            (stop_requested ? "stopped by a signal" : "done"));
        return 0;
    });
}
