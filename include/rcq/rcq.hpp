// rcq/rcq.hpp - the whole public interface of rcq in one include: every
// handshake, the listener, the mesh, shared resources. A translation unit
// that includes only the headers it uses (say <rcq/connection.hpp> and
// <rcq/handshake/tcp.hpp>) reads far less and compiles faster; see also
// RCQ_SEPARATE_COMPILATION in <rcq/config.hpp>.
#pragma once

#include <rcq/config.hpp>

#include <rcq/agreement.hpp>
#include <rcq/buffer/borrowed.hpp>
#include <rcq/buffer/external.hpp>
#include <rcq/buffer/owned.hpp>
#include <rcq/category.hpp>
#include <rcq/connection.hpp>
#include <rcq/cq.hpp>
#include <rcq/deadline.hpp>
#include <rcq/device.hpp>
#include <rcq/endpoint.hpp>
#include <rcq/error.hpp>
#include <rcq/gid.hpp>
#include <rcq/extended.hpp>
#include <rcq/handshake/env.hpp>
#include <rcq/handshake/file.hpp>
#include <rcq/handshake/file_mesh.hpp>
#include <rcq/handshake/rdma_cm.hpp>
#include <rcq/handshake/tcp.hpp>
#include <rcq/handshake/tcp_link.hpp>
#include <rcq/handshake/tcp_listener.hpp>
#include <rcq/listener.hpp>
#include <rcq/mesh.hpp>
#include <rcq/mr.hpp>
#include <rcq/pd.hpp>
#include <rcq/policy.hpp>
#include <rcq/poll/adaptive.hpp>
#include <rcq/poll/blocking.hpp>
#include <rcq/poll/busy.hpp>
#include <rcq/qp.hpp>
#include <rcq/peer.hpp>
#include <rcq/remote.hpp>
#include <rcq/resources.hpp>
#include <rcq/router.hpp>
#include <rcq/secret.hpp>
#include <rcq/send_queue.hpp>
#include <rcq/srq.hpp>
#include <rcq/srq_pool.hpp>
#include <rcq/state.hpp>
#include <rcq/teardown.hpp>
#include <rcq/work_completion.hpp>
#include <rcq/wr.hpp>
