// Hardening on the official cloud images (Debian 12/13 genericcloud, Ubuntu 24.04), from the
// documented behaviour of what ships in them:
// - cloud-init writes sshd settings into sshd_config.d/50-cloud-init.conf whenever sshd_config
//   has "Include /etc/ssh/sshd_config.d/*.conf" (Debian's and Ubuntu's do), on every distro
//   (canonical/cloud-init@22.4.2:cloudinit/ssh_util.py update_ssh_config, the same in
//   canonical/cloud-init@25.1:cloudinit/ssh_util.py _ensure_cloud_init_ssh_config_file);
//   Ubuntu's images add 60-cloudimg-settings.conf.
// - sshd keeps the first value it reads for most keywords
//   (openssh/openssh-portable@V_9_6_P1:sshd_config.5 "the first obtained value will be used"),
//   reads an Include glob in lexical order (same file, Include), but appends every AllowUsers
//   line to the list (same file, AllowUsers), and a Match block overrides the global values for
//   the connections it matches.
// - Ubuntu 24.04 socket-activates sshd: ssh.socket listens, sshd-socket-generator turns Port,
//   ListenAddress and AddressFamily into a socket drop-in at daemon-reload, and the sshd started
//   by the socket keeps the inherited socket across a SIGHUP re-exec
//   (cpsource/openssh-9.6p1-code-reviewed@0072b99:debian/patches/sshd-socket-generator.patch and
//   debian/patches/systemd-socket-activation.patch, Ubuntu's openssh 1:9.6p1-3ubuntu13.14).
// The probe script's part (which process listens) is in harden_probe_script_test.cpp.

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>

#include <labctl/harden/effective.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/harden/plan.hpp>
#include <labctl/harden/policy.hpp>

using namespace labctl;

namespace {

harden::TargetFacts cloud_image_facts() {
    harden::TargetFacts f;
    f.dropin_dir = "/etc/ssh/sshd_config.d";
    f.systemd = true;
    f.systemd_unit = "ssh";
    f.listen_address = "10.0.2.15";
    f.listen_port = 22;
    f.client_address = "10.0.2.2";
    return f;
}

harden::HardenPlan cloud_image_plan() {
    harden::HardenInput in;
    in.user = "labctl";
    in.allow_users = {"labctl"};
    return harden::plan(in, cloud_image_facts());
}

/// What `sshd -T` prints for a host that enforces `plan` (one "keyword value" line each, list
/// keywords once per value).
std::string hardened_sshd_t(const harden::HardenPlan& plan) {
    std::string out = "port 22\nusepam yes\n";
    for (const auto& [key, value] : harden::required_settings())
        out += key + " " + value + "\n";
    const auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v)
            s += (s.empty() ? "" : ",") + x;
        return s;
    };
    out += "kexalgorithms " + join(plan.kex) + "\n";
    out += "ciphers " + join(plan.ciphers) + "\n";
    out += "macs " + join(plan.macs) + "\n";
    out += "hostkeyalgorithms " + join(plan.hostkeys) + "\n";
    for (const auto& u : plan.allow_users)
        out += "allowusers " + u + "\n";
    return out;
}

