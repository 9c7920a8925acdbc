#pragma once
// The ports a compose stack publishes on the host, read from `compose config` (normalised by
// compose itself, variables resolved) — what the host firewall must open (issue #18).

#include <string>
#include <vector>

namespace labctl::deploy {

struct PublishedPort {
    std::string service;
    std::string protocol = "tcp";
    int first = 0;       ///< the host port (the first of a range)
    int last = 0;        ///< the last of a range; 0: one port
    std::string host_ip; ///< "" or "0.0.0.0" / "::": every address
};

struct ComposePorts {
    std::vector<PublishedPort> published;
    /// Ports that cannot be opened ahead: a container port published on a random host port, or
    /// one bound to a loopback address only (unreachable from outside anyway). One line each.
    std::vector<std::string> skipped;
};

/// Reads the services' `ports` of `compose config` output: docker-compose 1.x prints
/// "HOST_IP:PUBLISHED:TARGET/PROTO" strings and {protocol, published, target} mappings, Compose v2
/// the long syntax ({target, published, protocol, host_ip, mode}). Throws Error(deploy) when the
/// text is not YAML or a port is not a number.
ComposePorts parse_compose_ports(const std::string& config_yaml);

} // namespace labctl::deploy
