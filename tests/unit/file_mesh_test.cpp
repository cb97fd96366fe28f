// rcq::handshake::file_mesh in a temporary folder per test: N ranks as
// threads (and as processes), leftover files of earlier runs, missing ranks,
// and every planted or malformed file ending in a clear rcq::error.
#include "support.hpp"

#include <rcq/handshake/file_mesh.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <span>
#include <sstream>
#include <string_view>
#include <string>
#include <thread>
#include <vector>

namespace {

using unit_test::endpoint_with;
using unit_test::endpoint_with_memory;
using unit_test::error_of;
using unit_test::mesh_endpoint;
using unit_test::mesh_endpoints;

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using rcq::handshake::file_mesh;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

// An empty string when rank `rank` received exactly what each peer sent it.
std::string check_received(int rank, const std::vector<rcq::endpoint>& got) {
    std::ostringstream out;
    for (int j = 0; j < static_cast<int>(got.size()); ++j) {
        const auto expected = j == rank ? rcq::endpoint{} : mesh_endpoint(j, rank);
        if (!(got[static_cast<std::size_t>(j)] == expected))
            out << "rank " << rank << " got " << rcq::to_text(got[static_cast<std::size_t>(j)])
                << " from rank " << j << "; ";
    }
    return out.str();
}

class FileMesh : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "rcq-mesh-test-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir = pattern;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }

    file_mesh rank(int r, int size, std::chrono::milliseconds timeout = 10s,
                   std::string session = "job7") const {
        return file_mesh({.folder = dir,
                          .session = std::move(session),
                          .rank = r,
                          .size = size,
                          .timeout = timeout,
                          .poll_interval = 5ms});
    }

    // Runs ranks `which` of a mesh of `size` in threads, rank r starting
    // after r * stagger; returns each rank's error message ("" on success).
    std::vector<std::string> run_ranks(int size, std::vector<int> which,
                                       std::chrono::milliseconds timeout = 10s,
                                       std::chrono::milliseconds stagger = 0ms) const {
        std::vector<std::future<std::string>> futures;
        for (int r : which)
            futures.push_back(std::async(std::launch::async, [this, r, size, timeout, stagger] {
                std::this_thread::sleep_for(stagger * r);
                try {
                    auto hs = rank(r, size, timeout);
                    auto got = hs.exchange(mesh_endpoints(r, size));
                    hs.barrier();
                    return check_received(r, got);
                } catch (const rcq::error& e) {
                    return std::to_string(e.code().value()) + " " + e.what();
                }
            }));
        std::vector<std::string> results;
        for (auto& f : futures) results.push_back(f.get());
        return results;
    }

    void put(const std::string& name, const std::string& content) const {
        std::ofstream(dir / name, std::ios::binary) << content;
    }

    // A well-formed file of rank `r` of a mesh of `size`, as an earlier run
    // would have left it.
    static std::string record(int r, int size, const std::string& nonce, const std::string& ack,
                              const std::string& state = "exchange", const std::string& session = "job7") {
        std::string text = "rcq-file-mesh 1\nsession " + session + "\nrank " + std::to_string(r) +
                           "\nsize " + std::to_string(size) + "\nstate " + state + "\nnonce " + nonce + "\n";
        for (int k = 0; k < size; ++k)
            if (k != r) text += "ack " + std::to_string(k) + " " + ack + "\n";
        text += "host oldhost\npid 1\ntime 1000000000\n";
        for (int k = 0; k < size; ++k)
            if (k != r) text += "endpoint " + std::to_string(k) + " " + rcq::to_text(endpoint_with(0xdead)) + "\n";
        return text;
    }

    // Rank 0 of 2 waiting for rank 1 with `content` in rank 1's place.
    std::string error_with_rank1_file(const std::string& content, int code) const {
        put("job7.rank1.mesh", content);
        auto hs = rank(0, 2, 5s);
        auto start = clock_type::now();
        auto msg = error_of([&] { hs.exchange(mesh_endpoints(0, 2)); }, code);
        EXPECT_LT(clock_type::now() - start, 2s) << "a malformed file is reported at once";
        return msg;
    }

    fs::path dir;
};

