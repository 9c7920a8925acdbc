#pragma once
// Terminal facts that decide how output looks: TTY, NO_COLOR, CI.

#include <optional>
#include <string>

namespace labctl::terminal {

bool is_tty(int fd);
/// True when NO_COLOR is set (to anything) or CI is set to a non-empty value other than "false".
bool no_color_env();
bool ci_env();
/// Environment variable value, nullopt when unset.
std::optional<std::string> env(const char* name);

} // namespace labctl::terminal
