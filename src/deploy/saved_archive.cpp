#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/deploy/saved_archive.hpp>

namespace labctl::deploy {

namespace {

constexpr std::uint64_t k_block = 512;

Error not_an_archive(const std::string& path, const std::string& why) {
    return Error(ExitCode::deploy,
                 fmt::format("{} is not a docker save archive labctl can read: {}", path, why),
                 "is the local Docker engine healthy? ('docker save' wrote it)");
}

/// Reads up to `len` bytes at `offset` (retrying EINTR); throws when the file ends first, saying
/// `ended`.
std::size_t read_some(int fd, char* buf, std::size_t len, std::uint64_t offset,
                      const std::string& path, const char* ended) {
    while (true) {
        const auto n = ::pread(fd, buf, len, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw Error(ExitCode::deploy,
                        fmt::format("cannot read {}: {}", path, std::strerror(errno)));
        if (n == 0 && len > 0)
            throw not_an_archive(path, ended);
        return static_cast<std::size_t>(n);
    }
}

/// Reads exactly `len` bytes at `offset`.
std::string read_at(int fd, std::uint64_t offset, std::uint64_t len, const std::string& path) {
    std::string out(len, '\0');
    for (std::uint64_t done = 0; done < len;)
        done += read_some(fd, out.data() + done, len - done, offset + done, path,
                          "it ends inside an entry");
    return out;
}

/// A tar header's numeric field: octal text, or base-256 when its first byte has the high bit
/// (GNU; Go's archive/tar writes it for values octal cannot hold).
std::uint64_t number(const char* field, std::size_t len) {
    const auto* b = reinterpret_cast<const unsigned char*>(field);
    if (b[0] & 0x80) {
        std::uint64_t v = b[0] & 0x7f;
        for (std::size_t i = 1; i < len; ++i)
            v = (v << 8) | b[i];
        return v;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < len && field[i] != '\0' && field[i] != ' '; ++i) {
        if (field[i] < '0' || field[i] > '7')
            break;
        v = v * 8 + static_cast<std::uint64_t>(field[i] - '0');
    }
    return v;
}

std::string field_text(const char* field, std::size_t len) {
    return std::string(field, strnlen(field, len));
}

/// The "path" record of a PAX extended header ("<len> path=<value>\n" records), or "".
std::string pax_path(const std::string& data) {
    std::size_t at = 0;
    while (at < data.size()) {
        const auto sp = data.find(' ', at);
        if (sp == std::string::npos)
            break;
        const auto len = std::strtoull(data.c_str() + at, nullptr, 10);
        if (len == 0 || at + len > data.size())
            break;
        const auto record = data.substr(sp + 1, at + len - sp - 2); // without the newline
        if (record.rfind("path=", 0) == 0)
            return record.substr(5);
        at += len;
    }
    return {};
}

/// The chain id of a layer with diff id `diff` on the chain `chain` ("" for a base layer).
std::string extend_chain(const std::string& chain, const std::string& diff) {
    return chain.empty() ? diff : "sha256:" + sha256_hex(chain + " " + diff);
}

} // namespace

std::set<std::string> chain_ids(const std::vector<std::vector<std::string>>& diff_id_lists) {
    std::set<std::string> out;
    for (const auto& diffs : diff_id_lists) {
        std::string chain;
        for (const auto& d : diffs) {
            chain = extend_chain(chain, d);
            out.insert(chain);
        }
    }
    return out;
}

std::set<std::string> parse_engine_chains(const std::string& out) {
    std::vector<std::vector<std::string>> lists;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::vector<std::string> diffs;
        for (std::string w; words >> w;)
            if (w.rfind("sha256:", 0) == 0)
                diffs.push_back(w);
        if (!diffs.empty())
            lists.push_back(std::move(diffs));
    }
    return chain_ids(lists);
}

SavedArchive::SavedArchive(const std::string& path)
    : m_path(path), m_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (m_fd.fd < 0)
        throw Error(ExitCode::deploy,
                    fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(m_fd.fd, &st) != 0)
        throw Error(ExitCode::deploy,
                    fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
    const auto file_size = static_cast<std::uint64_t>(st.st_size);

    std::map<std::string, std::size_t> by_name; // entry path -> segment
    std::uint64_t at = 0;
    std::string long_name;     // from a PAX or GNU long-name entry, for the next entry
    std::uint64_t pending = 0; // where that extension header began
    bool extended = false;
    while (true) {
        if (at + k_block > file_size)
            throw not_an_archive(path, "it has no end-of-archive block");
        const auto header = read_at(m_fd.fd, at, k_block, path);
        if (header.find_first_not_of('\0') == std::string::npos) {
            // The end: the zero blocks (and any padding after them) go as they are.
            m_segments.push_back({at, file_size - at, 0, 0, "", true});
            break;
        }
        const char* h = header.data();
        // The checksum: the header's bytes summed with its own field read as spaces.
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < k_block; ++i)
            sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
        if (sum != number(h + 148, 8))
            throw not_an_archive(path,
                                 fmt::format("the header at byte {} is not a tar header", at));
        const auto size = number(h + 124, 12);
        const char type = h[156];
        const auto data_blocks = (size + k_block - 1) / k_block * k_block;
        if (at + k_block + data_blocks > file_size)
            throw not_an_archive(path, "an entry runs past its end");
        if (type == 'x' || type == 'L') {
            const auto data = read_at(m_fd.fd, at + k_block, size, path);
            long_name = type == 'x' ? pax_path(data) : field_text(data.data(), data.size());
            if (!extended)
                pending = at;
            extended = true;
            at += k_block + data_blocks;
            continue;
        }
        std::string name = field_text(h, 100);
        if (std::memcmp(h + 257, "ustar", 5) == 0) {
            const auto prefix = field_text(h + 345, 155);
            if (!prefix.empty())
                name = prefix + "/" + name;
        }
        if (!long_name.empty())
            name = long_name;
        // An extension header belongs to the entry after it: kept or left out together.
        const auto start = extended ? pending : at;
        by_name[name] = m_segments.size();
        m_segments.push_back(
            {start, at + k_block + data_blocks - start, at + k_block, size, name, true});
        at += k_block + data_blocks;
        long_name.clear();
        extended = false;
    }

