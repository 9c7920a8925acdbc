#pragma once
// Live progress of a long step (an upload, a preload stream, a guest wait, compose's health
// poll). On an interactive terminal each running step has a status line at the bottom of stderr,
// redrawn in place with its elapsed time (log lines scroll above it; parallel steps share the
// line). Elsewhere (CI, a pipe, --log-format json) a step writes one event line when it starts,
// at most one every `every` while it runs, and every event() — with the same fields, so JSON
// consumers get bytes, rates and phases as values.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <labctl/core/log.hpp>

namespace labctl {

class Progress {
public:
    /// `what` names the step in every line: "preload lab1", "VM 'lab1'".
    explicit Progress(std::string what, std::chrono::seconds every = std::chrono::seconds(10));
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    /// The step's state now ("84.2 MB sent, 3.1 MB/s"): the live line on a terminal, else an
    /// event line when `every` has passed since the last one.
    void update(const std::string& text, const std::vector<log::Field>& fields = {});
    /// The live line's text only (for a step whose events are written as log lines already).
    void show(const std::string& text);
    /// A line everywhere (a phase change, the result), also setting the live line's text.
    void event(const std::string& text, const std::vector<log::Field>& fields = {});
    std::chrono::milliseconds elapsed() const;
    /// `bytes` per second since the step started.
    std::uint64_t rate(std::uint64_t bytes) const;

private:
    void write_line(const std::string& text, const std::vector<log::Field>& fields);
    std::string m_what;
    std::chrono::seconds m_every;
    std::chrono::steady_clock::time_point m_started;
    std::chrono::steady_clock::time_point m_last_line;
    int m_id = 0;
};

/// "336.0 MB", "12.4 kB", "512 B" (decimal units, as rates are read).
std::string format_bytes(std::uint64_t bytes);

} // namespace labctl
