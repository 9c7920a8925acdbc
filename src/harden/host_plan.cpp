#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/harden/host_plan.hpp>

namespace labctl::harden {

namespace {

const std::string k_state = k_host_state_dir;

/// Whether the target's copy of `file` differs from the plan's (absent counts as different).
bool differs(const HostFacts& f, const HostFile& file) {
    const auto it = f.file_sha256.find(file.path);
    return it == f.file_sha256.end() || it->second != sha256_hex(file.content);
}

bool any_differs(const HostFacts& f, const HostPart& part) {
    return std::any_of(part.files.begin(), part.files.end(),
                       [&](const HostFile& file) { return differs(f, file); });
}

void need(HostPart& part, const HostFacts& f, std::vector<std::string> packages) {
    for (auto& p : packages) {
        if (!f.packages.count(p))
            part.missing.push_back(p);
        part.packages.push_back(std::move(p));
    }
}

HostPart firewall_part(const HostPolicy& policy, const HostFacts& f) {
    HostPart part;
    part.name = "firewall";
    need(part, f, {"nftables"});
    FirewallPolicy fw;
    fw.ssh_port = policy.ssh_port;
    fw.ssh_sources = policy.ssh_sources;
    // Lockout guard: labctl's own address always reaches SSH, whatever the list says.
    if (!fw.ssh_sources.empty() && !f.client_address.empty() &&
        std::find(fw.ssh_sources.begin(), fw.ssh_sources.end(), f.client_address) ==
            fw.ssh_sources.end())
        fw.ssh_sources.push_back(f.client_address);
    fw.open_ports = policy.open_ports;
    const std::string file = k_firewall_file;
    part.files.push_back({file, firewall_ruleset(fw), 0600});
    if (f.systemd)
        // Loaded early at boot, before the network: the host is never up unfiltered. Not
        // /etc/nftables.conf: Debian's starts with `flush ruleset`, which would wipe Docker's
        // rules whenever nftables.service restarts.
        part.files.push_back(
            {k_firewall_unit, fmt::format("# Written by labctl harden.\n"
                                          "[Unit]\n"
                                          "Description=labctl host firewall (table inet labctl)\n"
                                          "DefaultDependencies=no\n"
                                          "Wants=network-pre.target\n"
                                          "Before=network-pre.target shutdown.target\n"
                                          "Conflicts=shutdown.target\n\n"
                                          "[Service]\n"
                                          "Type=oneshot\n"
                                          "RemainAfterExit=yes\n"
                                          "ExecStart=/usr/sbin/nft -f {}\n\n"
                                          "[Install]\n"
                                          "WantedBy=sysinit.target\n",
                                          file)});
    const std::string unit = "labctl-firewall.service";
    part.save = fmt::format(
        "if nft list table inet labctl > {0}/firewall.live 2>/dev/null; then :; else rm -f "
        "{0}/firewall.live; fi{1}",
        k_state,
        f.systemd ? fmt::format("; if systemctl is-enabled -q {1} 2>/dev/null; then touch "
                                "{0}/firewall.enabled; else rm -f {0}/firewall.enabled; fi",
                                k_state, unit)
                  : "");
    // nft -c first: a ruleset this nft refuses never replaces the live one.
    // The listing's digest is kept: a later probe sees rules changed behind labctl's back.
    part.activate = fmt::format(
        "nft -c -f {0} && nft -f {0} && nft list table inet labctl | sha256sum | cut -c1-64 > "
        "{1}/firewall.applied{2}",
        file, k_state,
        f.systemd ? fmt::format(" && systemctl daemon-reload && systemctl enable -q {}", unit)
                  : "");
    part.restore = fmt::format(
        "if [ -s {0}/firewall.live ]; then {{ echo 'table inet labctl'; echo 'delete table inet "
        "labctl'; cat {0}/firewall.live; }} | nft -f -; else nft delete table inet labctl "
        "2>/dev/null || :; fi{1}",
        k_state,
        f.systemd ? fmt::format("; systemctl daemon-reload; if [ -f {0}/firewall.enabled ]; then "
                                "systemctl enable -q {1}; else systemctl disable -q {1} "
                                "2>/dev/null || :; fi",
                                k_state, unit)
                  : "");
    part.check = "nft list chain inet labctl input | grep -q 'policy drop'";
    part.changes = any_differs(f, part) || !f.firewall_live ||
                   f.firewall_live_sha256 != f.firewall_applied_sha256;
    std::string ports;
    for (const auto& p : fw.open_ports)
        ports += fmt::format("{}{}{}/{}", ports.empty() ? "" : ", ", p.first,
                             p.last != 0 && p.last != p.first ? fmt::format("-{}", p.last) : "",
                             p.protocol);
    part.summary = fmt::format(
        "inbound dropped but SSH {} from {}{}; table inet labctl{}", policy.ssh_port,
        fw.ssh_sources.empty() ? "anywhere" : fmt::format("{}", fmt::join(fw.ssh_sources, ", ")),
        ports.empty() ? "" : fmt::format(", {}", ports),
        f.systemd ? ", loaded at boot by labctl-firewall.service" : " (no systemd: until reboot)");
    return part;
}

HostPart fail2ban_part(const HostPolicy& policy, const HostFacts& f) {
    HostPart part;
    part.name = "fail2ban";
    // The jail reads the journal (Debian 12 has no auth.log) and bans through nftables.
    need(part, f, {"fail2ban", "python3-systemd", "nftables"});
    std::string ignore = "127.0.0.1/8 ::1";
    if (!f.client_address.empty())
        ignore += " " + f.client_address;
    part.files.push_back(
        {k_fail2ban_file,
         fmt::format("# Written by labctl harden: sshd's jail, read from the systemd journal.\n"
                     "# labctl's own address ({}) is never banned.\n"
                     "[sshd]\n"
                     "enabled = true\n"
                     "backend = systemd\n"
                     "port = {}\n"
                     "ignoreip = {}\n"
                     "maxretry = 5\n"
                     "findtime = 10m\n"
                     "bantime = 1h\n"
                     "banaction = nftables-multiport\n"
                     "banaction_allports = nftables-allports\n",
                     f.client_address.empty() ? "unknown" : f.client_address, policy.ssh_port,
                     ignore)});
    part.save = fmt::format(
        "if systemctl is-active -q fail2ban; then touch {0}/fail2ban.active; else rm -f "
        "{0}/fail2ban.active; fi; if systemctl is-enabled -q fail2ban 2>/dev/null; then touch "
        "{0}/fail2ban.enabled; else rm -f {0}/fail2ban.enabled; fi",
        k_state);
    // fail2ban takes a few seconds to start its jails: wait (bounded) for sshd's to answer.
    const std::string wait_jail = "i=0; until fail2ban-client status sshd >/dev/null 2>&1; do "
                                  "i=$((i+1)); [ $i -le 60 ] || exit 4; sleep 0.5; done";
    part.activate = fmt::format("systemctl enable -q fail2ban && if systemctl is-active -q "
                                "fail2ban; then fail2ban-client reload >/dev/null; else "
                                "systemctl start fail2ban; fi && {}",
                                wait_jail);
    part.restore = fmt::format(
        "if [ -f {0}/fail2ban.active ]; then fail2ban-client reload >/dev/null 2>&1 || systemctl "
        "restart fail2ban; else systemctl stop fail2ban; fi; if [ ! -f {0}/fail2ban.enabled ]; "
        "then systemctl disable -q fail2ban 2>/dev/null || :; fi",
        k_state);
    part.check = fmt::format(
        "fail2ban-client status sshd >/dev/null && fail2ban-client get sshd ignoreip | grep -qF {}",
        shell_quote(f.client_address.empty() ? "127.0.0.1/8" : f.client_address));
    part.changes = any_differs(f, part) || !f.fail2ban_active || !f.sshd_jail;
    part.summary = fmt::format("sshd jail (journal, port {}): 5 failures in 10 min ban for 1 h; "
                               "never {}",
                               policy.ssh_port, ignore);
    return part;
}

HostPart auditd_part(const HostFacts& f) {
    HostPart part;
    part.name = "auditd";
    need(part, f, {"auditd"});
    std::vector<std::string> rules{
        // Who changes accounts and groups.
        "-w /etc/passwd -p wa -k labctl-identity",
        "-w /etc/group -p wa -k labctl-identity",
        "-w /etc/shadow -p wa -k labctl-identity",
        "-w /etc/gshadow -p wa -k labctl-identity",
        // Who changes how SSH and sudo let people in.
        "-w /etc/ssh/sshd_config -p wa -k labctl-sshd",
        "-w /etc/ssh/sshd_config.d -p wa -k labctl-sshd",
        "-w /etc/sudoers -p wa -k labctl-sudoers",
        "-w /etc/sudoers.d -p wa -k labctl-sudoers",
    };
    if (f.docker) {
        // Docker's socket is root on the host to whoever can write it (CIS Docker 1.1.x).
        rules.push_back("-w /run/docker.sock -p rwa -k labctl-docker");
        rules.push_back("-w /usr/bin/dockerd -p x -k labctl-docker");
        rules.push_back("-w /etc/docker -p wa -k labctl-docker");
    }
    std::string text = "## Written by labctl harden: changes to identities, sshd, sudo and "
                       "Docker (keys labctl-*).\n";
    for (const auto& r : rules)
        text += r + "\n";
    part.files.push_back({k_audit_file, text, 0640});
    part.save = fmt::format("if systemctl is-active -q auditd; then touch {0}/auditd.active; else "
                            "rm -f {0}/auditd.active; fi",
                            k_state);
    // auditd.service refuses a manual stop: a revert reloads the old rules instead.
    part.activate = "systemctl enable -q auditd && { systemctl is-active -q auditd || systemctl "
                    "start auditd; } && augenrules --load >/dev/null";
    part.restore = "augenrules --load >/dev/null 2>&1 || auditctl -D >/dev/null";
    part.check = fmt::format("systemctl is-active -q auditd && test \"$(auditctl -l | grep -c -- "
                             "'-k labctl-')\" -ge {}",
                             rules.size());
    part.changes =
        any_differs(f, part) || !f.auditd_active || f.audit_rules < static_cast<int>(rules.size());
    part.summary = fmt::format("{} watches: identity files, sshd config, sudoers{}", rules.size(),
                               f.docker ? ", docker socket, daemon and /etc/docker" : "");
    return part;
}

HostPart sysctl_part(const HostFacts& f) {
    HostPart part;
    part.name = "sysctl";
    need(part, f, {"procps"});
    std::string text = "# Written by labctl harden. Forwarding is left alone: Docker and libvirt "
                       "need it.\n";
    std::string keys, checks;
    int differing = 0, count = 0;
    for (const auto& [key, value] : hardened_sysctl()) {
        const auto now = f.sysctl.find(key);
        if (now == f.sysctl.end()) {
            part.notes.push_back(fmt::format("{}: not in this kernel, left out", key));
            continue;
        }
        ++count;
        text += fmt::format("{} = {}\n", key, value);
        keys += " " + key;
        checks += fmt::format(" && [ \"$(sysctl -n {0})\" = {1} ]", key, shell_quote(value));
        if (now->second != value)
            ++differing;
    }
    part.files.push_back({k_sysctl_file, text});
    part.save = fmt::format("for k in{1}; do echo \"$k=$(sysctl -n $k)\"; done > "
                            "{0}/sysctl.before",
                            k_state, keys);
    part.activate = fmt::format("sysctl -q -p {}", k_sysctl_file);
    part.restore = fmt::format("if [ -f {0}/sysctl.before ]; then while IFS= read -r kv; do "
                               "sysctl -q -w \"$kv\" || :; done < {0}/sysctl.before; fi",
                               k_state);
    part.check = "true" + checks;
    part.changes = any_differs(f, part) || differing > 0;
    part.summary =
        fmt::format("{} kernel settings ({} differ now); ip_forward untouched", count, differing);
    return part;
}

} // namespace

bool HostPlan::changes() const {
    return std::any_of(parts.begin(), parts.end(), [](const HostPart& p) { return p.changes; });
}

std::vector<std::string> HostPlan::missing_packages() const {
    std::vector<std::string> out;
    for (const auto& p : parts)
        for (const auto& m : p.missing)
            if (std::find(out.begin(), out.end(), m) == out.end())
                out.push_back(m);
    std::sort(out.begin(), out.end());
    return out;
}

const std::vector<std::pair<std::string, std::string>>& hardened_sysctl() {
    // What Lynis (KRNL-6000) and the CIS benchmark ask for, less what would break the lab or not
    // revert: rp_filter (strict filtering breaks multi-homed Docker and libvirt hosts) and
    // kernel.unprivileged_bpf_disabled=1 (one-way until reboot; Debian's 2 already keeps
    // unprivileged BPF off).
    static const std::vector<std::pair<std::string, std::string>> k{
        {"dev.tty.ldisc_autoload", "0"},
        {"fs.protected_fifos", "2"},
        {"fs.protected_hardlinks", "1"},
        {"fs.protected_regular", "2"},
        {"fs.protected_symlinks", "1"},
        {"fs.suid_dumpable", "0"},
        {"kernel.dmesg_restrict", "1"},
        {"kernel.kptr_restrict", "2"},
        {"kernel.perf_event_paranoid", "3"},
        {"kernel.randomize_va_space", "2"},
        {"kernel.sysrq", "0"},
        {"kernel.yama.ptrace_scope", "1"},
        {"net.core.bpf_jit_harden", "2"},
        {"net.ipv4.conf.all.accept_redirects", "0"},
        {"net.ipv4.conf.all.accept_source_route", "0"},
        {"net.ipv4.conf.all.log_martians", "1"},
        {"net.ipv4.conf.all.secure_redirects", "0"},
        {"net.ipv4.conf.all.send_redirects", "0"},
        {"net.ipv4.conf.default.accept_redirects", "0"},
        {"net.ipv4.conf.default.accept_source_route", "0"},
        {"net.ipv4.conf.default.log_martians", "1"},
        {"net.ipv4.conf.default.secure_redirects", "0"},
        {"net.ipv4.conf.default.send_redirects", "0"},
        {"net.ipv4.icmp_echo_ignore_broadcasts", "1"},
        {"net.ipv4.icmp_ignore_bogus_error_responses", "1"},
        {"net.ipv4.tcp_syncookies", "1"},
        {"net.ipv6.conf.all.accept_redirects", "0"},
        {"net.ipv6.conf.all.accept_source_route", "0"},
        {"net.ipv6.conf.default.accept_redirects", "0"},
        {"net.ipv6.conf.default.accept_source_route", "0"},
    };
    return k;
}

HostPlan plan_host(const HostPolicy& policy, const HostFacts& facts) {
    if (policy.ssh_port < 1 || policy.ssh_port > 65535)
        throw usage_error(fmt::format("firewall: SSH port {} is out of range", policy.ssh_port),
                          "ssh.port is 1-65535");
    HostPlan plan;
    // The least disruptive first; the firewall, the one that can cut the lab off, last.
    if (policy.sysctl)
        plan.parts.push_back(sysctl_part(facts));
    if (policy.auditd) {
        if (facts.systemd)
            plan.parts.push_back(auditd_part(facts));
        else
            throw Error(ExitCode::harden, "hardening.auditd needs systemd on the target",
                        "set hardening.auditd: false for this host");
    }
    if (policy.fail2ban) {
        if (facts.systemd)
            plan.parts.push_back(fail2ban_part(policy, facts));
        else
            throw Error(ExitCode::harden,
                        "hardening.fail2ban needs systemd on the target: its sshd jail reads "
                        "the journal",
                        "set hardening.fail2ban: false for this host");
    }
    if (policy.firewall)
        plan.parts.push_back(firewall_part(policy, facts));
    return plan;
}

} // namespace labctl::harden
