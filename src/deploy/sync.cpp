#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <regex>
#include <sstream>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/sync.hpp>

namespace labctl::deploy {

namespace {

std::uint64_t number_after(const std::string& line, const std::string& label) {
    if (line.rfind(label, 0) != 0)
        return 0;
    std::uint64_t n = 0;
    for (std::size_t i = label.size(); i < line.size(); ++i) {
        const char c = line[i];
        if (c >= '0' && c <= '9')
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        else if (c != ',' && c != ' ')
            break;
    }
    return n;
}

std::string posix_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

constexpr std::chrono::minutes k_sync_timeout{30};

/// rsync(1) EXIT VALUES, the ones a broken transfer gives.
std::string rsync_exit_meaning(int code) {
    switch (code) {
    case 5:
        return "error starting the client-server protocol";
    case 10:
        return "error in socket I/O: the transfer was cut off (the connection or the remote rsync "
               "died)";
    case 11:
        return "error in file I/O";
    case 12:
        return "error in the rsync protocol data stream: the transfer was cut off (the "
               "connection or the remote rsync died)";
    case 20:
        return "rsync received SIGUSR1 or SIGINT";
    case 23:
        return "partial transfer due to an error";
    case 30:
        return "timeout in data send/receive";
    case 35:
        return "timeout waiting for the daemon connection";
    case 255:
        return "ssh failed";
    default:
        return code > 128 ? fmt::format("rsync (here or on the target) was killed by signal {}: "
                                        "the transfer was cut off",
                                        code - 128)
                          : "see rsync(1) EXIT VALUES";
    }
}

/// The last lines of rsync's output for an error message, after a colon.
std::string last_lines(const std::string& text, std::size_t n = 30) {
    const auto tail = tail_lines(text, n);
    return tail.empty() ? std::string() : ":" + tail;
}

} // namespace

std::vector<std::string> rsync_argv(const SyncOptions& o) {
    // --checksum: compare content, not mtimes, so a fresh clone with new mtimes sends nothing
    // when nothing changed. --delete keeps the remote tree identical to the stack directory.
    std::vector<std::string> argv{"rsync",
                                  "-az",
                                  "--delete",
                                  "--checksum",
                                  "--itemize-changes",
                                  "--stats",
                                  "--no-human-readable"};
    for (const auto& e : o.excludes)
        argv.push_back("--exclude=" + e);
    argv.push_back("-e");
    // No ControlMaster for rsync: a master outlives rsync (ControlPersist) and, when rsync is
    // ended (Ctrl-C), keeps the connection and with it the remote rsync running.
    argv.push_back("ssh -F " + posix_quote(o.ssh_config) + " -o ControlPath=none");
    const std::string sudo = o.sudo ? "sudo -n " : "";
    argv.push_back(fmt::format("--rsync-path={}mkdir -p {} && {}rsync", sudo,
                               posix_quote(o.remote_dir), sudo));
    if (o.dry_run)
        argv.push_back("--dry-run");
    std::string local = o.local_dir;
    if (local.empty() || local.back() != '/')
        local += '/'; // the directory's contents, not the directory itself
    argv.push_back(local);
    argv.push_back(o.host_alias + ":" + o.remote_dir + "/");
    return argv;
}

SyncReport parse_rsync_output(const std::string& out) {
    SyncReport r;
    static const std::regex k_item(R"(^([<>ch.*][fdLDSp][^ ]{9}|\*deleting) +(.+)$)");
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_match(line, m, k_item)) {
            // ".d..t......" lines are directory time updates, not content changes.
            if (m[1].str().rfind(".d", 0) == 0 && m[2].str().back() == '/')
                continue;
            r.changes.push_back(line);
            continue;
        }
        if (auto n = number_after(line, "Number of regular files transferred:"))
            r.files_transferred = n;
        else if (auto b = number_after(line, "Total bytes sent:"))
            r.bytes_sent = b;
        else if (auto t = number_after(line, "Number of files:"))
            r.total_files = t;
    }
    return r;
}

SyncReport sync(const SyncOptions& options) {
    std::error_code ec;
    if (!std::filesystem::is_directory(options.local_dir, ec))
        throw Error(ExitCode::usage,
                    fmt::format("stack directory '{}' does not exist", options.local_dir),
                    "set deploy.stack_dir in lab.yaml");
    if (!find_program("rsync"))
        throw Error(ExitCode::preflight, "rsync is not installed",
                    "install rsync (scripts/install-deps)");
    const auto argv = rsync_argv(options);
    log::debug("sync: {}", fmt::join(argv, " "));
    const auto result = run_process(argv, {.timeout = k_sync_timeout});
    if (result.timed_out)
        throw Error(ExitCode::timeout,
                    fmt::format("rsync to {}:{} timed out after {} min (phase sync); rsync was "
                                "stopped{}",
                                options.host_alias, options.remote_dir, k_sync_timeout.count(),
                                last_lines(result.err)),
                    "is the network or the target's disk stalled?");
    if (!result.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("rsync to {}:{} failed (exit {}: {}){}", options.host_alias,
                                options.remote_dir, result.exit_code,
                                rsync_exit_meaning(result.exit_code),
                                last_lines(result.err.empty() ? result.out : result.err)),
                    result.exit_code == 255
                        ? "ssh failed: is the host reachable and its key pinned? ('labctl ssh')"
                    : result.exit_code == 10 || result.exit_code == 12 || result.exit_code == 30 ||
                            result.exit_code > 128
                        ? "the transfer was cut off: run deploy again (rsync resumes from what "
                          "arrived)"
                        : "");
    auto report = parse_rsync_output(result.out);
    report.elapsed = result.elapsed;
    report.dry_run = options.dry_run;
    return report;
}

} // namespace labctl::deploy
