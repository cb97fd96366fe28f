// The stub provider's objects, its data-path functions, and the few
// control-path verbs it answers itself (see <rcq/stub/provider.hpp>).
// Compiled into each program that links rcq::stub.
#include <rcq/stub/provider.hpp>

#include <dlfcn.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rcq::stub {

struct provider::device {
    // `context` comes first so that an ibv_context* of ours converts back to
    // its device (standard layout, first member).
    ibv_context context{};
    ibv_device dev{};
    ibv_pd pd{};
    ibv_cq cq{};
    ibv_qp qp{};
    ibv_srq srq{};
    int completions_per_poll = 1;
    std::uint64_t next_wc_id = 0;
    tally counts{};
    // complete_posted(): a ring of the completions to give back, filled and
    // emptied by data-path functions of their own (the ops table is switched),
    // so that the default ones, which the overhead test counts, are unchanged.
    struct posted {
        std::uint64_t wr_id;
        ibv_wc_opcode opcode;
        std::uint32_t bytes;
        ibv_wc_status status;
    };
    ibv_wc_status complete_with = IBV_WC_SUCCESS;
    posted ring[provider::posted_capacity]{};
    std::size_t ring_head = 0, ring_size = 0;
    alignas(4096) std::byte memory[memory_size]{};
};

namespace {

using device = provider::device;

device& device_of(ibv_context* ctx) noexcept { return *reinterpret_cast<device*>(ctx); }

// A cheap 64-bit hash step (FNV-1a on whole words): enough to tell two
// streams of work requests apart, and the same cost for every caller.
void mix(std::uint64_t& h, std::uint64_t v) noexcept { h = (h ^ v) * 0x100000001b3ULL; }

void mix_sges(std::uint64_t& h, const ibv_sge* sges, int n) noexcept {
    for (int i = 0; i < n; ++i) {
        mix(h, sges[i].addr);
        mix(h, sges[i].length);
        mix(h, sges[i].lkey);
    }
}

int stub_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** /*bad*/) {
    tally& t = device_of(qp->context).counts;
    ++t.post_send_calls;
    for (; wr != nullptr; wr = wr->next) {
        ++t.send_wrs;
        if (wr->send_flags & IBV_SEND_SIGNALED) ++t.signaled_sends;
        mix(t.fingerprint, wr->wr_id);
        mix(t.fingerprint, (std::uint64_t{wr->opcode} << 32) | wr->send_flags);
        mix(t.fingerprint, wr->wr.rdma.remote_addr);
        mix(t.fingerprint, wr->wr.rdma.rkey);
        mix_sges(t.fingerprint, wr->sg_list, wr->num_sge);
    }
    return 0;
}

int stub_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** /*bad*/) {
    tally& t = device_of(qp->context).counts;
    ++t.post_recv_calls;
    for (; wr != nullptr; wr = wr->next) {
        ++t.recv_wrs;
        mix(t.fingerprint, wr->wr_id);
        mix_sges(t.fingerprint, wr->sg_list, wr->num_sge);
    }
    return 0;
}

int stub_post_srq_recv(ibv_srq* srq, ibv_recv_wr* wr, ibv_recv_wr** /*bad*/) {
    tally& t = device_of(srq->context).counts;
    for (; wr != nullptr; wr = wr->next) {
        ++t.srq_recv_wrs;
        mix(t.fingerprint, wr->wr_id);
        mix_sges(t.fingerprint, wr->sg_list, wr->num_sge);
    }
    return 0;
}

int stub_poll_cq(ibv_cq* cq, int num_entries, ibv_wc* wc) {
    device& d = device_of(cq->context);
    const int n = std::max(0, std::min(num_entries, d.completions_per_poll));
    for (int i = 0; i < n; ++i) {
        wc[i] = ibv_wc{};
        wc[i].wr_id = d.next_wc_id++;
        wc[i].status = IBV_WC_SUCCESS;
        wc[i].opcode = IBV_WC_SEND;
        wc[i].qp_num = d.qp.qp_num;
    }
    ++d.counts.poll_calls;
    d.counts.completions += static_cast<std::uint64_t>(n);
    return n;
}

