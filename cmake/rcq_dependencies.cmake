# Finds rcq's dependencies; used by the build and by the installed package.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

# libibverbs ships a pkg-config file (rdma-core); make it an imported target.
if(NOT TARGET rcq::ibverbs)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
        pkg_check_modules(RCQ_IBVERBS QUIET IMPORTED_TARGET GLOBAL libibverbs)
    endif()
    if(TARGET PkgConfig::RCQ_IBVERBS)
        add_library(rcq::ibverbs ALIAS PkgConfig::RCQ_IBVERBS)
    else()
        message(FATAL_ERROR
            "rcq needs libibverbs (rdma-core) and pkg-config; on Debian: "
            "apt-get install libibverbs-dev pkg-config")
    endif()
endif()

# librdmacm (rdma-core, like libibverbs) for rcq::handshake::rdma_cm. It is
# required rather than optional: it ships beside libibverbs in every
# distribution, and a header that compiles only sometimes would need a second
# target and a guard in every header set check.
if(NOT TARGET rcq::rdmacm)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
        pkg_check_modules(RCQ_RDMACM QUIET IMPORTED_TARGET GLOBAL librdmacm)
    endif()
    if(TARGET PkgConfig::RCQ_RDMACM)
        add_library(rcq::rdmacm ALIAS PkgConfig::RCQ_RDMACM)
    else()
        message(FATAL_ERROR
            "rcq needs librdmacm (rdma-core) and pkg-config; on Debian: "
            "apt-get install librdmacm-dev pkg-config")
    endif()
endif()

# Boost is header-only here: Hana for all of rcq (1.74 has it), Asio and
# System for rcq/async, which needs 1.80 or newer (Asio's per-operation
# cancellation and deferred; its headers static_assert on BOOST_VERSION).
# Debian 12: libboost1.81-dev (which replaces libboost-dev, 1.74).
if(NOT TARGET Boost::headers)
    find_package(Boost 1.74 QUIET)
    if(NOT Boost_FOUND)
        message(FATAL_ERROR "rcq needs Boost.Hana (and Boost 1.80 or newer for rcq/async); on "
                            "Debian 12: apt-get install libboost1.81-dev")
    endif()
endif()
# Whether rcq/async can be used: set when this file found Boost itself.
if(DEFINED Boost_VERSION_STRING AND Boost_VERSION_STRING VERSION_LESS 1.80)
    set(RCQ_ASYNC_AVAILABLE OFF)
    message(STATUS "rcq: Boost ${Boost_VERSION_STRING} is older than 1.80: rcq/async (Boost.Asio) "
                   "is left out; on Debian 12 apt-get install libboost1.81-dev for it")
else()
    set(RCQ_ASYNC_AVAILABLE ON)
endif()

# libsodium (optional): authentication of the handshakes (rcq/secret.hpp).
# RCQ_WITH_SODIUM: AUTO (use it when found), ON (require it) or OFF. The
# installed package records the build's choice, so its users find it again.
if(NOT DEFINED RCQ_WITH_SODIUM)
    set(RCQ_WITH_SODIUM AUTO)
endif()
if(NOT TARGET rcq::sodium AND NOT RCQ_WITH_SODIUM STREQUAL "OFF")
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
        pkg_check_modules(RCQ_SODIUM QUIET IMPORTED_TARGET GLOBAL libsodium)
    endif()
    if(TARGET PkgConfig::RCQ_SODIUM)
        add_library(rcq::sodium ALIAS PkgConfig::RCQ_SODIUM)
    elseif(RCQ_WITH_SODIUM STREQUAL "ON")
        message(FATAL_ERROR
            "rcq was asked to authenticate handshakes (RCQ_WITH_SODIUM=ON) but libsodium was not "
            "found; on Debian: apt-get install libsodium-dev")
    endif()
endif()
