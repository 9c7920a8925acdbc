#include <unistd.h>

#include <cstdlib>

#include <labctl/core/terminal.hpp>

namespace labctl::terminal {

bool is_tty(int fd) {
    return isatty(fd) == 1;
}

std::optional<std::string> env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr)
        return std::nullopt;
    return std::string(v);
}

bool no_color_env() {
    return env("NO_COLOR").has_value();
}

bool ci_env() {
    auto v = env("CI");
    return v && !v->empty() && *v != "false" && *v != "0";
}

} // namespace labctl::terminal
