// rcq/rcq.hpp - the whole public interface of rcq in one include.
#pragma once

#include <rcq/buffer/borrowed.hpp>
#include <rcq/buffer/external.hpp>
#include <rcq/buffer/owned.hpp>
#include <rcq/category.hpp>
#include <rcq/config.hpp>
#include <rcq/connection.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/mr.hpp>
#include <rcq/pd.hpp>
#include <rcq/policy.hpp>
#include <rcq/poll/adaptive.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/qp.hpp>
#include <rcq/state.hpp>
#include <rcq/work_completion.hpp>
