#pragma once
// Hardening beyond sshd (issue #18): the host firewall, fail2ban for sshd, auditd's rules and
// kernel settings, each a part planned purely from the wanted policy and the target's probed
// facts, so every plan is unit-tested without a network. Applying them (with an armed revert and
// the lab's own checks as judge) is host_apply.hpp.

#include <map>
#include <set>
#include <string>
#include <vector>

#include <labctl/harden/firewall.hpp>

namespace labctl::harden {

struct HostPolicy {
    bool firewall = true;
    bool fail2ban = true;
    bool auditd = true;
    bool sysctl = true;
    int ssh_port = 22; ///< the port sshd listens on, as the target sees it
    /// lab.yaml hardening.firewall.ssh_sources; empty: SSH from anywhere. labctl's own source is
    /// always added (and never banned by fail2ban).
    std::vector<std::string> ssh_sources;
    std::vector<FirewallPort> open_ports; ///< the stack's ports and hardening.firewall.allow
};

/// What the host probe (host_facts_script) found, before anything changes.
struct HostFacts {
    bool systemd = false;
    bool docker = false;            ///< dockerd is installed: its forwarding must stay on
    std::set<std::string> commands; ///< those present of nft, fail2ban-client, auditctl, ...
    std::set<std::string> packages; ///< Debian packages installed (dpkg), of those labctl needs
    std::map<std::string, std::string> file_sha256; ///< labctl's files present: path -> digest
    bool firewall_live = false;                     ///< table inet labctl is loaded
    std::string firewall_live_sha256;               ///< digest of `nft list table inet labctl` now
    std::string firewall_applied_sha256;            ///< that digest when labctl last applied it
    bool fail2ban_active = false;
    bool sshd_jail = false; ///< fail2ban-client status sshd answers
    bool auditd_active = false;
    int audit_rules = 0;                       ///< loaded rules with a labctl- key
    std::map<std::string, std::string> sysctl; ///< key -> value now (absent: kernel lacks it)
    std::string client_address; ///< labctl's address as the target sees it (SSH_CONNECTION)
    int listen_port = 0;        ///< the SSH port labctl came in on, as the target sees it
};

struct HostFile {
    std::string path;
    std::string content;
    int mode = 0644;
};

/// One part: files that say it, a command that makes them live and one that proves it.
struct HostPart {
    std::string name; ///< firewall, fail2ban, auditd, sysctl
    std::vector<HostFile> files;
    std::string save;     ///< root sh: records the live state in $STATE before anything changes
    std::string activate; ///< root sh: makes the (new) files live
    std::string restore;  ///< root sh: after the old files are back, makes them live again
    std::string check;    ///< root sh: exits 0 when the part is live as planned
    std::vector<std::string> packages; ///< the Debian packages it needs
    std::vector<std::string> missing;  ///< of those, the ones the target lacks
    bool changes = false;
    std::string summary;            ///< one line: what it enforces
    std::vector<std::string> notes; ///< e.g. kernel settings this kernel does not have
};

struct HostPlan {
    std::vector<HostPart> parts; ///< the enabled parts, in the order they are applied
    bool changes() const;
    /// Every missing package of every part, sorted, once each.
    std::vector<std::string> missing_packages() const;
};

/// Where labctl keeps its host files and the state a revert needs on the target.
inline constexpr const char* k_firewall_file = "/etc/labctl/firewall.nft";
inline constexpr const char* k_firewall_unit = "/etc/systemd/system/labctl-firewall.service";
inline constexpr const char* k_fail2ban_file = "/etc/fail2ban/jail.d/labctl.local";
inline constexpr const char* k_audit_file = "/etc/audit/rules.d/50-labctl.rules";
inline constexpr const char* k_sysctl_file = "/etc/sysctl.d/90-labctl.conf";
inline constexpr const char* k_host_state_dir = "/var/lib/labctl/harden/host";

/// The kernel settings labctl enforces (key, value), none of them forwarding: Docker and libvirt
/// need net.ipv4.ip_forward=1, and dev-sec's `ip_forward=0` is the classic breakage.
const std::vector<std::pair<std::string, std::string>>& hardened_sysctl();

/// The plan (pure). Throws Error(usage) for a bad firewall value, and for a policy that would
/// lock labctl out: SSH sources that leave out its own address are completed with it, so the
/// only refusal is a policy with no SSH port.
HostPlan plan_host(const HostPolicy& policy, const HostFacts& facts);

/// The read-only probe (POSIX sh, run with sudo; SSH_CONNECTION passed as in facts_script).
std::string host_facts_script();
/// Parses the probe's output (Error(harden) when it is not the probe's).
HostFacts parse_host_facts(const std::string& output);

} // namespace labctl::harden
