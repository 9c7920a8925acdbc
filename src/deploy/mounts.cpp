#include <filesystem>
#include <fstream>
#include <regex>

#include <labctl/core/error.hpp>
#include <labctl/deploy/mounts.hpp>
#include <labctl/deploy/tree.hpp>

namespace labctl::deploy {

namespace {

/// `path` lies strictly under the directory `dir`.
bool is_under(const std::string& path, const std::string& dir) {
    return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
           (dir.back() == '/' || path[dir.size()] == '/');
}

} // namespace

std::vector<std::string> changed_paths(const std::vector<std::string>& itemized,
                                       const std::string& remote_dir) {
    // rsync prints an 11-character change code (or "*deleting" padded to 11), a space, then the
    // path relative to the destination; directories end in '/' (rsync(1), --itemize-changes).
    constexpr std::size_t k_code = 11;
    std::string base = remote_dir;
    while (base.size() > 1 && base.back() == '/')
        base.pop_back();
    std::vector<std::string> out;
    for (const auto& line : itemized) {
        if (line.size() <= k_code + 1 || line[k_code] != ' ')
            continue;
        std::string rel = line.substr(k_code + 1);
        while (!rel.empty() && rel.back() == '/')
            rel.pop_back();
        if (rel.empty() || rel == ".")
            continue;
        out.push_back(base + "/" + rel);
    }
    return out;
}

bool mount_reaches(const std::string& source, const std::string& changed) {
    // Named volumes appear by name, never as an absolute path.
    if (source.empty() || source.front() != '/')
        return false;
    return source == changed || is_under(changed, source) || is_under(source, changed);
}

std::vector<ServiceState> services_mounting(const std::vector<ServiceState>& states,
                                            const std::vector<std::string>& changed) {
    std::vector<ServiceState> out;
    for (const auto& s : states) {
        bool reached = false;
        for (const auto& m : s.mounts)
            for (const auto& c : changed)
                reached = reached || mount_reaches(m, c);
        if (reached)
            out.push_back(s);
    }
    return out;
}

bool reload_suffices(const ServiceState& service, const std::vector<std::string>& changed) {
    if (service.reload_signal.empty())
        return false;
    for (const auto& m : service.mounts)
        for (const auto& c : changed)
            if (mount_reaches(m, c) && !is_under(c, m))
                return false;
    return true;
}

bool compose_builds_images(const std::string& stack_dir) {
    static const std::regex k_build(R"(^\s+build\s*:)");
    for (const auto& name : compose_input_files(stack_dir)) {
        if (name == ".env")
            continue;
        std::ifstream in(std::filesystem::path(stack_dir) / name);
        if (!in)
            throw Error(ExitCode::usage, "cannot read " + stack_dir + "/" + name,
                        "check the stack directory's permissions");
        for (std::string line; std::getline(in, line);)
            if (std::regex_search(line, k_build))
                return true;
    }
    return false;
}

} // namespace labctl::deploy