rcq::shared_secret secret_of(std::string_view text) {
    return rcq::shared_secret::from_bytes(std::as_bytes(std::span(text.data(), text.size())));
}

const std::string old_nonce = "0123456789abcdef0123456789abcdef";

TEST_F(FileMesh, FourRanksAsThreadsGetEachOthersEndpoints) {
    for (const auto& result : run_ranks(4, {0, 1, 2, 3})) EXPECT_EQ(result, "");
    // One file per rank, nothing else (no temporary files).
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"job7.rank0.mesh", "job7.rank1.mesh", "job7.rank2.mesh",
                                               "job7.rank3.mesh"}));
    for (const auto& name : names)
        EXPECT_EQ(fs::status(dir / name).permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(FileMesh, RanksStartingAtDifferentTimesStillMeet) {
    for (const auto& result : run_ranks(5, {0, 1, 2, 3, 4}, 10s, 150ms)) EXPECT_EQ(result, "");
}

TEST_F(FileMesh, OneRankIsAMeshOfNothing) {
    auto hs = rank(0, 1);
    auto got = hs.exchange(mesh_endpoints(0, 1));
    hs.barrier();
    EXPECT_EQ(got.size(), 1u);
}

TEST_F(FileMesh, FourRanksAsProcesses) {
    constexpr int size = 4;
    std::vector<pid_t> children;
    for (int r = 1; r < size; ++r) {
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int status = 1;
            try {
                auto hs = rank(r, size);
                auto got = hs.exchange(mesh_endpoints(r, size));
                hs.barrier();
                status = check_received(r, got).empty() ? 0 : 2;
            } catch (...) {
                status = 3;
            }
            ::_exit(status);
        }
        children.push_back(pid);
    }
    auto hs = rank(0, size);
    std::string result;
    try {
        auto got = hs.exchange(mesh_endpoints(0, size));
        hs.barrier();
        result = check_received(0, got);
    } catch (const rcq::error& e) {
        result = e.what();
    }
    EXPECT_EQ(result, "");
    for (pid_t pid : children) {
        int status = -1;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    }
}

TEST_F(FileMesh, AMissingRankIsNamedInTheTimeout) {
    auto start = clock_type::now();
    auto results = run_ranks(4, {0, 1, 3}, 800ms);
    EXPECT_LT(clock_type::now() - start, 3s);
    for (const auto& result : results)
        EXPECT_THAT(result, AllOf(HasSubstr(std::to_string(ETIMEDOUT) + " file mesh as rank "),
                                  HasSubstr("the mesh was not complete within 800 ms: no file from rank 2"),
                                  Not(HasSubstr("rank 2,")), HasSubstr("same folder, session \"job7\" and size 4")));
}

TEST_F(FileMesh, SeveralMissingRanksAreListed) {
    auto results = run_ranks(5, {2}, 300ms);
    EXPECT_THAT(results[0], HasSubstr("no file from ranks 0, 1, 3, 4"));
}

TEST_F(FileMesh, StaleFilesAreNeverTaken) {
    // Leftovers of an earlier run of ranks 1 and 2 (with endpoints 0xdead)
    // and of a file for rank 0 acknowledging a dead nonce.
    put("job7.rank1.mesh", record(1, 3, old_nonce, old_nonce));
    put("job7.rank2.mesh", record(2, 3, old_nonce, old_nonce, "ready"));
    auto results = run_ranks(3, {0}, 500ms);
    EXPECT_THAT(results[0], AllOf(HasSubstr(std::to_string(ETIMEDOUT)),
                                  HasSubstr("the file of ranks 1, 2 never acknowledged this run")));
    // With the leftovers still there, a live run takes only live endpoints
    // (check_received compares with what the live ranks sent).
    put("job7.rank0.mesh", record(0, 3, old_nonce, old_nonce, "ready"));
    for (const auto& result : run_ranks(3, {0, 1, 2}, 10s, 100ms)) EXPECT_EQ(result, "");
}

