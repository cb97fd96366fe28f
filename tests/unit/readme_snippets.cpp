// The README's code snippets, compiled: building the unit tests is the check
// that they still match the library. (Nothing here runs: it needs a device.)
#include <rcq/rcq.hpp>

#include <utility>
#include <vector>

void readme_state_machine(const rcq::rtr_attrs& peer, std::uint32_t my_psn, ibv_send_wr& wr) {
    rcq::context ctx = rcq::context::open("rxe0");
    rcq::pd pd(ctx);
    rcq::cq cq(ctx, 64);
    rcq::qp<rcq::state::reset> q(pd, cq);        // one CQ, shared on purpose
    auto ready = std::move(q).to_init({}).to_rtr(peer).to_rts({.sq_psn = my_psn});
    (void)ready.post_send(wr);                   // only qp<state::rts> has post_send
}

void readme_operations(rcq::qp<rcq::state::rts>& q, rcq::qp<rcq::state::rts>& qx, const rcq::remote_region& peer, ibv_sge& sge,
                       ibv_sge& sge8, rcq::context& ctx, rcq::pd& pd, std::uint64_t id,
                       std::uint32_t imm, std::uint64_t offset, std::uint32_t len, std::uint64_t i,
                       std::uint64_t compare, std::uint64_t swap, std::uint64_t add, int n) {
    { rcq::send_op w(sge, id); (void)q.post_send(w); }
    { rcq::send_imm_op w(sge, id, imm); }
    { rcq::write_op w(sge, peer.slice(offset, len), id); }
    { rcq::write_imm_op w(sge, peer.slice(offset, len), id, imm); }
    { rcq::read_op w(sge, peer.slice(offset, len), id); }
    { rcq::compare_swap_op w(sge8, peer.word(i), id, compare, swap); }
    { rcq::fetch_add_op w(sge8, peer.word(i), id, add); }
    rcq::send_queue<64, 16> sq(std::move(q));
    { rcq::send_op w(sge, id); w.inlined(); (void)sq.post(w); }
    { rcq::send_op w(sge, id); rcq::wr_chain<16> c; c.set(0, w); (void)sq.post(c); }
    { rcq::send_op w(sge, id); (void)sq.post(w); sq.retire(); }
    {
        rcq::qp_caps caps;
        rcq::srq s(pd); caps.srq = s;
        rcq::recv_wr r(sge, id);
        (void)s.post_recv(r);
    }
    { rcq::send_cq s(ctx, n); rcq::recv_cq r(ctx, n); rcq::qp<rcq::state::reset> q2(pd, s, r); }
    {
        rcq::qp_caps caps;
        caps.send_ops = rcq::all_rc_send_ops; rcq::send_queue<64, 16, rcq::api::extended> sqx(std::move(qx));
        rcq::cq_ex c(ctx, n);
    }
}

void readme_buffers(rcq::handshake::tcp h1, rcq::handshake::tcp h2, std::size_t size) {
    std::vector<char> memory(size);   // size chosen at run time
    rcq::connection<rcq::buffer::borrowed> a(std::move(h1), {}, {.memory = memory});
    rcq::connection<rcq::buffer::owned<rcq::buffer::run_time_size>> b(std::move(h2), {}, {.bytes = size});
}

void readme_rdma_cm() {
    rcq::connection_options opts;
    opts.remote_access = IBV_ACCESS_REMOTE_WRITE; // our memory token rides in the private data
    rcq::connection<rcq::handshake::rdma_cm> conn(
        rcq::handshake::rdma_cm::client("10.0.2.15", 7471), opts);
    // ... post and wait as with any connection; later, if a wait fails:
    if (conn.handshake().peer_disconnected()) { /* RDMA_CM_EVENT_DISCONNECTED came */ }
}

void readme_authentication() {
    auto hs = rcq::handshake::tcp::server(18515, std::chrono::seconds{30});
    hs.authenticate(rcq::shared_secret::from_file("/etc/myapp/rcq.secret"));  // or ::from_env("RCQ_SECRET")
    rcq::connection_options opts;
    opts.remote_access = IBV_ACCESS_REMOTE_WRITE;
    rcq::connection<> conn(std::move(hs), opts);
}

struct session { // the caller's own object per peer
    std::uint64_t received = 0;
};

void readme_many_peers(std::uint16_t port) {
    rcq::resources_options opts;
    opts.max_qps = 8;        // the one CQ is sized for 8 QPs at a time
    opts.srq_depth = 64;     // one SRQ serves them all
    rcq::resources<rcq::buffer::owned<1 << 20>> res(opts);
    rcq::srq_pool pool(*res.shared_receive_queue(), res.buffer(), res.buffer_policy().lkey(),
                       4096, 64);
    (void)pool.post_all();
    auto peer = res.connect(rcq::handshake::tcp::server(port)); // one call per peer
    peer.ready();
    session s;
    rcq::router<session> routes(opts.max_qps);
    (void)routes.add(peer.qp_num(), s);
    ibv_wc batch[16];
    (void)routes.poll(res.completion_queue(), batch,
        [&](session& to, const ibv_wc& wc) {   // the QP's session, by wc.qp_num
            const std::uint32_t slot = rcq::srq_pool::slot_of(wc.wr_id);
            if (pool.taken(slot) == 0) { ++to.received; (void)pool.repost(slot); }
        },
        [](const ibv_wc&) { /* a QP no longer routed */ });
    rcq::tear_down(std::move(peer).release_qp(), routes, res.poll_policy(),
                   res.completion_queue(), [](session&, const ibv_wc&) {}, [](const ibv_wc&) {});
}
