#pragma once
// The lab's known_hosts file: labctl writes the host keys it generated for its guests, and the SSH
// client (libssh2 and the system ssh for `labctl ssh`/rsync) pins them from here.

#include <cstddef>
#include <string>
#include <vector>

namespace labctl::remote {

struct KnownHost {
    std::string host;     ///< "name" or "[name]:port" as known_hosts writes it
    std::string key_type; ///< "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ...
    std::string key_base64;
};

/// The known_hosts pattern for host and port: "host" for 22, "[host]:port" otherwise.
std::string known_hosts_pattern(const std::string& host, int port);

/// Entries of the (unhashed) file that name host:port. Hashed entries are not returned.
std::vector<KnownHost> find_known_hosts(const std::string& path, const std::string& host, int port);

/// Replaces every entry for host:port with `keys` (public key lines "type base64 [comment]"),
/// keeping all other lines; written atomically with mode 0644.
void pin_host_keys(const std::string& path, const std::string& host, int port,
                   const std::vector<std::string>& public_key_lines);

/// Removes every entry whose key is one of `public_key_lines` ("type base64 [comment]"), under
/// whatever host it names: a VM's key left pinned at an address the VM no longer has. Other
/// lines stay; the file is rewritten (atomically, 0644) only when something goes. Returns the
/// number of entries removed; a missing file removes nothing.
std::size_t forget_host_keys(const std::string& path,
                             const std::vector<std::string>& public_key_lines);

/// "SHA256:<base64 without padding>" of a raw public key blob, as ssh-keygen -l prints it.
std::string fingerprint(const std::string& key_blob);

} // namespace labctl::remote
