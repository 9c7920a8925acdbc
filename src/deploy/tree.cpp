#include <fmt/format.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/tree.hpp>

namespace labctl::deploy {

namespace fs = std::filesystem;

bool excluded(const std::string& name, bool is_directory,
              const std::vector<std::string>& patterns) {
    for (const auto& p : patterns) {
        if (p.empty())
            continue;
        const bool dirs_only = p.back() == '/';
        if (dirs_only && !is_directory)
            continue;
        const std::string glob = dirs_only ? p.substr(0, p.size() - 1) : p;
        if (::fnmatch(glob.c_str(), name.c_str(), 0) == 0)
            return true;
    }
    return false;
}

namespace {

struct Entry {
    std::string path; ///< relative, "." for the root
    std::string line; ///< what enters the digest
};

void walk(const fs::path& root, const fs::path& rel, const std::vector<std::string>& excludes,
          std::vector<Entry>& out) {
    const fs::path at = rel.empty() ? root : root / rel;
    std::error_code ec;
    fs::directory_iterator it(at, ec);
    if (ec)
        throw Error(ExitCode::usage, fmt::format("cannot read the stack directory {}: {}",
                                                 at.string(), ec.message()));
    for (const auto& entry : it) {
        const auto name = entry.path().filename().string();
        struct stat st {};
        if (::lstat(entry.path().c_str(), &st) != 0)
            throw Error(ExitCode::usage,
                        fmt::format("cannot read {}: {}", entry.path().string(),
                                    std::error_code(errno, std::generic_category()).message()));
        const bool is_dir = S_ISDIR(st.st_mode);
        if (excluded(name, is_dir, excludes))
            continue;
        const fs::path child = rel / name;
        const auto mode = fmt::format("{:o}", st.st_mode & 07777);
        if (is_dir) {
            out.push_back({child.string(), fmt::format("d {} {}", mode, child.string())});
            walk(root, child, excludes, out);
        } else if (S_ISLNK(st.st_mode)) {
            out.push_back({child.string(), fmt::format("l {} {} -> {}", mode, child.string(),
                                                       fs::read_symlink(entry.path()).string())});
        } else if (S_ISREG(st.st_mode)) {
            out.push_back({child.string(), fmt::format("f {} {} {}", mode, child.string(),
                                                       sha256_file_hex(entry.path().string()))});
        } else {
            // rsync -a skips devices and sockets without --devices/--specials: so do we.
            continue;
        }
    }
}

} // namespace

std::string local_tree_fingerprint(const std::string& dir,
                                   const std::vector<std::string>& excludes) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(ExitCode::usage, fmt::format("stack directory '{}' does not exist", dir),
                    "set deploy.stack_dir in lab.yaml");
    std::vector<Entry> entries;
    walk(dir, {}, excludes, entries);
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.path < b.path; });
    Sha256 digest;
    for (const auto& e : entries) {
        digest.update(e.line);
        digest.update("\n");
    }
    const auto raw = digest.finish();
    return to_hex(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

std::string remote_tree_fingerprint_command(const std::string& remote_dir,
                                            const std::vector<std::string>& excludes) {
    // The excluded names are pruned (not descended into, not listed), as rsync skips them.
    std::string prune;
    for (const auto& p : excludes) {
        if (p.empty())
            continue;
        const bool dirs_only = p.back() == '/';
        const auto glob = shell_quote(dirs_only ? p.substr(0, p.size() - 1) : p);
        prune += fmt::format("{}{}", prune.empty() ? "" : " -o ",
                             dirs_only ? fmt::format("\\( -type d -name {} \\)", glob)
                                       : fmt::format("-name {}", glob));
    }
    const std::string filter = prune.empty() ? "" : "\\( " + prune + " \\) -prune -o ";
    // Listing (type, mode, path, link target) and content digests, both in byte order.
    return fmt::format(
        "if cd {0} 2>/dev/null; then {{ find . -mindepth 1 {1}-printf '%y %m %p %l\\n' | "
        "LC_ALL=C sort; find . -mindepth 1 {1}-type f -print0 | LC_ALL=C sort -z | "
        "xargs -0r sha256sum; }} | sha256sum | cut -c1-64; else echo absent; fi",
        shell_quote(remote_dir), filter);
}

std::string env_fingerprint(const ComposeEnv& env) {
    std::string text;
    for (const auto& [k, v] : env.vars)
        text += fmt::format("var {}={}\n", k, v);
    for (const auto& [k, v] : env.secrets)
        text += fmt::format("secret {}={}\n", k, v);
    return sha256_hex(text);
}

std::vector<std::string> compose_input_files(const std::string& dir) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const auto name = entry.path().filename().string();
        const auto ext = entry.path().extension().string();
        // The files compose reads by itself: docker-compose.yml, compose.yaml, their overrides,
        // .env (not e.g. a prometheus.yml that a service mounts).
        if (entry.is_regular_file() &&
            (name == ".env" ||
             (name.find("compose") != std::string::npos && (ext == ".yml" || ext == ".yaml"))))
            files.push_back(name);
    }
    if (ec)
        throw Error(ExitCode::usage,
                    fmt::format("cannot read the stack directory {}: {}", dir, ec.message()));
    std::sort(files.begin(), files.end());
    return files;
}

std::string compose_inputs_fingerprint(const std::string& dir, const ComposeEnv& env) {
    const auto files = compose_input_files(dir);
    std::string text = "env " + env_fingerprint(env) + "\n";
    for (const auto& f : files)
        text += fmt::format("{} {}\n", f, sha256_file_hex((fs::path(dir) / f).string()));
    return sha256_hex(text);
}

} // namespace labctl::deploy
