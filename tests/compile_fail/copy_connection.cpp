// expect-error: use of deleted function .*rcq::connection<Policies>::connection\(const rcq::connection<Policies>&\)
#include <rcq/connection.hpp>

#include <memory>

void hold(rcq::connection<>& conn, std::unique_ptr<rcq::connection<>>& owned) {
#ifdef RCQ_BREAK
    rcq::connection<> copy(conn);
    (void)owned;
#else
    (void)conn;
    std::unique_ptr<rcq::connection<>> moved = std::move(owned);
#endif
}

int main() {}
