#include <sstream>
#include <vector>

#include <labctl/core/text.hpp>

namespace labctl {

std::string tail_lines(const std::string& text, std::size_t n) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (!l.empty())
            lines.push_back(l);
    std::string out;
    for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
        out += "\n  " + lines[i];
    return out;
}

} // namespace labctl