int stub_req_notify_cq(ibv_cq* cq, int /*solicited_only*/) {
    ++device_of(cq->context).counts.notify_calls;
    return 0;
}

// -- complete_posted(): the same counting, plus a completion per request -------

std::uint32_t total_length(const ibv_sge* sges, int n) noexcept {
    std::uint32_t bytes = 0;
    for (int i = 0; i < n; ++i) bytes += sges[i].length;
    return bytes;
}

// Queues a completion; false when the ring is full.
bool queue_completion(device& d, std::uint64_t id, ibv_wc_opcode op, std::uint32_t bytes) noexcept {
    if (d.ring_size == provider::posted_capacity) return false;
    d.ring[(d.ring_head + d.ring_size++) % provider::posted_capacity] = {id, op, bytes,
                                                                         d.complete_with};
    return true;
}

ibv_wc_opcode completion_opcode(ibv_wr_opcode op) noexcept {
    switch (op) {
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_WRITE_WITH_IMM: return IBV_WC_RDMA_WRITE;
    case IBV_WR_RDMA_READ: return IBV_WC_RDMA_READ;
    case IBV_WR_ATOMIC_CMP_AND_SWP: return IBV_WC_COMP_SWAP;
    case IBV_WR_ATOMIC_FETCH_AND_ADD: return IBV_WC_FETCH_ADD;
    default: return IBV_WC_SEND;
    }
}

// Posts one request at a time, so that a full ring stops at the request
// that did not fit, as a full queue would.
int stub_completing_post_send(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
    device& d = device_of(qp->context);
    for (; wr != nullptr; wr = wr->next) {
        ibv_send_wr one = *wr;
        one.next = nullptr;
        if ((wr->send_flags & IBV_SEND_SIGNALED) && d.ring_size == provider::posted_capacity) {
            *bad = wr;
            return ENOMEM;
        }
        stub_post_send(qp, &one, bad);
        if (wr->send_flags & IBV_SEND_SIGNALED)
            queue_completion(d, wr->wr_id, completion_opcode(wr->opcode),
                             total_length(wr->sg_list, wr->num_sge));
    }
    return 0;
}

int stub_completing_post_recv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) {
    device& d = device_of(qp->context);
    for (; wr != nullptr; wr = wr->next) {
        ibv_recv_wr one = *wr;
        one.next = nullptr;
        if (d.ring_size == provider::posted_capacity) {
            *bad = wr;
            return ENOMEM;
        }
        stub_post_recv(qp, &one, bad);
        queue_completion(d, wr->wr_id, IBV_WC_RECV, total_length(wr->sg_list, wr->num_sge));
    }
    return 0;
}

int stub_completing_poll_cq(ibv_cq* cq, int num_entries, ibv_wc* wc) {
    device& d = device_of(cq->context);
    int n = std::max(0, std::min(num_entries, d.completions_per_poll));
    n = std::min(n, static_cast<int>(d.ring_size));
    for (int i = 0; i < n; ++i) {
        const device::posted& p = d.ring[d.ring_head];
        d.ring_head = (d.ring_head + 1) % provider::posted_capacity;
        --d.ring_size;
        wc[i] = ibv_wc{};
        wc[i].wr_id = p.wr_id;
        wc[i].status = p.status;
        wc[i].opcode = p.opcode;
        wc[i].byte_len = p.bytes;
        wc[i].qp_num = d.qp.qp_num;
    }
    ++d.counts.poll_calls;
    d.counts.completions += static_cast<std::uint64_t>(n);
    return n;
}

// A QP moved to ERROR: what is still queued completes as flushed.
void flush(ibv_context* ctx) noexcept {
    device& d = device_of(ctx);
    for (std::size_t i = 0; i < d.ring_size; ++i)
        d.ring[(d.ring_head + i) % provider::posted_capacity].status = IBV_WC_WR_FLUSH_ERR;
}

