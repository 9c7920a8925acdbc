#pragma once
// Logging facade: every log line and progress event goes to stderr (stdout carries results only).
// Text lines are timestamped unless stderr is an interactive terminal; `json` writes NDJSON events
// for CI. Every message passes through redact() so secrets never reach the output.

#include <fmt/format.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace labctl::log {

enum class Level { trace = 0, debug = 1, info = 2, warn = 3, error = 4 };
enum class Format { text, json };

struct Settings {
    Level level = Level::info;
    Format format = Format::text;
    bool color = false; ///< ANSI colours (only on a TTY, never with NO_COLOR/CI)
    bool tty = false;   ///< stderr is an interactive terminal: short lines, no timestamps
};

using Field = std::pair<std::string_view, std::string>;

void configure(const Settings& settings);
const Settings& settings();
bool enabled(Level level);

/// Writes one event: `message` plus optional structured fields (shown as k=v in text mode).
void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

/// The same with fields gathered at run time.
void write(Level level, std::string_view message, const std::vector<Field>& fields);

/// Live status lines (core/progress.hpp): true when they are drawn (a terminal, text format,
/// info level). Each open status shows "<what>: <text> <elapsed>" on the bottom line of stderr,
/// redrawn every second and after every log line; closing the last one clears it.
bool live_status();
int status_open(const std::string& what);
void status_set(int id, const std::string& text);
void status_close(int id);

/// Where lines go; tests swap it to capture output. nullptr restores stderr.
using Sink = void (*)(std::string_view line);
void set_sink(Sink sink);

template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::trace))
        write(Level::trace, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::debug))
        write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::info))
        write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::warn))
        write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

std::string_view level_name(Level level);

} // namespace labctl::log
