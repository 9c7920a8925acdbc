#pragma once
// The checksum files Debian and Ubuntu publish next to their cloud images (SHA512SUMS,
// SHA256SUMS): finding an image's line in one, and the file name a URL names.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::image {

/// A digest an image must have: its algorithm ("sha256" or "sha512") and lowercase hex.
struct ExpectedDigest {
    std::string algorithm;
    std::string hex;
};

/// The line for `file_name` in a checksum file's text. Both layouts coreutils writes are read:
/// GNU ("HEX  NAME", "HEX *NAME" in binary mode, as Ubuntu's SHA256SUMS has it) and BSD
/// ("SHA512 (NAME) = HEX"); a leading "./" on NAME is ignored. `algorithm` ("sha256", "sha512"
/// or "" for "tell by the digest's length") picks the entries. nullopt when no line names it.
std::optional<ExpectedDigest> find_checksum(std::string_view text, std::string_view file_name,
                                            std::string_view algorithm);

/// The algorithm a checksum file's URL names by its file name: SHA256SUMS (or sha256sum.txt,
/// *.sha256) → "sha256", SHA512SUMS → "sha512", anything else "" (told by the digest's length).
std::string checksums_algorithm(std::string_view url);

/// The last path segment of a URL without its query or fragment, percent-decoded:
/// "debian-12-genericcloud-amd64.qcow2" for ".../latest/debian-12-genericcloud-amd64.qcow2?x=1".
std::string url_file_name(std::string_view url);

/// The file names a checksum text lists (for "did you mean" in an error), at most `limit`.
std::vector<std::string> checksum_names(std::string_view text, std::size_t limit);

} // namespace labctl::image