template <class Fn>
Fn next_definition(const char* name) noexcept {
    return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

[[noreturn]] void refuse(const char* verb) noexcept {
    std::fprintf(stderr,
                 "rcq_stub: %s called on a stub object; the stub owns it. Wrap stub objects with "
                 "rcq::stub::rts_qp / adopted_cq, or release() rcq's owner before it is destroyed.\n",
                 verb);
    std::abort();
}

} // namespace

provider::provider() : dev_(std::make_unique<device>()) {
    device& d = *dev_;
    std::snprintf(d.dev.name, sizeof d.dev.name, "rcq_stub0");
    std::snprintf(d.dev.dev_name, sizeof d.dev.dev_name, "uverbs_stub0");
    d.dev.node_type = IBV_NODE_CA;
    d.dev.transport_type = IBV_TRANSPORT_IB;

    d.context.device = &d.dev;
    d.context.cmd_fd = -1;
    d.context.async_fd = -1;
    d.context.num_comp_vectors = 1;
    pthread_mutex_init(&d.context.mutex, nullptr);
    d.context.ops.post_send = stub_post_send;
    d.context.ops.post_recv = stub_post_recv;
    d.context.ops.post_srq_recv = stub_post_srq_recv;
    d.context.ops.poll_cq = stub_poll_cq;
    d.context.ops.req_notify_cq = stub_req_notify_cq;

    d.pd.context = &d.context;

    d.cq.context = &d.context;
    d.cq.cqe = 1024;
    pthread_mutex_init(&d.cq.mutex, nullptr);
    pthread_cond_init(&d.cq.cond, nullptr);

    d.srq.context = &d.context;
    d.srq.pd = &d.pd;
    pthread_mutex_init(&d.srq.mutex, nullptr);
    pthread_cond_init(&d.srq.cond, nullptr);

    d.qp.context = &d.context;
    d.qp.pd = &d.pd;
    d.qp.send_cq = &d.cq;
    d.qp.recv_cq = &d.cq;
    d.qp.qp_num = 0x51;
    d.qp.state = IBV_QPS_RTS;
    d.qp.qp_type = IBV_QPT_RC;
    pthread_mutex_init(&d.qp.mutex, nullptr);
    pthread_cond_init(&d.qp.cond, nullptr);
}

provider::~provider() {
    device& d = *dev_;
    pthread_cond_destroy(&d.qp.cond);
    pthread_mutex_destroy(&d.qp.mutex);
    pthread_cond_destroy(&d.srq.cond);
    pthread_mutex_destroy(&d.srq.mutex);
    pthread_cond_destroy(&d.cq.cond);
    pthread_mutex_destroy(&d.cq.mutex);
    pthread_mutex_destroy(&d.context.mutex);
}

ibv_context* provider::context() const noexcept { return &dev_->context; }
ibv_pd* provider::pd() const noexcept { return &dev_->pd; }
ibv_cq* provider::cq() const noexcept { return &dev_->cq; }
ibv_qp* provider::qp() const noexcept { return &dev_->qp; }
ibv_srq* provider::srq() const noexcept { return &dev_->srq; }
region provider::memory() const noexcept {
    return {dev_->memory, memory_size, 0x1c0de, 0x2c0de};
}
void provider::completions_per_poll(int n) noexcept { dev_->completions_per_poll = n; }
void provider::complete_posted(bool on) noexcept {
    device& d = *dev_;
    d.ring_head = d.ring_size = 0;
    d.context.ops.post_send = on ? stub_completing_post_send : stub_post_send;
    d.context.ops.post_recv = on ? stub_completing_post_recv : stub_post_recv;
    d.context.ops.poll_cq = on ? stub_completing_poll_cq : stub_poll_cq;
}
void provider::complete_with(ibv_wc_status status) noexcept { dev_->complete_with = status; }
const tally& provider::counts() const noexcept { return dev_->counts; }
void provider::reset_counts() noexcept {
    dev_->counts = {};
    dev_->next_wc_id = 0;
}
bool provider::is_stub(const ibv_context* ctx) noexcept {
    return ctx != nullptr &&
           (ctx->ops.post_send == &stub_post_send || ctx->ops.post_send == &stub_completing_post_send);
}

} // namespace rcq::stub

