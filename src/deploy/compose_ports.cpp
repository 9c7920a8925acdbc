#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/compose_ports.hpp>

namespace labctl::deploy {

namespace {

Error bad(const std::string& service, const std::string& what) {
    return Error(ExitCode::deploy, fmt::format("compose config: service '{}': {}", service, what),
                 "check the service's ports in the compose file ('docker compose config' shows "
                 "what compose made of them)");
}

int port_number(const std::string& service, const std::string& text) {
    const auto v = parse_u64(text);
    if (!v || *v < 1 || *v > 65535)
        throw bad(service, fmt::format("'{}' is not a port number", text));
    return static_cast<int>(*v);
}

/// "8080" or "7000-7002" into first and last.
void port_range(const std::string& service, const std::string& text, PublishedPort& p) {
    const auto dash = text.find('-');
    p.first = port_number(service, text.substr(0, dash));
    p.last = dash == std::string::npos ? 0 : port_number(service, text.substr(dash + 1));
}

bool loopback(const std::string& ip) {
    return ip.rfind("127.", 0) == 0 || ip == "::1" || ip == "[::1]" || ip == "localhost";
}

void add(ComposePorts& out, PublishedPort p, const std::string& target) {
    if (p.first == 0) {
        out.skipped.push_back(fmt::format("{}: container port {}/{} on a random host port",
                                          p.service, target, p.protocol));
        return;
    }
    if (loopback(p.host_ip)) {
        out.skipped.push_back(
            fmt::format("{}: {}:{}/{} (loopback only)", p.service, p.host_ip, p.first, p.protocol));
        return;
    }
    out.published.push_back(std::move(p));
}

/// "HOST_IP:PUBLISHED:TARGET/PROTO", "PUBLISHED:TARGET", "TARGET" (the IP may be IPv6,
/// unbracketed).
void short_form(ComposePorts& out, const std::string& service, std::string text) {
    PublishedPort p;
    p.service = service;
    if (const auto slash = text.rfind('/'); slash != std::string::npos) {
        p.protocol = text.substr(slash + 1);
        text.erase(slash);
    }
    const auto last = text.rfind(':');
    const std::string target = text.substr(last == std::string::npos ? 0 : last + 1);
    if (last != std::string::npos) {
        const std::string rest = text.substr(0, last);
        const auto second = rest.rfind(':');
        const std::string published = rest.substr(second == std::string::npos ? 0 : second + 1);
        if (second != std::string::npos)
            p.host_ip = rest.substr(0, second);
        if (!published.empty())
            port_range(service, published, p);
    }
    add(out, std::move(p), target);
}

void long_form(ComposePorts& out, const std::string& service, const YAML::Node& m) {
    PublishedPort p;
    p.service = service;
    if (m["protocol"])
        p.protocol = m["protocol"].as<std::string>();
    if (m["host_ip"])
        p.host_ip = m["host_ip"].as<std::string>();
    if (m["published"] && !m["published"].as<std::string>().empty())
        port_range(service, m["published"].as<std::string>(), p);
    add(out, std::move(p), m["target"] ? m["target"].as<std::string>() : "?");
}

} // namespace

ComposePorts parse_compose_ports(const std::string& config_yaml) {
    ComposePorts out;
    YAML::Node root;
    try {
        root = YAML::Load(config_yaml);
    } catch (const YAML::Exception& e) {
        throw Error(ExitCode::deploy, fmt::format("compose config is not YAML: {}", e.what()));
    }
    const YAML::Node services = root["services"];
    if (!services || !services.IsMap())
        return out;
    for (const auto& s : services) {
        const std::string name = s.first.as<std::string>();
        const YAML::Node ports = s.second["ports"];
        if (!ports || !ports.IsSequence())
            continue;
        try {
            for (const auto& port : ports) {
                if (port.IsScalar())
                    short_form(out, name, port.as<std::string>());
                else if (port.IsMap())
                    long_form(out, name, port);
            }
        } catch (const YAML::Exception& e) {
            throw bad(name, fmt::format("unreadable ports: {}", e.what()));
        }
    }
    return out;
}

} // namespace labctl::deploy
