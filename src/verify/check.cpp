#include <fmt/format.h>

#include <labctl/verify/check.hpp>

namespace labctl::verify {

const char* to_string(Status status) {
    switch (status) {
    case Status::pass:
        return "pass";
    case Status::fail:
        return "fail";
    case Status::skip:
        return "skip";
    }
    return "fail";
}

std::string Evidence::summary() const {
    std::string s = url;
    if (!url.empty())
        s += status > 0 ? fmt::format(" -> {}", status) : std::string(" -> no answer");
    if (!note.empty())
        s += (s.empty() ? "" : ": ") + note;
    return s;
}

std::string CheckResult::group() const {
    const auto dot = name.find('.');
    return dot == std::string::npos ? name : name.substr(0, dot);
}

} // namespace labctl::verify