    const auto manifest_it = by_name.find("manifest.json");
    if (manifest_it == by_name.end())
        throw not_an_archive(path, "no manifest.json");
    auto data_of = [&](const std::string& name) {
        const auto it = by_name.find(name);
        if (it == by_name.end())
            throw not_an_archive(path, "manifest.json names " + name + ", which it lacks");
        const auto& seg = m_segments[it->second];
        return read_at(m_fd.fd, seg.data_offset, seg.data_size, path);
    };
    nlohmann::json manifest;
    try {
        manifest = nlohmann::json::parse(data_of("manifest.json"));
        for (const auto& image : manifest) {
            const auto config =
                nlohmann::json::parse(data_of(image.at("Config").get<std::string>()));
            const auto layers = image.at("Layers").get<std::vector<std::string>>();
            const auto diffs = config.at("rootfs").at("diff_ids").get<std::vector<std::string>>();
            if (layers.size() != diffs.size())
                throw not_an_archive(path, "an image's layers and diff ids differ in number");
            std::string chain;
            for (std::size_t i = 0; i < layers.size(); ++i) {
                chain = extend_chain(chain, diffs[i]);
                m_layer_chains.emplace_back(layers[i], chain);
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw not_an_archive(path, std::string("its manifest or an image config: ") + e.what());
    }
}

std::size_t SavedArchive::omit_layers(const std::set<std::string>& present) {
    std::set<std::string> omit;
    for (const auto& [layer, chain] : m_layer_chains)
        if (present.count(chain))
            omit.insert(layer);
    // A layer file another image needs in a chain the target lacks stays (the same file is the
    // same chain: its name is derived from it, so this is only a guard).
    for (const auto& [layer, chain] : m_layer_chains)
        if (!present.count(chain))
            omit.erase(layer);
    std::size_t n = 0;
    for (auto& seg : m_segments)
        if (seg.keep && omit.count(seg.name)) {
            seg.keep = false;
            ++n;
        }
    return n;
}

std::uint64_t SavedArchive::size() const {
    std::uint64_t n = 0;
    for (const auto& seg : m_segments)
        n += seg.keep ? seg.length : 0;
    return n;
}

std::uint64_t SavedArchive::omitted() const {
    std::uint64_t n = 0;
    for (const auto& seg : m_segments)
        n += seg.keep ? 0 : seg.length;
    return n;
}

std::size_t SavedArchive::read(char* buf, std::size_t len) {
    while (m_at < m_segments.size()) {
        const auto& seg = m_segments[m_at];
        if (!seg.keep || m_in_segment == seg.length) {
            ++m_at;
            m_in_segment = 0;
            continue;
        }
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(len, seg.length - m_in_segment));
        const auto n = read_some(m_fd.fd, buf, want, seg.offset + m_in_segment, m_path,
                                 "it shrank while being sent");
        m_in_segment += n;
        return n;
    }
    return 0;
}

} // namespace labctl::deploy
