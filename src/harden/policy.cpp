#include <fmt/format.h>

#include <labctl/core/error.hpp>
#include <labctl/harden/policy.hpp>

namespace labctl::harden {

AlgorithmPolicy algorithm_policy(const std::string& profile) {
    // Modern: post-quantum hybrid and curve25519 key exchange, AEAD and CTR ciphers, SHA-2 MACs,
    // ed25519 and RSA-SHA2 host keys. The non-ETM hmac-sha2 MACs stay because labctl's own client
    // (libssh2 1.10) supports no ETM MAC and no AEAD cipher: without them hardening would lock
    // labctl out (measured, DESIGN §7). ssh-audit rates them "warn", not "fail".
    AlgorithmPolicy p;
    p.kex = {"sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
             "curve25519-sha256@libssh.org"};
    p.ciphers = {"chacha20-poly1305@openssh.com",
                 "aes256-gcm@openssh.com",
                 "aes128-gcm@openssh.com",
                 "aes256-ctr",
                 "aes192-ctr",
                 "aes128-ctr"};
    p.macs = {"hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
              "umac-128-etm@openssh.com", "hmac-sha2-512", "hmac-sha2-256"};
    p.hostkeys = {
        "ssh-ed25519",  "ssh-ed25519-cert-v01@openssh.com",  "rsa-sha2-512",
        "rsa-sha2-256", "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com"};
    if (profile == "modern")
        return p;
    if (profile == "compat") {
        // For older clients: NIST curves and the larger finite-field groups, still no SHA-1.
        p.kex.insert(p.kex.end(), {"ecdh-sha2-nistp521", "ecdh-sha2-nistp384", "ecdh-sha2-nistp256",
                                   "diffie-hellman-group18-sha512", "diffie-hellman-group16-sha512",
                                   "diffie-hellman-group14-sha256"});
        p.macs.push_back("umac-128@openssh.com");
        p.hostkeys.insert(p.hostkeys.end(),
                          {"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"});
        return p;
    }
    throw usage_error(fmt::format("unknown hardening profile '{}'", profile),
                      "use 'modern' (default) or 'compat'");
}

const std::vector<std::pair<std::string, std::string>>& required_settings() {
    static const std::vector<std::pair<std::string, std::string>> k_settings{
        {"permitrootlogin", "no"},
        {"passwordauthentication", "no"},
        {"kbdinteractiveauthentication", "no"},
        {"authenticationmethods", "publickey"},
        {"pubkeyauthentication", "yes"},
        {"permitemptypasswords", "no"},
        {"maxauthtries", "3"},
        {"logingracetime", "30"},
        {"x11forwarding", "no"},
        {"allowagentforwarding", "no"},
        {"allowtcpforwarding", "local"},
        {"permituserenvironment", "no"},
        {"loglevel", "VERBOSE"},
        {"clientaliveinterval", "300"},
        {"clientalivecountmax", "3"},
    };
    return k_settings;
}

} // namespace labctl::harden
