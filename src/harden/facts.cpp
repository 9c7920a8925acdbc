#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sstream>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::harden {

std::string TargetFacts::reload_command() const {
    if (systemd && !systemd_unit.empty())
        return fmt::format("systemctl reload {}", systemd_unit);
    if (listener_pid > 0)
        return fmt::format("kill -HUP {}", listener_pid);
    return "pkill -HUP -x sshd";
}

namespace {

/// effective_settings_command in the probe scripts' terms: $sshd, $cfg and the connection from
/// $c_addr, $c_laddr and $c_lport, each part left out when empty as match_spec does.
std::string effective_settings_shell(const std::string& user) {
    return fmt::format("\"$sshd\" -T -f \"$cfg\" -C \"user=\"{}\",host=localhost,"
                       "addr=${{c_addr:-127.0.0.1}}${{c_laddr:+,laddr=$c_laddr}}"
                       "${{c_lport:+,lport=$c_lport}}\"",
                       shell_quote(user));
}

/// What can change between runs, read by both probes from their $sshd, $cfg and $d (the drop-in
/// directory, "" when there is none): the OpenSSH binaries' stamp (as `stamp_key`), the drop-in,
/// the record, the users' password states and sshd -T's digest for the first user.
std::string state_lines(const std::vector<std::string>& users, const std::string& stamp_key) {
    std::string s =
        "echo \"" + stamp_key +
        R"SH(=$(stat -L -c '%s.%Y' "$sshd" "$(command -v ssh 2>/dev/null || echo /usr/bin/ssh)" 2>/dev/null | tr '\n' ' ')"
if [ -n "$d" ]; then
    if [ -f "$d/01-labctl.conf" ]; then
        echo "dropin_exists=1"
        echo "dropin_b64=$(base64 -w0 < "$d/01-labctl.conf")"
    fi
    [ -f "$d/01-labctl.conf.labctl-applied" ] &&
        echo "applied_b64=$(head -c 100000 "$d/01-labctl.conf.labctl-applied" | base64 -w0)"
fi
)SH";
    for (const auto& u : users)
        s += fmt::format("echo \"passwd.{}=$(passwd -S {} 2>/dev/null | awk '{{print $2}}')\"\n", u,
                         shell_quote(u));
    // This connection as SSH_CONNECTION gives it ("client port server port"): sshd -T below
    // evaluates the Match blocks for it, as effective_settings_command does after applying.
    s += R"SH(set -- ${LABCTL_SSH_CONNECTION:-}
c_addr=${1:-}; c_laddr=${3:-}; c_lport=${4:-}
echo "client_address=$c_addr"
)SH";
    if (!users.empty())
        s += fmt::format(
            "mkdir -p /run/sshd 2>/dev/null; if t=$({} 2>/dev/null); then "
            "echo \"effective_sha256=$(printf '%s\\n' \"$t\" | sha256sum | cut -c1-64)\"; "
            "fi\n",
            effective_settings_shell(users.front()));
    return s;
}

/// SSH_CONNECTION's server address and port, without starting a process (sh word splitting).
constexpr const char* k_listener_key =
    "set -- ${LABCTL_SSH_CONNECTION:-}; key=\"${3:-none}_${4:-0}\"";

std::string sudo_sh(const remote::Session& session, const std::string& script) {
    return fmt::format("{}env LABCTL_SSH_CONNECTION=\"$SSH_CONNECTION\" sh -c {}",
                       session.is_root() ? "" : "sudo -n ", shell_quote(script));
}

/// Runs a probe script as root; its output. Throws Error(harden) when it fails.
std::string run_probe(remote::Session& session, const std::string& script) {
    const auto r = session.exec(sudo_sh(session, script), {.timeout = std::chrono::seconds(60)});
    if (!r.ok())
        throw Error(ExitCode::harden,
                    fmt::format("probing {} failed (exit {}): {}", session.endpoint().host,
                                r.exit_status, r.err),
                    "the SSH user needs passwordless sudo (cloud-init gives it to labctl's user)");
    return r.out;
}

} // namespace

std::string run_root_probe(remote::Session& session, const std::string& script) {
    return run_probe(session, script);
}

