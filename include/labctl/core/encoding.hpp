#pragma once
// Byte encodings and digests shared by modules: hex, base64, SHA-256 (for image checksums, spec
// hashes and SSH key fingerprints; SHA-256 is OpenSSL's).

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace labctl {

std::string to_hex(std::string_view bytes);
std::string base64_encode(std::string_view bytes, bool pad = true);
/// Decodes standard base64 (padding optional, whitespace ignored); nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);

/// Incremental SHA-256 (OpenSSL's EVP), for streaming large files.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    void update(std::string_view data);
    /// The 32-byte digest; the object must not be updated afterwards.
    std::array<std::uint8_t, 32> finish();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

/// Incremental SHA-256 or SHA-512 by name, for checksums published either way (Debian's
/// SHA512SUMS, Ubuntu's SHA256SUMS).
class Digest {
public:
    /// `algorithm`: "sha256" or "sha512"; anything else throws std::invalid_argument.
    explicit Digest(std::string_view algorithm);
    ~Digest();
    Digest(Digest&&) noexcept;
    Digest& operator=(Digest&&) noexcept;
    void update(std::string_view data);
    /// The digest as lowercase hex; the object must not be updated afterwards.
    std::string finish_hex();
    /// Hex characters of the algorithm's digest: 64 (sha256) or 128 (sha512).
    static std::size_t hex_length(std::string_view algorithm);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

/// SHA-256 of a file's contents as lowercase hex; every open and read error is an
/// Error(usage) naming the file (a truncated read is never a digest).
std::string sha256_file_hex(const std::string& path);

std::string sha256_hex(std::string_view data);
/// Raw 32-byte digest as a string.
std::string sha256_bytes(std::string_view data);

} // namespace labctl
