#pragma once
// What labctl learns about a target before hardening it: where sshd and its configuration are,
// how to reload it, what algorithms its OpenSSH supports and the current state of the drop-in.
// Probing runs one read-only shell script over the first SSH session.

#include <map>
#include <optional>
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
    std::string client_address; ///< the address we came from (SSH_CONNECTION; never cached)
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
    /// Size and mtime of the sshd and ssh binaries when the facts were probed ("stamp") and now
    /// ("stamp_now"): a changed OpenSSH invalidates facts kept from an earlier run.
    std::string stamp, stamp_now;
    /// These facts are the ones kept by the last completed run (probe_cached_facts), with only
    /// the drop-in, the record, the password states and sshd -T read now.
    bool cached = false;

    std::string dropin_path() const { return dropin_dir + "/01-labctl.conf"; }
    /// Beside the drop-in, not ending in .conf (sshd never reads it).
    std::string record_path() const { return dropin_path() + ".labctl-applied"; }
    /// The command that makes sshd re-read its configuration.
    std::string reload_command() const;
};

/// The probe script (POSIX sh, read-only) for `users`' password states; the effective settings
/// are those sshd gives `login_user` (the first of `users`).
std::string facts_script(const std::vector<std::string>& users);
/// `sshd -T` for `user` on labctl's own connection (the facts' client address, listen address
/// and port) as labctl checks it after applying (pure). The probe scripts hash the same command
/// built from SSH_CONNECTION, so both see the same Match blocks.
std::string effective_settings_command(const TargetFacts& facts, const std::string& user);
/// The -C connection spec of that command: sshd -T evaluates Match blocks for it, and without
/// laddr/lport it treats a Match LocalAddress/LocalPort block as not matching (pure).
std::string match_spec(const std::string& user, const std::string& client_address,
                       const std::string& listen_address, int listen_port);
/// Parses the script's output; throws Error(harden) when a required fact is missing.
TargetFacts parse_facts(const std::string& output);
/// Runs a read-only probe `script` as root (sudo unless root) with the connection's
/// SSH_CONNECTION passed as LABCTL_SSH_CONNECTION; its output. Throws Error(harden).
std::string run_root_probe(remote::Session& session, const std::string& script);
/// Runs the script with sudo over `session`.
TargetFacts probe_facts(remote::Session& session, const std::vector<std::string>& users);

/// Where the facts of the sshd that listens on `address`:`port` (as the target sees the
/// connection) are kept after a completed run: /var/lib/labctl/harden/<address>_<port>.
inline constexpr const char* k_facts_cache_dir = "/var/lib/labctl/harden";
/// The cheap probe (one sudo shell, no discovery): the facts the last completed run kept plus the
/// drop-in, the record, the password states, sshd -T's digest and the binaries' stamp read now.
/// nullopt when nothing is kept for this listener (then probe_facts).
std::optional<TargetFacts> probe_cached_facts(remote::Session& session,
                                              const std::vector<std::string>& users);
/// The stable lines of `facts` (where sshd, its configuration and drop-ins are, how to reload,
/// the algorithms) for the cache, with the binaries' stamp (pure).
std::string cache_text(const TargetFacts& facts);
/// Keeps `facts` for probe_cached_facts (root, 0600). Throws Error(harden).
void keep_facts(remote::Session& session, const TargetFacts& facts);

} // namespace labctl::harden
