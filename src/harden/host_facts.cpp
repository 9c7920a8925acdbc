// The host probe: one read-only root shell script whose key=value lines say which of labctl's
// host files are there (by digest), what is live (firewall table, fail2ban's jail, audit rules,
// kernel settings) and which packages are installed.

#include <fmt/format.h>

#include <sstream>

#include <labctl/core/error.hpp>
#include <labctl/harden/host_plan.hpp>

namespace labctl::harden {

std::string host_facts_script() {
    std::string s = R"SH(set -u
[ -d /run/systemd/system ] && echo "systemd=1"
for c in nft fail2ban-client auditctl augenrules sysctl dockerd lynis; do
    command -v "$c" >/dev/null 2>&1 && echo "command=$c"
done
[ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] && echo "docker=1"
dpkg-query -W -f '${Package} ${db:Status-Status}\n' nftables fail2ban python3-systemd auditd \
    procps lynis 2>/dev/null | while read -r p st; do
    [ "$st" = installed ] && echo "package=$p"
done
)SH";
    for (const char* f :
         {k_firewall_file, k_firewall_unit, k_fail2ban_file, k_audit_file, k_sysctl_file})
        s += fmt::format("[ -f {0} ] && echo \"file={0} $(sha256sum < {0} | cut -c1-64)\"\n", f);
    s += fmt::format(R"SH(if t=$(nft list table inet labctl 2>/dev/null); then
    echo "firewall_live=$(printf '%s\n' "$t" | sha256sum | cut -c1-64)"
fi
[ -s {0}/firewall.applied ] && echo "firewall_applied=$(head -c 64 {0}/firewall.applied)"
systemctl is-active -q fail2ban 2>/dev/null && echo "fail2ban_active=1"
fail2ban-client status sshd >/dev/null 2>&1 && echo "sshd_jail=1"
systemctl is-active -q auditd 2>/dev/null && echo "auditd_active=1"
command -v auditctl >/dev/null 2>&1 && echo "audit_rules=$(auditctl -l 2>/dev/null | grep -c -- '-k labctl-')"
)SH",
                     k_host_state_dir);
    std::string keys;
    for (const auto& kv : hardened_sysctl())
        keys += " " + kv.first;
    s += fmt::format("for k in{}; do v=$(sysctl -n \"$k\" 2>/dev/null) && echo \"sysctl.$k=$v\"; "
                     "done\n",
                     keys);
    s += "set -- ${LABCTL_SSH_CONNECTION:-}; echo \"client_address=${1:-}\"; echo "
         "\"listen_port=${4:-0}\"\n"
         "echo end=1\n";
    return s;
}

HostFacts parse_host_facts(const std::string& output) {
    HostFacts f;
    bool ended = false;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq == std::string::npos)
            continue;
        const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
        if (key == "systemd")
            f.systemd = true;
        else if (key == "docker")
            f.docker = true;
        else if (key == "command")
            f.commands.insert(value);
        else if (key == "package")
            f.packages.insert(value);
        else if (key == "file") {
            const auto sp = value.rfind(' ');
            if (sp != std::string::npos)
                f.file_sha256[value.substr(0, sp)] = value.substr(sp + 1);
        } else if (key == "firewall_live") {
            f.firewall_live = true;
            f.firewall_live_sha256 = value;
        } else if (key == "firewall_applied")
            f.firewall_applied_sha256 = value;
        else if (key == "fail2ban_active")
            f.fail2ban_active = true;
        else if (key == "sshd_jail")
            f.sshd_jail = true;
        else if (key == "auditd_active")
            f.auditd_active = true;
        else if (key == "audit_rules")
            f.audit_rules = std::atoi(value.c_str());
        else if (key.rfind("sysctl.", 0) == 0)
            f.sysctl[key.substr(7)] = value;
        else if (key == "client_address")
            f.client_address = value;
        else if (key == "listen_port")
            f.listen_port = std::atoi(value.c_str());
        else if (key == "end")
            ended = true;
    }
    if (!ended)
        throw Error(ExitCode::harden, "the host probe's output ended early",
                    "run it again; the SSH user needs passwordless sudo");
    return f;
}

} // namespace labctl::harden