TEST_F(FileMesh, ARankThatSkipsTheBarrierIsNamed) {
    auto skipper = std::async(std::launch::async, [this] {
        auto hs = rank(1, 3, 5s);
        hs.exchange(mesh_endpoints(1, 3));
        std::this_thread::sleep_for(1500ms); // never calls barrier()
    });
    auto others = run_ranks(3, {0, 2}, 1s);
    skipper.get();
    for (const auto& result : others)
        EXPECT_THAT(result, AllOf(HasSubstr(std::to_string(ETIMEDOUT)),
                                  HasSubstr(": rank 1 did not reach the barrier within 1 s")));
}

TEST_F(FileMesh, RanksOfDifferentSizesRefuseEachOther) {
    put("job7.rank1.mesh", record(1, 3, old_nonce, "none"));
    auto msg = error_with_rank1_file(record(1, 3, old_nonce, "none"), EPROTO);
    EXPECT_THAT(msg, HasSubstr("rank 1 was started for a mesh of \"3\" ranks, this rank for 2"));
}

TEST_F(FileMesh, PlantedAndMalformedFilesAreRefusedAtOnce) {
    EXPECT_THAT(error_with_rank1_file("", EPROTO), HasSubstr("empty file"));
    auto good = record(1, 2, old_nonce, "none");
    EXPECT_THAT(error_with_rank1_file(good.substr(0, good.size() - 5), EPROTO),
                HasSubstr("truncated (the last line has no newline)"));
    EXPECT_THAT(error_with_rank1_file("rcq-file-mesh 9\n", EPROTO), HasSubstr("format \"9\" not supported"));
    EXPECT_THAT(error_with_rank1_file("GET / HTTP/1.0\n", EPROTO),
                HasSubstr("expected the first line \"rcq-file-mesh 1\""));
    EXPECT_THAT(error_with_rank1_file(record(1, 2, old_nonce, "none", "exchange", "job8"), EPROTO),
                HasSubstr("belongs to session \"job8\""));
    EXPECT_THAT(error_with_rank1_file(record(1, 2, "xyz", "none"), EPROTO), HasSubstr("bad nonce \"xyz\""));
    EXPECT_THAT(error_with_rank1_file(record(1, 2, old_nonce, "none", "done"), EPROTO),
                HasSubstr("bad state \"done\""));
    auto cut = good.substr(0, good.find("host"));
    EXPECT_THAT(error_with_rank1_file(cut, EPROTO), HasSubstr("no \"host\" line"));
    auto bad_ep = good;
    bad_ep.replace(bad_ep.find("rcq2"), 4, "rcq9");
    EXPECT_THAT(error_with_rank1_file(bad_ep, EINVAL), HasSubstr("endpoint 0: endpoint text"));
    EXPECT_THAT(error_with_rank1_file(good + "more\n", EPROTO), HasSubstr("unexpected line \"more\""));
    EXPECT_THAT(error_with_rank1_file(std::string(file_mesh::max_file_size(2) + 1, 'x'), EPROTO),
                HasSubstr("too large"));
    // A symbolic link in rank 1's place is refused, not followed.
    fs::remove(dir / "job7.rank1.mesh");
    fs::create_symlink("/etc/hostname", dir / "job7.rank1.mesh");
    auto hs = rank(0, 2, 2s);
    EXPECT_THAT(error_of([&] { hs.exchange(mesh_endpoints(0, 2)); }, ELOOP), HasSubstr("is a symbolic link; refused"));
}

TEST_F(FileMesh, MemoryTokensNeedConsentOrASecret) {
    auto hs = rank(0, 2, 1s);
    std::vector<rcq::endpoint> eps{rcq::endpoint{}, endpoint_with_memory(5)};
    EXPECT_THAT(error_of([&] { hs.exchange(eps); }, EACCES), HasSubstr("carries a memory token"));
    EXPECT_FALSE(fs::exists(dir / "job7.rank0.mesh")) << "refused before anything is written";

    auto a = rank(0, 2);
    auto b = rank(1, 2);
    a.allow_memory_without_secret();
    b.allow_memory_without_secret();
    auto other = std::async(std::launch::async, [&b] {
        auto got = b.exchange(std::vector<rcq::endpoint>{endpoint_with_memory(7), rcq::endpoint{}});
        b.barrier();
        return got[0];
    });
    auto got = a.exchange(eps);
    a.barrier();
    EXPECT_EQ(got[1], endpoint_with_memory(7));
    EXPECT_EQ(other.get(), endpoint_with_memory(5));
}

