#pragma once
// Process runner: runs a program (never through a shell) with captured or streamed output,
// optional stdin, environment additions and a timeout after which the child is killed; Ctrl-C is
// forwarded to the child.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace labctl {

struct ProcessOptions {
    std::optional<std::string> stdin_data;
    std::map<std::string, std::string> env; ///< added to (or overriding) the inherited environment
    std::optional<std::string> cwd;
    std::chrono::milliseconds timeout{0}; ///< 0 = none
    /// When set, called per complete output line as it arrives (still captured in the result).
    std::function<void(const std::string& line)> on_stdout_line;
    std::function<void(const std::string& line)> on_stderr_line;
    /// When >= 0, the child's stdout is this descriptor (e.g. a pipe another thread streams from)
    /// instead of being captured; the caller keeps ownership.
    int stdout_fd = -1;
    /// On a timeout, Ctrl-C or an exception, the child's process group gets SIGTERM, then
    /// SIGKILL after this grace period.
    std::chrono::milliseconds kill_grace{5000};
};

struct ProcessResult {
    int exit_code = -1; ///< exit status, or 128+signal when killed by a signal
    std::string out;
    std::string err;
    bool timed_out = false;
    std::chrono::milliseconds elapsed{0};

    bool ok() const { return exit_code == 0 && !timed_out; }
};

/// Runs argv[0] (looked up in PATH) with argv. Throws Error(internal) only when the program cannot
/// be started at all; a non-zero exit is a normal result. Every way out ends and reaps the child:
/// at the timeout (timed_out), on SIGINT/SIGTERM arriving while it runs (throws Interrupted) and
/// when a line callback throws (the exception propagates), the process group gets SIGTERM, then
/// SIGKILL after kill_grace. Output is read until the child has exited and at most 2 s longer:
/// a grandchild outside the group that holds the pipes does not keep run_process waiting.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

/// Full path of `program` in PATH, or nullopt.
std::optional<std::string> find_program(const std::string& program);

} // namespace labctl