std::string facts_script(const std::vector<std::string>& users) {
    // Read-only. Every line is key=value. LABCTL_SSH_CONNECTION is passed through sudo, which
    // resets the environment.
    std::string s = R"SH(set -u
sshd=$(command -v sshd 2>/dev/null || true)
[ -n "$sshd" ] || { [ -x /usr/sbin/sshd ] && sshd=/usr/sbin/sshd; }
echo "sshd=$sshd"
addr=$(echo "${LABCTL_SSH_CONNECTION:-}" | awk '{print $3}')
port=$(echo "${LABCTL_SSH_CONNECTION:-}" | awk '{print $4}')
echo "listen_port=${port:-0}"
echo "listen_address=${addr:-}"
pid=""
# The sshd among the processes holding a listening socket (ss -p: users:(("name",pid=N,fd=F),...)).
# Under systemd socket activation (Ubuntu 24.04's ssh.socket, Accept=no) systemd holds the
# socket as well as the sshd it passed it to: the last pid= on the line may be systemd's, and
# HUP to pid 1 reloads systemd, not sshd. So: the sshd, else the first holder that is not systemd.
holder() { grep -o '("[^"]*",pid=[0-9]*' | awk -F'pid=' '/^\("sshd"/ { s = $2; exit } !/^\("systemd"/ && o == "" { o = $2 } END { print (s != "" ? s : o) }'; }
if [ -n "$port" ] && command -v ss >/dev/null 2>&1; then
    # The listener bound to the very address this connection came in on, before any other on
    # the port (several sshds on one port, on different addresses, would otherwise be guessed).
    case "$addr" in *:*) src="[$addr]" ;; *) src=$addr ;; esac
    [ -n "$addr" ] &&
        pid=$(ss -Htlnp "src $src and sport = :$port" 2>/dev/null | head -n1 | holder)
    [ -n "$pid" ] ||
        pid=$(ss -Htlnp "sport = :$port" 2>/dev/null | head -n1 | holder)
fi
if [ -z "$pid" ]; then
    # Walk up from this shell to the listening sshd.
    p=$$
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        args=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null || true)
        case "$args" in *"[listener]"*|*"sshd -D"*) pid=$p; break ;; esac
        p=$(awk '/^PPid:/ {print $2}' /proc/$p/status 2>/dev/null)
    done
fi
echo "listener_pid=${pid:-0}"
cfg=/etc/ssh/sshd_config
if [ -n "$pid" ]; then
    args=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null || true)
    f=$(echo " $args" | sed -n 's/.* -f \([^ ]*\).*/\1/p')
    [ -n "$f" ] && cfg=$f
