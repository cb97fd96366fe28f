// expect-error: use of deleted function .*rcq::async_cq<.*>::async_cq\(.*rcq::cq&&\)
// The temporary CQ is destroyed at the end of the statement, while the
// async_cq would go on polling it.
#include <rcq/async/cq.hpp>
#include <rcq/poll/busy.hpp>

#include <boost/asio/io_context.hpp>

void drive(boost::asio::io_context& io, rcq::poll::busy& policy, ibv_context* ctx, const rcq::cq& named) {
#ifdef RCQ_BREAK
    (void)named;
    rcq::async_cq<rcq::poll::busy> acq(io.get_executor(), policy, policy.make_cq(ctx, 16));
#else
    (void)ctx;
    rcq::async_cq<rcq::poll::busy> acq(io.get_executor(), policy, named);
#endif
}

int main() {}
