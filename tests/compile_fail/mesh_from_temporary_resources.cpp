// expect-error: use of deleted function .*rcq::mesh<.*>::mesh\(const Resources&&
// A mesh's QPs would outlive temporary resources (destroyed at the end of
// the statement, PD and CQ with them).
#include <rcq/handshake/file_mesh.hpp>
#include <rcq/mesh.hpp>
#include <rcq/resources.hpp>

using mesh = rcq::mesh<rcq::handshake::file_mesh>;

mesh build(const rcq::resources<>& named, rcq::handshake::file_mesh h) {
#ifdef RCQ_BREAK
    (void)named;
    return mesh(rcq::resources<>(), std::move(h));
#else
    return mesh(named, std::move(h));
#endif
}

int main() {}