TEST_F(FileMesh, WithASecretOnlyTheSameSecretIsAccepted) {
    auto run = [this](const char* secret0, const char* secret1) {
        auto a = rank(0, 2, 1s);
        auto b = rank(1, 2, 1s);
        a.authenticate(secret_of(secret0));
        if (secret1) b.authenticate(secret_of(secret1));
        auto other = std::async(std::launch::async, [&b] {
            try {
                b.exchange(mesh_endpoints(1, 2));
                b.barrier();
                return std::string();
            } catch (const rcq::error& e) {
                return std::to_string(e.code().value()) + " " + e.what();
            }
        });
        std::string mine;
        try {
            auto got = a.exchange(mesh_endpoints(0, 2));
            a.barrier();
            mine = check_received(0, got);
        } catch (const rcq::error& e) {
            mine = std::to_string(e.code().value()) + " " + e.what();
        }
        return std::pair{mine, other.get()};
    };
    auto same = run("correct horse battery staple", "correct horse battery staple");
    EXPECT_EQ(same.first, "");
    EXPECT_EQ(same.second, "");
    fs::remove_all(dir);
    fs::create_directory(dir);
    auto other = run("correct horse battery staple", "another secret entirely!");
    EXPECT_THAT(other.first + other.second,
                AllOf(HasSubstr(std::to_string(EACCES)), HasSubstr("its tag does not verify")));
    fs::remove_all(dir);
    fs::create_directory(dir);
    auto none = run("correct horse battery staple", nullptr);
    EXPECT_THAT(none.first, HasSubstr("is not authenticated (no tag line)"));
    EXPECT_THAT(none.second, HasSubstr("is authenticated and this rank has no shared secret"));
}

TEST_F(FileMesh, SettingsAndMisuseAreRefused) {
    EXPECT_THAT(error_of([&] { rank(4, 4); }, EINVAL), HasSubstr("rank 4 is not in a mesh of 4"));
    EXPECT_THAT(error_of([&] { rank(-1, 4); }, EINVAL), HasSubstr("rank -1 is not in a mesh of 4"));
    EXPECT_THAT(error_of([&] { rank(0, 0); }, EINVAL), HasSubstr("size 0 is out of range"));
    EXPECT_THAT(error_of([&] { rank(0, file_mesh::max_size + 1); }, EINVAL), HasSubstr("out of range"));
    EXPECT_THAT(error_of([&] { rank(0, 2, 1s, "a.b"); }, EINVAL),
                HasSubstr("file mesh: session name \"a.b\" is not usable in a file name"));
    EXPECT_THAT(error_of([&] { rank(0, 2, 0ms); }, EINVAL), HasSubstr("the timeout must be positive"));
    EXPECT_THAT(error_of([&] { file_mesh(dir / "nope", "job7", 0, 2); }, ENOENT),
                HasSubstr("cannot use folder"));

    auto hs = rank(0, 3, 1s);
    EXPECT_THAT(error_of([&] { hs.exchange(mesh_endpoints(0, 2)); }, EINVAL),
                HasSubstr("exchange() was given 2 endpoints for a mesh of 3 ranks"));
    EXPECT_THAT(error_of([&] { hs.barrier(); }, EINVAL), HasSubstr("barrier() called out of order"));
    auto moved = std::move(hs);
    // NOLINTNEXTLINE(bugprone-use-after-move): the use after move under test
    EXPECT_THAT(error_of([&] { hs.exchange(mesh_endpoints(0, 3)); }, EINVAL),
                HasSubstr("on a moved-from object"));
}

TEST_F(FileMesh, RemoveFileTakesOnlyThisRanksFile) {
    for (const auto& result : run_ranks(2, {0, 1})) EXPECT_EQ(result, "");
    rank(1, 2).remove_file();
    EXPECT_TRUE(fs::exists(dir / "job7.rank0.mesh"));
    EXPECT_FALSE(fs::exists(dir / "job7.rank1.mesh"));
}

} // namespace
