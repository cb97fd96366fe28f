// rcq/async/error.hpp - a failed work completion as an error code.
#pragma once

#include <rcq/config.hpp>

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>

#include <infiniband/verbs.h>

#include <string>

namespace rcq {

/// The error category of work completion statuses: an error code in it holds
/// an ibv_wc_status (value() is the status), and its message is
/// ibv_wc_status_str's text. rcq's asynchronous operations complete with it
/// when a work completion reports anything but IBV_WC_SUCCESS. A Boost.System
/// category, as Asio's error codes are; it converts to std::error_category
/// (and a code in it to std::error_code, value and message kept).
inline const boost::system::error_category& wc_category() noexcept {
    class category final : public boost::system::error_category {
    public:
        const char* name() const noexcept override { return "rcq.work_completion"; }
        std::string message(int status) const override {
            return ibv_wc_status_str(static_cast<ibv_wc_status>(status));
        }
    };
    static const category instance;
    return instance;
}

/// The error code of a work completion's status, in wc_category().
/// IBV_WC_SUCCESS (0) gives a code that tests false, as no error.
inline boost::system::error_code make_wc_error(ibv_wc_status status) noexcept {
    return {static_cast<int>(status), wc_category()};
}

} // namespace rcq
