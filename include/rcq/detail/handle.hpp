// rcq/detail/handle.hpp - a move-only owner of one verbs object.
#pragma once

#include <utility>

namespace rcq::detail {

/// Owns a `T*` created by a verb and releases it with `Release` (one of
/// ibv_dealloc_pd, ibv_dereg_mr, ...). Exactly the size of the pointer.
/// Release errors are ignored: a destructor cannot report them, and verbs only
/// fail here when a dependent object is still alive, which the owners'
/// declaration order rules out.
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
        if (raw_ != nullptr) (void)Release(std::exchange(raw_, nullptr));
    }

private:
    T* raw_ = nullptr;
};

} // namespace rcq::detail
