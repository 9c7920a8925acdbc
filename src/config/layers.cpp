// The precedence layers above the file: the environment (environment.cpp's table is the only place
// that says which variable sets which setting) and the command-line flags.

#include <fmt/format.h>

#include <map>

#include <labctl/core/error.hpp>

#include "loader_impl.hpp"

namespace labctl::config::detail {

namespace {

/// A setting the environment or a flag can set, with the check its value must pass.
struct Layered {
    std::string* target;
    Validator check;
};

} // namespace

void Loader::layer(const std::string& setting, const std::string& value, Origin origin,
                   SourceLocation where) {
    auto& s = m_spec;
    const std::map<std::string, Layered, std::less<>> settings{
        {"project", {&s.project, check_project}},
        {"libvirt.uri", {&s.libvirt.uri, check_libvirt_uri}},
        {"libvirt.pool", {&s.libvirt.pool, check_pool}},
        {"libvirt.domain_type",
         {&s.libvirt.domain_type, choice(k_domain_types, "kvm, qemu or auto")}},
        {"ssh.user", {&s.ssh.user, check_ssh_user}},
        {"ssh.private_key", {&s.ssh.private_key, {}}},
        {"ssh.known_hosts", {&s.ssh.known_hosts, {}}},
        {"deploy.project", {&s.deploy.project, check_compose_project}},
        {"deploy.host", {&s.deploy.host, check_host}},
        {"deploy.pins", {&s.deploy.pins, check_pin_set}},
    };
    const auto it = settings.find(setting);
    if (it == settings.end()) // a table entry without a setting here: a bug, not bad input
        throw Error(
            ExitCode::internal,
            fmt::format("{} names the setting '{}', which cannot be layered", where.file, setting));
    const Layered& l = it->second;
    if (l.check) {
        if (auto problem = l.check(setting, value)) {
            m_sink.error(std::move(where), std::move(*problem));
            m_bad.insert(setting);
            return;
        }
    }
    *l.target = value;
    record(setting, where, origin);
}

void Loader::apply_environment() {
    for (const auto& var : environment_variables()) {
        if (var.setting.empty())
            continue; // read by the CLI itself (LABCTL_FILE)
        const auto it = m_options.env.find(var.name);
        if (it == m_options.env.end() || it->second.empty())
            continue; // an empty variable counts as unset
        layer(var.setting, it->second, Origin::environment, SourceLocation{"$" + var.name, 0, 0});
    }
}

void Loader::apply_overrides() {
    const auto& o = m_options.overrides;
    if (o.project)
        layer("project", *o.project, Origin::flag, SourceLocation{"--project", 0, 0});
    if (o.libvirt_uri)
        layer("libvirt.uri", *o.libvirt_uri, Origin::flag, SourceLocation{"--libvirt-uri", 0, 0});
    if (o.host)
        layer("deploy.host", *o.host, Origin::flag, SourceLocation{"--host", 0, 0});
}

} // namespace labctl::config::detail
