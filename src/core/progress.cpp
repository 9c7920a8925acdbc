#include <fmt/format.h>

#include <algorithm>

#include <labctl/core/duration.hpp>
#include <labctl/core/progress.hpp>

namespace labctl {

using Clock = std::chrono::steady_clock;

std::string format_bytes(std::uint64_t bytes) {
    if (bytes < 1000)
        return fmt::format("{} B", bytes);
    const char* units[] = {"kB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes) / 1000.0;
    std::size_t u = 0;
    while (v >= 1000.0 && u + 1 < std::size(units)) {
        v /= 1000.0;
        ++u;
    }
    return fmt::format("{:.1f} {}", v, units[u]);
}

Progress::Progress(std::string what, std::chrono::seconds every)
    : m_what(std::move(what)), m_every(every), m_started(Clock::now()), m_last_line(m_started) {
    if (log::live_status())
        m_id = log::status_open(m_what);
}

Progress::~Progress() {
    if (m_id != 0)
        log::status_close(m_id);
}

std::chrono::milliseconds Progress::elapsed() const {
    return since(m_started);
}

std::uint64_t Progress::rate(std::uint64_t bytes) const {
    const double secs = std::max(0.001, static_cast<double>(elapsed().count()) / 1000.0);
    return static_cast<std::uint64_t>(static_cast<double>(bytes) / secs);
}

void Progress::write_line(const std::string& text, const std::vector<log::Field>& fields) {
    // Fields are for JSON consumers; a text line says the same in words.
    const auto took = elapsed();
    const std::string message =
        took < std::chrono::seconds(1)
            ? fmt::format("{}: {}", m_what, text)
            : fmt::format("{}: {} ({})", m_what, text, format_duration(took));
    if (log::settings().format == log::Format::json) {
        std::vector<log::Field> all{
            {"progress", m_what},
            {"elapsed_s", fmt::format("{:.1f}", static_cast<double>(took.count()) / 1000.0)}};
        all.insert(all.end(), fields.begin(), fields.end());
        log::write(log::Level::info, message, all);
    } else {
        log::write(log::Level::info, message, {});
    }
    m_last_line = Clock::now();
}

void Progress::update(const std::string& text, const std::vector<log::Field>& fields) {
    if (m_id != 0) {
        log::status_set(m_id, text);
        return;
    }
    if (Clock::now() - m_last_line >= m_every)
        write_line(text, fields);
}

void Progress::show(const std::string& text) {
    if (m_id != 0)
        log::status_set(m_id, text);
}

void Progress::event(const std::string& text, const std::vector<log::Field>& fields) {
    if (m_id != 0)
        log::status_set(m_id, text);
    write_line(text, fields);
}

} // namespace labctl
