#include "validate.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

#include <labctl/config/suggest.hpp>

namespace labctl::config::detail {

namespace {

bool is_lower(char c) {
    return c >= 'a' && c <= 'z';
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

/// A DNS label in lower case that starts with a letter: lab, lab1, web-2.
bool is_label(const std::string& v, std::size_t max) {
    if (v.empty() || v.size() > max || !is_lower(v.front()) || v.back() == '-')
        return false;
    return std::all_of(v.begin(), v.end(),
                       [](char c) { return is_lower(c) || is_digit(c) || c == '-'; });
}

/// A network, pool or pin set name: a letter or digit, then letters, digits, '-', '_' and '.', at
/// most `max` characters: default, lab_net.1.
bool is_object_name(const std::string& v, std::size_t max) {
    return !v.empty() && v.size() <= max && is_alnum(v.front()) &&
           std::all_of(v.begin(), v.end(),
                       [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

/// What a name would look like written correctly ("My_Lab" -> "my-lab"), or "" if that does not
/// help either.
std::string label_suggestion(const std::string& v, std::size_t max) {
    std::string out;
    for (char c : v) {
        if (is_alnum(c))
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        else if ((c == '_' || c == ' ' || c == '.' || c == '-') && !out.empty() &&
                 out.back() != '-')
            out += '-';
    }
    while (!out.empty() && out.back() == '-')
        out.pop_back();
    return is_label(out, max) && out != v ? out : std::string();
}

std::string label_hint(const std::string& value, std::size_t max) {
    std::string hint = fmt::format(
        "use lowercase letters, digits and '-', starting with a letter (at most {} characters)",
        max);
    if (const auto s = label_suggestion(value, max); !s.empty())
        hint += fmt::format(", e.g. '{}'", s);
    return hint;
}

bool has_space(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

} // namespace

Check check_project(std::string_view label, const std::string& value) {
    if (value.size() > k_max_project)
        return Problem{fmt::format("{} '{}' is too long ({} characters, at most {})", label, value,
                                   value.size(), k_max_project),
                       label_hint(value.substr(0, k_max_project), k_max_project)};
    if (!is_label(value, k_max_project))
        return Problem{fmt::format("{} '{}' is not a valid name", label, value),
                       label_hint(value, k_max_project)};
    return std::nullopt;
}

Check check_vm_name(std::string_view label, const std::string& value) {
    if (!is_label(value, 63))
        return Problem{fmt::format("{} '{}' is not a valid hostname", label, value),
                       label_hint(value, 63)};
    return std::nullopt;
}

Check check_user_name(std::string_view label, const std::string& value) {
    const bool ok =
        !value.empty() && value.size() <= 32 && (is_lower(value.front()) || value.front() == '_') &&
        std::all_of(value.begin(), value.end(),
                    [](char c) { return is_lower(c) || is_digit(c) || c == '_' || c == '-'; });
    if (!ok)
        return Problem{fmt::format("{} '{}' is not a valid user name", label, value),
                       "use lowercase letters, digits, '_' and '-', starting with a letter or '_' "
                       "(at most 32 characters)"};
    return std::nullopt;
}

Check check_ssh_user(std::string_view label, const std::string& value) {
    if (auto p = check_user_name(label, value))
        return p;
    if (value == "root")
        return Problem{fmt::format("{} must not be 'root'", label),
                       "hardening turns root login off, so labctl would lock itself out; use "
                       "an unprivileged user with sudo, such as the default 'labctl'"};
    return std::nullopt;
}

Check check_network_name(std::string_view label, const std::string& value) {
    if (!is_object_name(value, 50))
        return Problem{fmt::format("{} '{}' is not a valid network name", label, value),
                       "use letters, digits, '-', '_' and '.', starting with a letter or digit (at "
                       "most 50 characters)"};
    return std::nullopt;
}

Check check_domain(std::string_view label, const std::string& value) {
    bool ok = !value.empty() && value.size() <= 253;
    std::size_t start = 0;
    while (ok) {
        const auto dot = value.find('.', start);
        const std::string part = value.substr(start, dot == std::string::npos ? dot : dot - start);
        ok = !part.empty() && part.size() <= 63 && part.front() != '-' && part.back() != '-' &&
             std::all_of(part.begin(), part.end(),
                         [](char c) { return is_lower(c) || is_digit(c) || c == '-'; });
        if (dot == std::string::npos)
            break;
        start = dot + 1;
    }
    if (!ok)
        return Problem{fmt::format("{} '{}' is not a valid DNS domain", label, value),
                       "use dot-separated labels of lowercase letters, digits and '-', e.g. "
                       "lab.local"};
    return std::nullopt;
}

Check check_libvirt_uri(std::string_view label, const std::string& value) {
    const auto sep = value.find("://");
    bool ok = sep != std::string::npos && sep > 0 && is_lower(value.front()) && !has_space(value);
    if (ok)
        ok = std::all_of(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(sep),
                         [](char c) { return is_lower(c) || is_digit(c) || c == '+'; });
    if (!ok)
        return Problem{fmt::format("{} '{}' is not a libvirt URI", label, value),
                       "e.g. qemu:///system, qemu:///session, qemu+ssh://user@host/system or "
                       "test:///default"};
    return std::nullopt;
}

Check check_pool(std::string_view label, const std::string& value) {
    if (!is_object_name(value, 64))
        return Problem{fmt::format("{} '{}' is not a valid storage pool name", label, value),
                       "use letters, digits, '-', '_' and '.', e.g. default"};
    return std::nullopt;
}

Check check_compose_project(std::string_view label, const std::string& value) {
    const bool ok = !value.empty() && (is_lower(value.front()) || is_digit(value.front())) &&
                    std::all_of(value.begin(), value.end(), [](char c) {
                        return is_lower(c) || is_digit(c) || c == '-' || c == '_';
                    });
    if (!ok)
        return Problem{fmt::format("{} '{}' is not a valid compose project name", label, value),
                       "use lowercase letters, digits, '_' and '-', starting with a letter or "
                       "digit"};
    return std::nullopt;
}

Check check_host(std::string_view label, const std::string& value) {
    // [USER@]HOST[:PORT], as --host, LAB_HOST and deploy.host are documented. HOST is a name, an
    // IPv4 address, a bracketed IPv6 address (with an optional port) or a bare one (without).
    // Nothing may start with '-': it ends up on ssh and rsync command lines.
    const Problem bad{fmt::format("{} '{}' is not [USER@]HOST[:PORT]", label, value),
                      "e.g. 192.0.2.10, admin@lab.example.org or admin@192.0.2.10:2222 (IPv6: "
                      "[2001:db8::1]:2222); without USER and PORT, ssh.user and ssh.port apply"};
    std::string rest = value;
    if (const auto at = rest.rfind('@'); at != std::string::npos) {
        if (check_user_name(label, rest.substr(0, at)))
            return bad;
        rest = rest.substr(at + 1);
    }
    std::string host = rest, port;
    bool v6 = false;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos)
            return bad;
        host = rest.substr(1, close - 1);
        const auto after = rest.substr(close + 1);
        if (!after.empty() && (after.front() != ':' || after.size() == 1))
            return bad;
        port = after.empty() ? "" : after.substr(1);
        v6 = true;
    } else if (std::count(rest.begin(), rest.end(), ':') > 1) {
        v6 = true; // a bare IPv6 address: no port
    } else if (const auto colon = rest.find(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (port.empty())
            return bad;
    }
    const bool host_ok = !host.empty() && host.size() <= 253 &&
                         (is_alnum(host.front()) || (v6 && host.front() == ':')) &&
                         std::all_of(host.begin(), host.end(), [v6](char c) {
                             return is_alnum(c) || c == '-' || c == '.' || (v6 && c == ':');
                         });
    if (!host_ok)
        return bad;
    if (!port.empty()) {
        const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), is_digit);
        if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535)
            return bad;
    }
    return std::nullopt;
}

Check check_jump(std::string_view label, const std::string& value) {
    if (value == "auto" || value == "none")
        return std::nullopt;
    if (check_host(label, value))
        return Problem{fmt::format("{} '{}' is not auto, none or [USER@]HOST[:PORT]", label, value),
                       "auto reaches the VMs through the host of a qemu+ssh:// libvirt.uri; none "
                       "reaches them directly; or name the jump host, e.g. admin@kvm1.example.org"};
    return std::nullopt;
}

Check check_http_url(std::string_view label, const std::string& value) {
    const std::size_t scheme = value.starts_with("http://")    ? 7
                               : value.starts_with("https://") ? 8
                                                               : 0;
    if (scheme == 0 || value.size() == scheme || value[scheme] == '/' || has_space(value))
        return Problem{fmt::format("{} '{}' is not an http(s) URL", label, value),
                       "e.g. http://127.0.0.1:3000"};
    return std::nullopt;
}

Check check_image_url(std::string_view label, const std::string& value) {
    const bool ok = value.starts_with("http://") || value.starts_with("https://")
                        ? !check_http_url(label, value).has_value()
                        : value.starts_with("file:///") && !has_space(value);
    if (!ok)
        return Problem{fmt::format("{} '{}' is not an http, https or file URL", label, value),
                       "e.g. https://cloud.debian.org/images/cloud/bookworm/latest/"
                       "debian-12-genericcloud-amd64.qcow2"};
    return std::nullopt;
}

Check check_image_ref(std::string_view label, const std::string& value) {
    const bool ok = !value.empty() && is_alnum(value.front()) && !has_space(value);
    if (!ok)
        return Problem{fmt::format("{} '{}' is not an image reference", label, value),
                       "e.g. prom/prometheus:v2.53.0 or grafana/grafana:11.1.0"};
    return std::nullopt;
}

Check check_registry(std::string_view label, const std::string& value) {
    if (value.find("://") != std::string::npos || has_space(value) ||
        (!value.empty() && !is_alnum(value.front())))
        return Problem{fmt::format("{} '{}' is not a registry prefix", label, value),
                       "write host[:port]/ without a scheme, e.g. registry.example:5000/"};
    return std::nullopt;
}

Check check_pin_set(std::string_view label, const std::string& value) {
    if (!is_object_name(value, 64))
        return Problem{fmt::format("{} '{}' is not a pin set name", label, value),
                       "name a file of <stack_dir>/pins without '.env', e.g. original or current"};
    return std::nullopt;
}

Check check_sha256(std::string_view label, const std::string& value) {
    return check_hex_digest(label, value, 64,
                            "copy it from the image's SHA256SUMS, or run: sha256sum <image>");
}

Check check_sha512(std::string_view label, const std::string& value) {
    return check_hex_digest(label, value, 128,
                            "copy it from the image's SHA512SUMS, or run: sha512sum <image>");
}

Check check_hex_digest(std::string_view label, const std::string& value, std::size_t length,
                       const std::string& hint) {
    if (value.size() != length)
        return Problem{fmt::format("{} must be {} hexadecimal characters, got {}", label, length,
                                   value.size()),
                       hint};
    for (char c : value)
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            return Problem{
                fmt::format("{} contains '{}', which is not a hexadecimal digit", label, c), hint};
    return std::nullopt;
}

Check check_not_empty(std::string_view label, const std::string& value, std::string_view hint) {
    if (value.empty())
        return Problem{fmt::format("{} must not be empty", label), std::string(hint)};
    return std::nullopt;
}

Check check_choice(std::string_view label, const std::string& value,
                   const std::vector<std::string>& allowed, std::string_view hint) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end())
        return std::nullopt;
    Problem p{fmt::format("{} '{}' is not one of: {}", label, value, fmt::join(allowed, ", ")),
              std::string(hint)};
    if (const auto s = did_you_mean(value, allowed))
        p.hint = fmt::format("did you mean '{}'?", *s);
    return p;
}

} // namespace labctl::config::detail