// -- interposed control-path verbs -------------------------------------------
// Defined in the executable, these take precedence over libibverbs' own for
// calls made by the program. Stub objects are answered here; everything else
// goes on to the next definition (libibverbs).

using rcq::stub::provider;

extern "C" int ibv_query_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask,
                            ibv_qp_init_attr* init_attr) {
    if (qp != nullptr && provider::is_stub(qp->context)) {
        *attr = ibv_qp_attr{};
        attr->qp_state = qp->state;
        attr->cur_qp_state = qp->state;
        attr->cap.max_send_wr = provider::max_send_wr;
        attr->cap.max_recv_wr = provider::max_recv_wr;
        attr->cap.max_send_sge = 1;
        attr->cap.max_recv_sge = 1;
        attr->cap.max_inline_data = provider::max_inline_data;
        *init_attr = ibv_qp_init_attr{};
        init_attr->send_cq = qp->send_cq;
        init_attr->recv_cq = qp->recv_cq;
        init_attr->srq = qp->srq;
        init_attr->qp_type = qp->qp_type;
        init_attr->cap = attr->cap;
        return 0;
    }
    using fn = int (*)(ibv_qp*, ibv_qp_attr*, int, ibv_qp_init_attr*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_query_qp");
    return real != nullptr ? real(qp, attr, attr_mask, init_attr) : ENOSYS;
}

extern "C" int ibv_modify_qp(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask) {
    if (qp != nullptr && provider::is_stub(qp->context)) {
        if (attr_mask & IBV_QP_STATE) {
            qp->state = attr->qp_state;
            if (attr->qp_state == IBV_QPS_ERR) rcq::stub::flush(qp->context);
        }
        return 0;
    }
    using fn = int (*)(ibv_qp*, ibv_qp_attr*, int);
    static const fn real = rcq::stub::next_definition<fn>("ibv_modify_qp");
    return real != nullptr ? real(qp, attr, attr_mask) : ENOSYS;
}

extern "C" ibv_comp_channel* ibv_create_comp_channel(ibv_context* context) {
    if (provider::is_stub(context)) {
        // A real file descriptor (an eventfd nobody signals), so that
        // fcntl and poll(2) on it behave.
        const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) return nullptr;
        return new ibv_comp_channel{context, fd, 0};
    }
    using fn = ibv_comp_channel* (*)(ibv_context*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_create_comp_channel");
    if (real == nullptr) {
        errno = ENOSYS;
        return nullptr;
    }
    return real(context);
}

extern "C" int ibv_destroy_comp_channel(ibv_comp_channel* channel) {
    if (channel != nullptr && provider::is_stub(channel->context)) {
        ::close(channel->fd);
        delete channel;
        return 0;
    }
    using fn = int (*)(ibv_comp_channel*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_destroy_comp_channel");
    return real != nullptr ? real(channel) : ENOSYS;
}

extern "C" int ibv_destroy_qp(ibv_qp* qp) {
    if (qp != nullptr && provider::is_stub(qp->context)) rcq::stub::refuse("ibv_destroy_qp");
    using fn = int (*)(ibv_qp*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_destroy_qp");
    return real != nullptr ? real(qp) : ENOSYS;
}

extern "C" int ibv_destroy_cq(ibv_cq* cq) {
    if (cq != nullptr && provider::is_stub(cq->context)) rcq::stub::refuse("ibv_destroy_cq");
    using fn = int (*)(ibv_cq*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_destroy_cq");
    return real != nullptr ? real(cq) : ENOSYS;
}

extern "C" int ibv_destroy_srq(ibv_srq* srq) {
    if (srq != nullptr && provider::is_stub(srq->context)) rcq::stub::refuse("ibv_destroy_srq");
    using fn = int (*)(ibv_srq*);
    static const fn real = rcq::stub::next_definition<fn>("ibv_destroy_srq");
    return real != nullptr ? real(srq) : ENOSYS;
}
