#pragma once
// What labctl learns about a target before hardening it: where sshd and its configuration are,
// how to reload it, what algorithms its OpenSSH supports and the current state of the drop-in.
// Probing runs one read-only shell script over the first SSH session.

#include <map>
#include <string>
#include <vector>

namespace labctl::remote {
class Session;
}

namespace labctl::harden {

struct TargetFacts {
    std::string sshd = "/usr/sbin/sshd";
    std::string main_config = "/etc/ssh/sshd_config";
    std::string dropin_dir;     ///< from the main config's Include line; empty = none
    int listener_pid = 0;       ///< the sshd that serves our connection (HUP reloads it)
    int listen_port = 0;        ///< the port we came in on (from SSH_CONNECTION)
    std::string listen_address; ///< the address we came in on (from SSH_CONNECTION)
    bool systemd = false;
    std::string systemd_unit; ///< "ssh" or "sshd" when systemd manages sshd
    std::string os_id;        ///< /etc/os-release ID
    std::map<std::string, std::vector<std::string>> supported; ///< kex, cipher, mac, hostkey
    std::string current_dropin; ///< content of <dropin_dir>/01-labctl.conf ("" = absent)
    bool dropin_exists = false;
    std::map<std::string, std::string> passwd_status; ///< user -> passwd -S state (P, L, NP)
    /// The record of the last hardening labctl completed here ("" = none; see harden/record.hpp).
    std::string applied_record;
    /// SHA-256 of `sshd -T` for the login user (effective_settings_command), "" when unknown.
    std::string effective_sha256;

    std::string dropin_path() const { return dropin_dir + "/01-labctl.conf"; }
    /// Beside the drop-in, not ending in .conf (sshd never reads it).
    std::string record_path() const { return dropin_path() + ".labctl-applied"; }
    /// The command that makes sshd re-read its configuration.
    std::string reload_command() const;
};

/// The probe script (POSIX sh, read-only) for `users`' password states; the effective settings
/// are those sshd gives `login_user` (the first of `users`).
std::string facts_script(const std::vector<std::string>& users);
/// `sshd -T` for `user` as labctl checks it (pure): the same text is hashed by the probe and
/// checked after applying.
std::string effective_settings_command(const std::string& sshd, const std::string& main_config,
                                       const std::string& user);
/// Parses the script's output; throws Error(harden) when a required fact is missing.
TargetFacts parse_facts(const std::string& output);
/// Runs the script with sudo over `session`.
TargetFacts probe_facts(remote::Session& session, const std::vector<std::string>& users);

} // namespace labctl::harden
