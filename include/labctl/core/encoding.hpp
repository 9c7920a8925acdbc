#pragma once
// Byte encodings and digests shared by modules: hex, base64, SHA-256 (for image checksums, spec
// hashes and SSH key fingerprints; no crypto library is needed for these).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace labctl {

std::string to_hex(std::string_view bytes);
std::string base64_encode(std::string_view bytes, bool pad = true);
/// Decodes standard base64 (padding optional, whitespace ignored); nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view text);

/// Incremental SHA-256 (FIPS 180-4), for streaming large files.
class Sha256 {
public:
    Sha256();
    void update(std::string_view data);
    /// The 32-byte digest; the object must not be updated afterwards.
    std::array<std::uint8_t, 32> finish();

private:
    void block(const std::uint8_t* p);
    std::array<std::uint32_t, 8> m_state;
    std::array<std::uint8_t, 64> m_buffer{};
    std::size_t m_buffered = 0;
    std::uint64_t m_length = 0;
};

std::string sha256_hex(std::string_view data);
/// Raw 32-byte digest as a string.
std::string sha256_bytes(std::string_view data);

} // namespace labctl
