// rcq/detail/handle.hpp - a move-only owner of one verbs object.
#pragma once

#include <rcq/config.hpp>

#include <infiniband/verbs.h>

#include <cerrno>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace rcq::detail {

/// The verb that releases a `T`, for messages.
template <class T>
constexpr const char* release_verb() noexcept {
    if constexpr (std::same_as<T, ibv_qp>) return "ibv_destroy_qp";
    else if constexpr (std::same_as<T, ibv_cq>) return "ibv_destroy_cq";
    else if constexpr (std::same_as<T, ibv_srq>) return "ibv_destroy_srq";
    else if constexpr (std::same_as<T, ibv_mr>) return "ibv_dereg_mr";
    else if constexpr (std::same_as<T, ibv_pd>) return "ibv_dealloc_pd";
    else if constexpr (std::same_as<T, ibv_context>) return "ibv_close_device";
    else return "releasing a verbs object";
}

/// A release verb failed (`rc`: its return value). Verbs refuse to destroy
/// an object that another still uses (EBUSY: a CQ with a QP on it, a PD with
/// MRs or QPs in it); the object then stays alive and leaks. A destructor
/// cannot throw, so this says so on stderr, every time; with
/// RCQ_DEBUG_CHECKS on it also aborts, so that the wrong order of
/// destruction is found where it happens.
[[gnu::cold, gnu::noinline]] inline void release_failed(const char* verb, int rc) noexcept {
    const int err = rc > 0 ? rc : errno;
    std::fprintf(stderr,
                 "rcq: %s failed: %s; the object is not released and leaks [hint: an object "
                 "made from it (QP, MR, ...) is probably still alive: destroy those first, e.g. "
                 "declare the owners in the order they are made]\n",
                 verb, std::strerror(err != 0 ? err : EIO));
    std::fflush(stderr);
#if RCQ_DEBUG_CHECKS
    std::abort();
#endif
}

/// Owns a `T*` created by a verb and releases it with `Release` (one of
/// ibv_dealloc_pd, ibv_dereg_mr, ...). Exactly the size of the pointer.
/// Releasing can fail (see release_failed): rcq reports it, never ignores it.
template <class T, auto Release>
class handle {
public:
    handle() noexcept = default;
    explicit handle(T* raw) noexcept : raw_(raw) {}
    handle(handle&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    handle& operator=(handle&& other) noexcept {
        if (this != &other) {
            reset();
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle() { reset(); }

    T* get() const noexcept { return raw_; }
    T* operator->() const noexcept { return raw_; }
    explicit operator bool() const noexcept { return raw_ != nullptr; }
    /// Gives up ownership without releasing.
    T* release() noexcept { return std::exchange(raw_, nullptr); }
    void reset() noexcept {
        if (raw_ == nullptr) return;
        if (int rc = Release(std::exchange(raw_, nullptr)); rc != 0) [[unlikely]]
            release_failed(release_verb<T>(), rc);
    }

private:
    T* raw_ = nullptr;
};

} // namespace rcq::detail
