#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/provision/checksum.hpp>

namespace labctl::provision {

std::string sha256_file_hex(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw usage_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    Sha256 h;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto got = in.gcount();
        if (got > 0)
            h.update(std::string_view(buf.data(), static_cast<std::size_t>(got)));
    }
    if (in.bad())
        throw usage_error(fmt::format("error while reading {}", path));
    const auto digest = h.finish();
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

} // namespace labctl::provision
