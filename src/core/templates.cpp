#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include <labctl/core/error.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/terminal.hpp>

namespace labctl::templates::detail {
struct Embedded {
    std::string_view name;
    std::string_view text;
};
extern const Embedded k_embedded[];
extern const std::size_t k_embedded_count;
} // namespace labctl::templates::detail

namespace labctl::templates {

std::string load(std::string_view name) {
    // A user override wins, so a site can change e.g. the domain XML without rebuilding.
    if (auto dir = terminal::env("LABCTL_TEMPLATE_DIR"); dir && !dir->empty()) {
        std::ifstream in(*dir + "/" + std::string(name), std::ios::binary);
        if (in) {
            std::ostringstream ss;
            ss << in.rdbuf();
            return ss.str();
        }
    }
    for (std::size_t i = 0; i < detail::k_embedded_count; ++i)
        if (detail::k_embedded[i].name == name)
            return std::string(detail::k_embedded[i].text);
    throw Error(ExitCode::internal, fmt::format("no embedded template '{}'", name));
}

std::vector<std::string> names() {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < detail::k_embedded_count; ++i)
        out.emplace_back(detail::k_embedded[i].name);
    return out;
}

std::string render(std::string_view text, const std::map<std::string, std::string>& vars) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (true) {
        const auto open = text.find("{{", pos);
        if (open == std::string_view::npos) {
            out.append(text.substr(pos));
            break;
        }
        const auto close = text.find("}}", open + 2);
        if (close == std::string_view::npos)
            throw Error(ExitCode::internal, "template: unterminated '{{'");
        out.append(text.substr(pos, open - pos));
        std::string_view key = text.substr(open + 2, close - open - 2);
        while (!key.empty() && key.front() == ' ')
            key.remove_prefix(1);
        while (!key.empty() && key.back() == ' ')
            key.remove_suffix(1);
        auto it = vars.find(std::string(key));
        if (it == vars.end())
            throw Error(ExitCode::internal, fmt::format("template: no value for '{}'", key));
        out.append(it->second);
        pos = close + 2;
    }
    return out;
}

} // namespace labctl::templates
