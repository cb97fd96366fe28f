# Conan 2 recipe for rcq, a header-only library.
#
#   conan create conan/ --build=missing
#
# Boost (Hana for all of rcq, Asio and System for rcq/async, which needs 1.80
# or newer) comes from Conan, header-only. libibverbs and librdmacm are
# taken from the system (Debian: libibverbs-dev and librdmacm-dev, with
# ibverbs-providers at run time): they
# talks to the kernel's RDMA stack and the providers that match it, so a
# second copy from a package manager would only risk a mismatch. libsodium,
# which authenticates the handshakes (rcq/secret.hpp), is taken from the
# system too (Debian: libsodium-dev): rcq is then built with RCQ_WITH_SODIUM.
import os

from conan import ConanFile
from conan.tools.files import copy
from conan.tools.layout import basic_layout


class RcqConan(ConanFile):
    name = "rcq"
    version = "0.1.0"
    description = "Header-only C++20 RoCEv2 RC queue pairs on libibverbs"
    license = "MIT"
    topics = ("rdma", "roce", "ibverbs", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True
    default_options = {"boost/*:header_only": True}

    def export_sources(self):
        # The recipe lives in conan/; the headers one level up.
        root = os.path.join(self.recipe_folder, "..")
        copy(self, "include/*", root, self.export_sources_folder)
        copy(self, "LICENSE", root, self.export_sources_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # 1.80: rcq/async uses Asio's per-operation cancellation and deferred.
        self.requires("boost/[>=1.80 <2]", transitive_headers=True)

    def validate(self):
        from conan.errors import ConanInvalidConfiguration
        from conan.tools.build import check_min_cppstd
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("rcq needs Linux (libibverbs)")
        check_min_cppstd(self, 20)

    def package_id(self):
        self.info.clear()

    def package(self):
        # The .ipp files hold the set-up functions' definitions; the headers
        # include them (or rcq/impl/src.hpp, under RCQ_SEPARATE_COMPILATION).
        for pattern in ("*.hpp", "*.ipp"):
            copy(self, pattern, os.path.join(self.source_folder, "include"),
                 os.path.join(self.package_folder, "include"))
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        # The same names as rcq's own CMake package: find_package(rcq) and rcq::rcq.
        self.cpp_info.set_property("cmake_file_name", "rcq")
        self.cpp_info.set_property("cmake_target_name", "rcq::rcq")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.system_libs = ["ibverbs", "rdmacm", "sodium"]
        self.cpp_info.defines = ["RCQ_WITH_SODIUM=1"]
        self.cpp_info.requires = ["boost::headers"]