fi
echo "main_config=$cfg"
d=""
inc=$(grep -iE '^[[:space:]]*Include[[:space:]]' "$cfg" 2>/dev/null | awk '{print $2}' | head -n1)
if [ -n "$inc" ]; then
    case "$inc" in /*) ;; *) inc="/etc/ssh/$inc" ;; esac
    d=$(dirname "$inc")
    echo "dropin_dir=$d"
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "systemd=1"
    for u in ssh sshd; do
        main=$(systemctl show -p MainPID --value "$u.service" 2>/dev/null || true)
        if [ -n "$main" ] && [ "$main" != 0 ] && [ "$main" = "${pid:-x}" ]; then echo "systemd_unit=$u"; break; fi
    done
fi
[ -r /etc/os-release ] && . /etc/os-release && echo "os_id=${ID:-unknown}"
if command -v ssh >/dev/null 2>&1; then
    echo "kex=$(ssh -Q kex 2>/dev/null | tr '\n' ' ')"
    echo "cipher=$(ssh -Q cipher 2>/dev/null | tr '\n' ' ')"
    echo "mac=$(ssh -Q mac 2>/dev/null | tr '\n' ' ')"
    echo "hostkey=$( (ssh -Q HostKeyAlgorithms 2>/dev/null || ssh -Q key) | tr '\n' ' ')"
fi
)SH";
    return s + state_lines(users, "stamp");
}

std::string match_spec(const std::string& user, const std::string& client_address,
                       const std::string& listen_address, int listen_port) {
    // labctl's own connection, not a made-up one: a Match Address block for the lab network
    // (or a Match LocalPort for the port labctl uses) changes what labctl's logins get, and
    // sshd -T -C applies only the Match blocks its spec satisfies; a LocalAddress/LocalPort
    // criterion without laddr/lport counts as not matching
    // (openssh/openssh-portable@V_9_6_P1:servconf.c match_cfg_line).
    std::string spec = fmt::format("user={},host=localhost,addr={}", user,
                                   client_address.empty() ? "127.0.0.1" : client_address);
    if (!listen_address.empty())
        spec += ",laddr=" + listen_address;
    if (listen_port > 0)
        spec += fmt::format(",lport={}", listen_port);
    return spec;
}

std::string effective_settings_command(const TargetFacts& facts, const std::string& user) {
    return fmt::format("{} -T -f {} -C {}", shell_quote(facts.sshd), shell_quote(facts.main_config),
                       shell_quote(match_spec(user, facts.client_address, facts.listen_address,
                                              facts.listen_port)));
}

TargetFacts parse_facts(const std::string& output) {
    TargetFacts f;
    std::istringstream in(output);
    bool saw_config = false;
    for (std::string line; std::getline(in, line);) {
        const auto eq = line.find('=');
        if (eq == std::string::npos)
            continue;
        const auto key = line.substr(0, eq);
        const auto value = line.substr(eq + 1);
        auto words = [&] {
            std::vector<std::string> w;
            std::istringstream ws(value);
            for (std::string x; ws >> x;)
                w.push_back(x);
            return w;
        };
        if (key == "sshd" && !value.empty())
            f.sshd = value;
        else if (key == "listener_pid")
            f.listener_pid = std::atoi(value.c_str());
        else if (key == "listen_port")
            f.listen_port = std::atoi(value.c_str());
        else if (key == "listen_address")
            f.listen_address = value;
        else if (key == "client_address")
            f.client_address = value;
        else if (key == "main_config") {
            f.main_config = value;
            saw_config = true;
        } else if (key == "dropin_dir")
            f.dropin_dir = value;
        else if (key == "dropin_exists")
            f.dropin_exists = value == "1";
        else if (key == "dropin_b64")
            f.current_dropin = base64_decode(value).value_or("");
        else if (key == "systemd")
            f.systemd = value == "1";
        else if (key == "systemd_unit")
            f.systemd_unit = value;
        else if (key == "os_id")
            f.os_id = value;
        else if (key == "kex" || key == "cipher" || key == "mac" || key == "hostkey")
            f.supported[key] = words();
        else if (key == "stamp")
            f.stamp = value;
        else if (key == "stamp_now")
            f.stamp_now = value;
        else if (key == "cached")
            f.cached = value == "1";
        else if (key == "applied_b64")
            f.applied_record = base64_decode(value).value_or("");
        else if (key == "effective_sha256")
            f.effective_sha256 = value;
        else if (key.rfind("passwd.", 0) == 0)
            f.passwd_status[key.substr(7)] = value;
    }
    if (!saw_config)
        throw Error(ExitCode::harden, "could not probe the target's sshd configuration",
                    "the probe script printed no main_config line; is /bin/sh usable there?");
    return f;
}

TargetFacts probe_facts(remote::Session& session, const std::vector<std::string>& users) {
    return parse_facts(run_probe(session, facts_script(users)));
}

std::string cache_text(const TargetFacts& f) {
    std::string out =
        fmt::format("sshd={}\nlisten_port={}\nlisten_address={}\nlistener_pid={}\n"
                    "main_config={}\n",
                    f.sshd, f.listen_port, f.listen_address, f.listener_pid, f.main_config);
    if (!f.dropin_dir.empty())
        out += "dropin_dir=" + f.dropin_dir + "\n";
    if (f.systemd)
        out += "systemd=1\n";
    if (!f.systemd_unit.empty())
        out += "systemd_unit=" + f.systemd_unit + "\n";
    out += "os_id=" + f.os_id + "\n";
    for (const auto& [kind, algorithms] : f.supported)
        out += fmt::format("{}={}\n", kind, fmt::join(algorithms, " "));
    out += "stamp=" + f.stamp + "\n";
    return out;
}

std::optional<TargetFacts> probe_cached_facts(remote::Session& session,
                                              const std::vector<std::string>& users) {
    // Read-only. Prints nothing when no facts are kept for this listener. The kept file is
    // root's (0600): only labctl, through sudo, wrote it.
    const std::string script =
        fmt::format(R"SH(set -u
{key}
f={dir}/$key
[ -f "$f" ] || exit 0
echo cached=1
cat "$f"
sshd=$(sed -n 's/^sshd=//p' "$f")
cfg=$(sed -n 's/^main_config=//p' "$f")
d=$(sed -n 's/^dropin_dir=//p' "$f")
)SH",
                    fmt::arg("key", k_listener_key), fmt::arg("dir", k_facts_cache_dir)) +
        state_lines(users, "stamp_now");
    const auto out = run_probe(session, script);
    if (out.find("cached=1") == std::string::npos)
        return std::nullopt;
    return parse_facts(out);
}

void keep_facts(remote::Session& session, const TargetFacts& facts) {
    const std::string script =
        fmt::format("set -e; {key}; umask 077; mkdir -p {dir}; chmod 0700 {dir}; "
                    "cat > {dir}/$key.tmp; mv -f {dir}/$key.tmp {dir}/$key",
                    fmt::arg("key", k_listener_key), fmt::arg("dir", k_facts_cache_dir));
    const auto r = session.exec(sudo_sh(session, script), {.timeout = std::chrono::seconds(60),
                                                           .stdin_data = cache_text(facts)});
    if (!r.ok())
        throw Error(ExitCode::harden,
                    fmt::format("cannot keep the facts of {} under {}: {}", session.endpoint().host,
                                k_facts_cache_dir, trim(r.err)));
}

} // namespace labctl::harden
