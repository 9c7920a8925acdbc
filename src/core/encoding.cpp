#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>

namespace labctl {

std::string to_hex(std::string_view bytes) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(k_digits[c >> 4]);
        out.push_back(k_digits[c & 15]);
    }
    return out;
}

namespace {
constexpr char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}
} // namespace

std::string base64_encode(std::string_view bytes, bool pad) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const std::uint32_t v = (static_cast<std::uint8_t>(bytes[i]) << 16) |
                                (static_cast<std::uint8_t>(bytes[i + 1]) << 8) |
                                static_cast<std::uint8_t>(bytes[i + 2]);
        out += k_b64[(v >> 18) & 63];
        out += k_b64[(v >> 12) & 63];
        out += k_b64[(v >> 6) & 63];
        out += k_b64[v & 63];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        std::uint32_t v = static_cast<std::uint8_t>(bytes[i]) << 16;
        if (rest == 2)
            v |= static_cast<std::uint8_t>(bytes[i + 1]) << 8;
        out += k_b64[(v >> 18) & 63];
        out += k_b64[(v >> 12) & 63];
        if (rest == 2)
            out += k_b64[(v >> 6) & 63];
        if (pad)
            out.append(rest == 1 ? 2 : 1, '=');
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (char c : text) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            padding = true;
            continue;
        }
        const int v = b64_value(c);
        if (v < 0 || padding)
            return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    if (bits >= 6)
        return std::nullopt; // a lone trailing character cannot encode a byte
    return out;
}

// SHA-256 is OpenSSL's (libcrypto, already in the process through libssh2): its EVP digests use
// the CPU's SHA extensions where there are some, and nobody maintains a copy of their own.
struct Sha256::Impl {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : m_impl(std::make_unique<Impl>()) {
    if (m_impl->ctx == nullptr || EVP_DigestInit_ex(m_impl->ctx, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("OpenSSL cannot start a SHA-256 digest");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view data) {
    if (EVP_DigestUpdate(m_impl->ctx, data.data(), data.size()) != 1)
        throw std::runtime_error("OpenSSL SHA-256 update failed");
}

std::array<std::uint8_t, 32> Sha256::finish() {
    std::array<std::uint8_t, 32> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(m_impl->ctx, out.data(), &n) != 1 || n != out.size())
        throw std::runtime_error("OpenSSL SHA-256 final failed");
    return out;
}

struct Digest::Impl {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Impl() { EVP_MD_CTX_free(ctx); }
};

Digest::Digest(std::string_view algorithm) : m_impl(std::make_unique<Impl>()) {
    const EVP_MD* md = algorithm == "sha256"   ? EVP_sha256()
                       : algorithm == "sha512" ? EVP_sha512()
                                               : nullptr;
    if (md == nullptr)
        throw std::invalid_argument(fmt::format("unknown digest '{}'", algorithm));
    if (m_impl->ctx == nullptr || EVP_DigestInit_ex(m_impl->ctx, md, nullptr) != 1)
        throw std::runtime_error(fmt::format("OpenSSL cannot start a {} digest", algorithm));
}

Digest::~Digest() = default;
Digest::Digest(Digest&&) noexcept = default;
Digest& Digest::operator=(Digest&&) noexcept = default;

void Digest::update(std::string_view data) {
    if (EVP_DigestUpdate(m_impl->ctx, data.data(), data.size()) != 1)
        throw std::runtime_error("OpenSSL digest update failed");
}

std::string Digest::finish_hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(m_impl->ctx, out.data(), &n) != 1)
        throw std::runtime_error("OpenSSL digest final failed");
    return to_hex(std::string_view(reinterpret_cast<const char*>(out.data()), n));
}

std::size_t Digest::hex_length(std::string_view algorithm) {
    return algorithm == "sha512" ? 128 : algorithm == "sha256" ? 64 : 0;
}

std::string sha256_file_hex(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw usage_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)),
                          "check that the file exists and that you may read it");
    Fd owned(fd);
    Sha256 h;
    std::vector<char> buf(1 << 20);
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw usage_error(fmt::format("error while reading {}: {}", path, std::strerror(errno)),
                              "the file or the disk under it is damaged");
        if (n == 0)
            break;
        h.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    const auto d = h.finish();
    return to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

std::string sha256_bytes(std::string_view data) {
    Sha256 h;
    h.update(data);
    const auto d = h.finish();
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string sha256_hex(std::string_view data) {
    return to_hex(sha256_bytes(data));
}

} // namespace labctl
