#pragma once
// What a lab's stack gets from labctl: the pin set's variables (<stack_dir>/pins/<name>.env), the
// registry prefix, and the secrets labctl generates (today: Grafana's admin password). A secret
// lives in one 0600 file in the lab's state directory (.labctl/), is created once (atomically;
// two concurrent runs agree), reaches compose through ComposeEnv::secrets, and is never printed:
// users are told the file's path.

#include <optional>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/compose_env.hpp>

namespace labctl::deploy {

/// The compose variables and secrets for `spec`'s stack: deploy.pins' env file, IMAGE_REGISTRY,
/// and each secret the stack's compose file refers to (created when `create_secrets`, else only
/// read when present). Throws Error(usage) for an unreadable pin set file.
ComposeEnv stack_compose_env(const config::LabSpec& spec, bool create_secrets);

/// Grafana applies GF_SECURITY_ADMIN_PASSWORD only when it creates its database, so a grafana-data
/// volume from an earlier deploy keeps its old password (the original lab's `admin`). When the
/// options carry the generated password and the stack runs a `grafana` service, this sets it with
/// `grafana cli admin reset-admin-password --password-from-stdin` inside that container, the
/// password on stdin. Throws Error(deploy) when Grafana refuses.
void apply_grafana_password(remote::Session& session, const ComposeFacts& facts,
                            const ComposeOptions& options,
                            const std::vector<ServiceState>& services);

/// The pin set file of `spec` (<stack_dir>/pins/<deploy.pins>.env), empty without deploy.pins.
std::string pin_set_file(const config::LabSpec& spec);

/// The compose variable and the file of Grafana's admin password:
/// <state_dir>/grafana-admin-password.
inline constexpr const char* k_grafana_password_variable = "GRAFANA_ADMIN_PASSWORD";
std::string grafana_password_file(const std::string& state_dir);

/// The secret in `file`; created first (the directory too, 0700) with 32 random base64url
/// characters when it does not exist. Throws Error(preflight) when it cannot be written or read.
std::string ensure_secret(const std::string& file);

/// The secret in `file`, or nullopt when there is none. Throws Error(preflight) when the file
/// exists but cannot be read or is empty.
std::optional<std::string> read_secret(const std::string& file);

} // namespace labctl::deploy