/// The keywords (lowercase) of the drop-in's setting lines.
std::vector<std::string> dropin_keywords(const std::string& dropin) {
    std::vector<std::string> out;
    std::istringstream in(dropin);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        std::string keyword;
        if (!(words >> keyword) || keyword[0] == '#')
            continue;
        std::transform(keyword.begin(), keyword.end(), keyword.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        out.push_back(keyword);
    }
    return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace

TEST_CASE("our drop-in sorts before 50-cloud-init.conf and 60-cloudimg-settings.conf, so its "
          "first values win over cloud-init's",
          "[harden][cloud-image]") {
    const auto facts = cloud_image_facts();
    const std::string path = facts.dropin_path();
    const std::string name = path.substr(path.rfind('/') + 1);
    CHECK(path == "/etc/ssh/sshd_config.d/01-labctl.conf");
    // Lexical order of the Include glob: every byte comparison agrees ("0" < "5" < "6").
    CHECK(name < std::string("50-cloud-init.conf"));
    CHECK(name < std::string("60-cloudimg-settings.conf"));
    // The record and the revert files beside it never end in .conf: the glob skips them.
    CHECK(facts.record_path().size() > 5);
    CHECK(facts.record_path().substr(facts.record_path().size() - 5) != ".conf");
    // cloud-init writes PasswordAuthentication (ssh_pwauth) there; our drop-in sets it first.
    const auto keywords = dropin_keywords(cloud_image_plan().dropin);
    CHECK(has(keywords, "passwordauthentication"));
    CHECK(has(keywords, "kbdinteractiveauthentication"));
}

TEST_CASE("a later file's AllowUsers line, which sshd appends to ours, fails the effective check",
          "[harden][cloud-image]") {
    const auto plan = cloud_image_plan();
    REQUIRE(plan.allow_users == std::vector<std::string>{"labctl"});
    const std::string good = hardened_sshd_t(plan);
    CHECK(harden::effective_mismatches(plan, "labctl", good).empty());

    // e.g. 90-admin.conf with "AllowUsers ubuntu": sshd -T then prints both lines.
    const auto widened = harden::effective_mismatches(plan, "labctl", good + "allowusers ubuntu\n");
    REQUIRE(widened.size() == 1);
    CHECK(widened[0].find("also allows ubuntu") != std::string::npos);

    // Without labctl's user the login itself would be refused: said as such, once.
    std::string without = good;
    without.replace(without.find("allowusers labctl"), 17, "allowusers ops");
    const auto locked = harden::effective_mismatches(plan, "labctl", without);
    REQUIRE(locked.size() == 1);
    CHECK(locked[0] == "allowusers 'ops' does not contain labctl");
}

TEST_CASE("a first-value keyword that a Match block for labctl's connection overrides fails the "
          "effective check",
          "[harden][cloud-image]") {
    // sshd -T -C applies the matching Match block's value over the global one: a
    // "Match Address 10.0.2.0/24 / PasswordAuthentication yes" in a later file shows up here
    // only when the spec is labctl's own connection (see the next test).
    const auto plan = cloud_image_plan();
    std::string out = hardened_sshd_t(plan);
    out.replace(out.find("passwordauthentication no"), 25, "passwordauthentication yes");
    const auto wrong = harden::effective_mismatches(plan, "labctl", out);
    REQUIRE(wrong.size() == 1);
    CHECK(wrong[0] == "passwordauthentication is 'yes', want 'no'");
}

TEST_CASE("sshd -T is asked for labctl's own connection, so Match Address, LocalAddress and "
          "LocalPort blocks that apply to it are checked",
          "[harden][cloud-image]") {
    const auto facts = cloud_image_facts();
    CHECK(harden::match_spec("labctl", facts.client_address, facts.listen_address,
                             facts.listen_port) ==
          "user=labctl,host=localhost,addr=10.0.2.2,laddr=10.0.2.15,lport=22");
    CHECK(harden::effective_settings_command(facts, "labctl") ==
          "'/usr/sbin/sshd' -T -f '/etc/ssh/sshd_config' -C "
          "'user=labctl,host=localhost,addr=10.0.2.2,laddr=10.0.2.15,lport=22'");
    // Without SSH_CONNECTION (nothing known): loopback, and no laddr/lport, which sshd -T then
    // treats as not matching any LocalAddress/LocalPort block.
    CHECK(harden::match_spec("labctl", "", "", 0) == "user=labctl,host=localhost,addr=127.0.0.1");
}

TEST_CASE("hardening never sets Port, ListenAddress or AddressFamily, so Ubuntu's ssh.socket "
          "needs no daemon-reload and a reload of ssh is enough",
          "[harden][cloud-image]") {
    // sshd-socket-generator reads only these from sshd_config (and its drop-ins) into
    // /run/systemd/generator/ssh.socket.d/addresses.conf; Ubuntu's sshd_config says a change
    // of them needs "systemctl daemon-reload" and "systemctl restart ssh.socket".
    const auto keywords = dropin_keywords(cloud_image_plan().dropin);
    REQUIRE(!keywords.empty());
    for (const char* socket_keyword : {"port", "listenaddress", "addressfamily"})
        CHECK_FALSE(has(keywords, socket_keyword));
    // Our settings are global: a Match line would make them conditional "until either another
    // Match line or the end of the file" (openssh/openssh-portable@V_9_6_P1:sshd_config.5).
    CHECK_FALSE(has(keywords, "match"));
    CHECK_FALSE(has(keywords, "include"));
}

TEST_CASE("the reload command is valid on both layouts: socket-activated ssh.service on Ubuntu, "
          "the ssh daemon on Debian",
          "[harden][cloud-image]") {
    harden::TargetFacts f = cloud_image_facts();
    // Ubuntu 24.04: ssh.socket started ssh.service for our connection, whose MainPID is the
    // listener; its ExecReload sends it SIGHUP, and sshd re-execs keeping the socket that
    // systemd passed (no close of the systemd fds on SIGHUP), so nothing else restarts.
    // Debian 12/13: ssh.service runs "sshd -D" (Alias=sshd.service), ExecReload sends SIGHUP.
    CHECK(f.reload_command() == "systemctl reload ssh");
    f.systemd_unit = "sshd"; // the alias resolves to the same unit
    CHECK(f.reload_command() == "systemctl reload sshd");
    // systemd without a unit whose MainPID is the listener (e.g. a test sshd): HUP the listener.
    f.systemd_unit.clear();
    f.listener_pid = 4242;
    CHECK(f.reload_command() == "kill -HUP 4242");
    // Never pid 1: a HUP to systemd is a daemon-reload and reloads no sshd (the probe never
    // reports it, harden_probe_script_test.cpp).
    CHECK(f.reload_command().find("kill -HUP 1") == std::string::npos);
}

TEST_CASE("the kept facts hold no client address: it is read from each connection",
          "[harden][cloud-image]") {
    auto f = cloud_image_facts();
    const auto text = harden::cache_text(f);
    CHECK(text.find("client_address") == std::string::npos);
    CHECK(text.find("listen_address=10.0.2.15\n") != std::string::npos);
    const auto parsed = harden::parse_facts(text + "client_address=10.0.2.2\n");
    CHECK(parsed.client_address == "10.0.2.2");
    CHECK(harden::effective_settings_command(parsed, "labctl") ==
          harden::effective_settings_command(f, "labctl"));
}
