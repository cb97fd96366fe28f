// rcq/error.hpp - the one exception type of rcq's set-up paths.
#pragma once

#include <rcq/config.hpp>
#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

namespace rcq {

/// Thrown by every set-up step (opening a device, creating a QP, a
/// transition, a handshake). The message names the step, the errno text and,
/// where one helps, a hint saying what to do. Hot paths (post, poll) never
/// throw; they return a status instead.
class error : public std::system_error {
public:
    /// An error for `code` in `step`, with an optional hint.
    RCQ_DECL error(std::error_code code, const std::string& step, const std::string& hint = {});

    /// The verb or step that failed, e.g. "ibv_modify_qp(INIT->RTR)".
    const std::string& step() const noexcept { return step_; }
    /// What the caller can do about it; may be empty.
    const std::string& hint() const noexcept { return hint_; }

private:
    RCQ_DECL static std::string compose(const std::string& step, const std::string& hint);
    std::string step_;
    std::string hint_;
};

/// Throws rcq::error for the errno value `err` (errno itself when omitted).
/// Verbs report failures either through errno or as a returned errno value;
/// a zero value means the verb forgot to set one, reported as EIO.
[[noreturn]] RCQ_DECL void throw_error(const std::string& step, const std::string& hint = {},
                                       int err = errno);

/// A failure that is not an errno, such as malformed input: reported as
/// EINVAL or EPROTO, with `what` saying exactly what was wrong.
[[noreturn]] RCQ_DECL void throw_invalid(const std::string& what, const std::string& hint = {},
                                         int err = EINVAL);

} // namespace rcq

#if !defined(RCQ_SEPARATE_COMPILATION)
#include <rcq/impl/error.ipp>
#endif
