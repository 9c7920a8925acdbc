#pragma once
// Checks of single values, shared by the file, the environment and the command line. Each returns
// the problem (message and hint) or nothing; the caller decides where it is and how severe.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::config::detail {

struct Problem {
    std::string message;
    std::string hint;
};
using Check = std::optional<Problem>;

inline constexpr std::size_t k_max_project = 40;

Check check_project(std::string_view label, const std::string& value);
Check check_vm_name(std::string_view label, const std::string& value);
Check check_user_name(std::string_view label, const std::string& value);
/// A user name labctl can log in as: check_user_name(), and not root (hardening turns root off).
Check check_ssh_user(std::string_view label, const std::string& value);
Check check_network_name(std::string_view label, const std::string& value);
Check check_domain(std::string_view label, const std::string& value);
Check check_libvirt_uri(std::string_view label, const std::string& value);
Check check_pool(std::string_view label, const std::string& value);
Check check_compose_project(std::string_view label, const std::string& value);
Check check_host(std::string_view label, const std::string& value);
/// ssh.jump: auto, none or [USER@]HOST[:PORT].
Check check_jump(std::string_view label, const std::string& value);
Check check_http_url(std::string_view label, const std::string& value);
Check check_image_url(std::string_view label, const std::string& value);
Check check_image_ref(std::string_view label, const std::string& value);
Check check_registry(std::string_view label, const std::string& value);
/// A pin set name: the stem of <stack_dir>/pins/<name>.env.
Check check_pin_set(std::string_view label, const std::string& value);
Check check_sha256(std::string_view label, const std::string& value);
Check check_sha512(std::string_view label, const std::string& value);
/// `length` hexadecimal characters (either case), else a Problem with `hint`.
Check check_hex_digest(std::string_view label, const std::string& value, std::size_t length,
                       const std::string& hint);
Check check_not_empty(std::string_view label, const std::string& value, std::string_view hint);
/// `value` must be one of `allowed`; the hint suggests the closest one or else `hint`.
Check check_choice(std::string_view label, const std::string& value,
                   const std::vector<std::string>& allowed, std::string_view hint);

} // namespace labctl::config::detail
