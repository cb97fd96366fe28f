// rcq/impl/secret.ipp - reading the shared secret, and its tags.
// Included by <rcq/secret.hpp>, or compiled once by <rcq/impl/src.hpp> under
// RCQ_SEPARATE_COMPILATION.
#pragma once

#include <rcq/secret.hpp>

#include <cerrno>
#include <cstdlib>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if RCQ_WITH_SODIUM
#include <sodium.h>
#endif

namespace rcq {

shared_secret shared_secret::from_file(const std::string& path) {
    const std::string what = "shared secret: " + path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) throw_error(what + ": cannot open", "give the path of the secret file", errno);
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_at_end{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_error(what + ": fstat");
    if (!S_ISREG(st.st_mode)) throw_invalid(what + " is not a regular file");
    if ((st.st_mode & 077) != 0)
        throw_invalid(what + " is readable or writable by other users",
                      "chmod 600 " + path + " (only its owner may read a secret)", EACCES);
    std::string text(max_size + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_error(what + ": read");
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    return from_text(text, what);
}

shared_secret shared_secret::from_env(const std::string& variable) {
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr)
        throw_invalid("shared secret: $" + variable + " is not set",
                      "set it to the same secret (at least " + std::to_string(min_size) +
                          " characters) on both sides");
    return from_text(value, "shared secret: $" + variable);
}

shared_secret shared_secret::from_bytes(std::span<const std::byte> bytes) {
    return shared_secret(bytes, "shared secret");
}

shared_secret::tag_type shared_secret::tag(std::initializer_list<std::string_view> parts) const {
    tag_type out{};
#if RCQ_WITH_SODIUM
    auto input = framed(parts);
    crypto_auth(out.data(), reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                key_.data());
#else
    (void)parts;
#endif
    return out;
}

bool shared_secret::verify(std::span<const std::uint8_t> tag,
                           std::initializer_list<std::string_view> parts) const {
#if RCQ_WITH_SODIUM
    if (tag.size() != tag_size) return false;
    auto input = framed(parts);
    return crypto_auth_verify(tag.data(), reinterpret_cast<const unsigned char*>(input.data()),
                              input.size(), key_.data()) == 0;
#else
    (void)tag;
    (void)parts;
    return false;
#endif
}

shared_secret shared_secret::from_text(std::string_view text, const std::string& what) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.remove_suffix(1);
    return shared_secret(std::as_bytes(std::span(text.data(), text.size())), what);
}

std::string shared_secret::framed(std::initializer_list<std::string_view> parts) {
    std::string input;
    for (auto part : parts) {
        auto n = static_cast<std::uint32_t>(part.size());
        for (int shift = 24; shift >= 0; shift -= 8)
            input += static_cast<char>((n >> shift) & 0xff);
        input += part;
    }
    return input;
}

shared_secret::shared_secret(std::span<const std::byte> bytes, const std::string& what) {
#if RCQ_WITH_SODIUM
    if (bytes.size() < min_size)
        throw_invalid(what + " is " + std::to_string(bytes.size()) +
                          " bytes, too short (at least " + std::to_string(min_size) + ")",
                      "use a long random secret, e.g. head -c 32 /dev/urandom | base64");
    if (bytes.size() > max_size)
        throw_invalid(what + " is longer than " + std::to_string(max_size) + " bytes");
    if (::sodium_init() < 0) throw_invalid(what + ": libsodium failed to initialise", {}, EIO);
    crypto_generichash(key_.data(), key_.size(),
                       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr,
                       0);
#else
    (void)bytes;
    throw_invalid(what + ": this build of rcq cannot authenticate (it was built without libsodium)",
                  "install libsodium-dev and rebuild, so that RCQ_WITH_SODIUM is defined",
                  EOPNOTSUPP);
#endif
}

void shared_secret::wipe() noexcept {
#if RCQ_WITH_SODIUM
    sodium_memzero(key_.data(), key_.size());
#endif
}

} // namespace rcq
