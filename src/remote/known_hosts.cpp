#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/remote/known_hosts.hpp>

namespace labctl::remote {

namespace {

/// known_hosts is read, changed and replaced whole: in one process (provision on a lab's several
/// hosts at once, VMs in parallel) two such updates must not interleave, or one is lost.
std::mutex g_update_mutex;

std::vector<std::string> split_ws(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> out;
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

bool names_pattern(const std::string& hosts_field, const std::string& pattern) {
    std::size_t start = 0;
    while (start <= hosts_field.size()) {
        const auto comma = hosts_field.find(',', start);
        const auto item = hosts_field.substr(start, comma - start);
        if (item == pattern)
            return true;
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return false;
}

} // namespace

std::string known_hosts_pattern(const std::string& host, int port) {
    return port == 22 ? host : fmt::format("[{}]:{}", host, port);
}

std::vector<KnownHost> find_known_hosts(const std::string& path, const std::string& host,
                                        int port) {
    std::vector<KnownHost> out;
    std::ifstream in(path);
    const auto pattern = known_hosts_pattern(host, port);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#' || line[0] == '@' || line[0] == '|')
            continue;
        const auto words = split_ws(line);
        if (words.size() >= 3 && names_pattern(words[0], pattern))
            out.push_back({pattern, words[1], words[2]});
    }
    return out;
}

void pin_host_keys(const std::string& path, const std::string& host, int port,
                   const std::vector<std::string>& public_key_lines) {
    const std::lock_guard lock(g_update_mutex);
    const auto pattern = known_hosts_pattern(host, port);
    std::string kept;
    {
        std::ifstream in(path);
        for (std::string line; std::getline(in, line);) {
            const auto words = split_ws(line);
            if (!words.empty() && words[0] == pattern)
                continue; // replaced below
            kept += line + "\n";
        }
    }
    for (const auto& key : public_key_lines) {
        const auto words = split_ws(key);
        if (words.size() < 2)
            throw Error(ExitCode::internal, fmt::format("not a public key line: '{}'", key));
        kept += fmt::format("{} {} {}\n", pattern, words[0], words[1]);
    }
    const std::filesystem::path target(path);
    if (target.has_parent_path())
        std::filesystem::create_directories(target.parent_path());
    write_file_atomic(path, kept, 0644);
}

std::size_t forget_host_keys(const std::string& path,
                             const std::vector<std::string>& public_key_lines) {
    const std::lock_guard lock(g_update_mutex);
    std::vector<std::string> blobs;
    for (const auto& key : public_key_lines)
        if (const auto words = split_ws(key); words.size() >= 2)
            blobs.push_back(words[1]);
    std::ifstream in(path);
    if (!in)
        return 0;
    std::string kept;
    std::size_t removed = 0;
    for (std::string line; std::getline(in, line);) {
        const auto words = split_ws(line);
        // "hosts type key": markers (@cert-authority) and comments are kept as they are.
        if (words.size() >= 3 && words[0].front() != '#' && words[0].front() != '@' &&
            std::find(blobs.begin(), blobs.end(), words[2]) != blobs.end()) {
            ++removed;
            continue;
        }
        kept += line + "\n";
    }
    if (in.bad())
        throw Error(ExitCode::preflight, fmt::format("cannot read {}", path),
                    "check the file's permissions");
    if (removed > 0)
        write_file_atomic(path, kept, 0644);
    return removed;
}

std::string fingerprint(const std::string& key_blob) {
    return "SHA256:" + base64_encode(sha256_bytes(key_blob), false);
}

} // namespace labctl::remote
