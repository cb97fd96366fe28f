// rcq/detail/sleep.hpp - the handshakes' back-off pauses, without <thread>.
#pragma once

#include <rcq/config.hpp>

#include <cerrno>
#include <chrono>

#include <time.h>

namespace rcq::detail {

/// Blocks the calling thread for at least `d` (nothing for zero or less),
/// as std::this_thread::sleep_for does: nanosleep(2), resumed with the time
/// left when a signal interrupts it. Only for back-off pauses;
/// <thread> would cost every translation unit that includes a handshake.
inline void sleep_for(std::chrono::nanoseconds d) noexcept {
    if (d <= std::chrono::nanoseconds::zero()) return;
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
    timespec left{static_cast<time_t>(secs.count()), static_cast<long>((d - secs).count())};
    while (::nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

} // namespace rcq::detail
