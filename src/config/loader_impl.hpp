#pragma once
// The Loader behind load_lab: one object per load, its members defined by concept in loader.cpp,
// loader_plumbing.cpp, sections_host.cpp, sections_lab.cpp, sections_hardening.cpp, layers.cpp
// and cross_checks.cpp.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>

#include "validate.hpp"
#include "yaml_reader.hpp"

namespace labctl::config::detail {

using Validator = std::function<Check(std::string_view, const std::string&)>;

inline const std::vector<std::string> k_root_keys{"version",   "project", "libvirt", "hosts",
                                                  "network",   "image",   "ssh",     "vms",
                                                  "hardening", "deploy",  "verify"};
inline const std::vector<std::string> k_libvirt_keys{"uri", "pool", "pool_path", "domain_type"};
inline const std::vector<std::string> k_host_keys{"uri", "pool", "pool_path", "domain_type",
                                                  "jump"};
inline const std::vector<std::string> k_network_keys{"name", "mode", "cidr", "domain", "forwards"};
inline const std::vector<std::string> k_forward_keys{"guest", "host"};
inline const std::vector<std::string> k_image_keys{"path",      "url",    "sha256", "sha512",
                                                   "checksums", "format", "kernel", "initrd",
                                                   "cmdline",   "build"};
inline const std::vector<std::string> k_build_keys{"suite", "packages"};
inline const std::vector<std::string> k_ssh_keys{"user", "private_key", "known_hosts",
                                                 "port", "jump",        "jump_key"};
inline const std::vector<std::string> k_vm_keys{"name", "cpus",  "memory", "disk",
                                                "ip",   "roles", "host"};
inline const std::vector<std::string> k_hardening_keys{
    "profile", "allow_users", "revert_seconds", "firewall", "fail2ban", "auditd", "sysctl"};
inline const std::vector<std::string> k_firewall_keys{"enabled", "ssh_sources", "allow"};
inline const std::vector<std::string> k_deploy_keys{
    "role",         "target_vm",      "host",           "stack_dir",       "remote_dir", "project",
    "wait_timeout", "image_registry", "preload_images", "preload_timeout", "pins"};
inline const std::vector<std::string> k_verify_keys{"checks",    "deadline", "deadlines",
                                                    "endpoints", "services", "prometheus_jobs"};

inline const std::vector<std::string> k_domain_types{"kvm", "qemu", "auto"};

inline constexpr const char* k_project_hint =
    "add e.g. 'project: lab' (lowercase letters, digits and '-', starting with a letter)";

/// Where a value came from, for messages about it and for resolving relative paths.
enum class Origin { defaulted, file, environment, flag };

struct Source {
    Origin origin = Origin::defaulted;
    SourceLocation where;
};

/// A host entry as written (hosts: in lab.yaml): what it leaves empty comes from the libvirt
/// section and ssh.jump once the environment and flags are layered.
struct HostEntry {
    HostSpec spec;
    bool valid = false; ///< its name and URI are good
    bool has_pool = false, has_pool_path = false, has_domain_type = false, has_jump = false;
    SourceLocation uri_where;
};

/// What the loader remembers about each VM beyond VmSpec.
struct VmFacts {
    SourceLocation name_where;
    SourceLocation ip_where;
    bool name_valid = false;
    std::optional<std::uint32_t> ip; ///< given and well-formed
    bool ip_given = false;
    SourceLocation host_where; ///< of vms[i].host when given
};

class Loader {
public:
    Loader(const LoadOptions& options, std::string display, const std::filesystem::path& source);

    /// Parse, layer the environment and the flags, then finish; the result of it all.
    LoadResult load(const std::string& text);
    /// A result with one error about the file as a whole (it could not be read).
    LoadResult fail(std::string message, std::string hint);

private:
    // plumbing (loader_plumbing.cpp)
    void record(const std::string& field, const SourceLocation& where, Origin origin);
    Source source_of(const std::string& field) const;
    bool given(const std::string& field) const { return m_sources.count(field) != 0; }
    /// Reads mapping[key] as a string, checks it and stores it; false when absent or bad.
    bool read_string(const Mapping& m, std::string_view key, std::string& target,
                     const Validator& check = {});
    static Validator choice(const std::vector<std::string>& allowed, std::string hint);
    static Validator not_empty(std::string hint);
    std::optional<Mapping> section(const Mapping& root, std::string_view name,
                                   const std::vector<std::string>& keys);
    bool parse(const std::string& text);
    bool read_root(const YAML::Node& root);

    // libvirt, network, image, ssh (sections_host.cpp)
    void read_libvirt(const Mapping& m);
    void read_hosts(const Mapping& root);
    void read_host(const Entry& e);
    void read_network(const Mapping& m);
    void read_forwards(const Entry& e);
    void read_image(const Mapping& m);
    void read_build(const Entry& e);
    void check_image_combinations(const Mapping& m);
    void read_image_url_checks(const Mapping& m);
    void read_ssh(const Mapping& m);

    // vms, deploy, verify (sections_lab.cpp); hardening (sections_hardening.cpp)
    void read_vms(const Mapping& root);
    void read_vm(const Entry& item);
    void read_vm_fields(const Mapping& m, const Entry& item, VmSpec& vm, VmFacts& facts);
    void read_hardening(const Mapping& m);
    void read_firewall(const Entry& e);
    void read_deploy(const Mapping& m);
    void read_preload(const Entry& e);
    void read_verify(const Mapping& m);

    // environment and command line (layers.cpp)
    void layer(const std::string& setting, const std::string& value, Origin origin,
               SourceLocation where);
    void apply_environment();
    void apply_overrides();

    // what depends on several values (cross_checks.cpp)
    void finish();
    void resolve(const std::string& field, std::string& path);
    void finish_pins();
    void finish_hosts();
    void finish_target_vm();
    void finish_allow_users();
    void finish_network();
    void finish_user_network(const Ipv4Network& net, const SourceLocation& cidr_where);
    void finish_forwards();
    void check_key();

    const LoadOptions& m_options;
    Sink m_sink;
    Reader m_reader;
    std::filesystem::path m_base;
    LabSpec m_spec;
    std::map<std::string, Source> m_sources;
    std::vector<VmFacts> m_vm_facts;
    std::vector<HostEntry> m_hosts; ///< as written; empty without hosts: in lab.yaml
    bool m_hosts_given = false;
    std::map<std::string, SourceLocation> m_deadline_where;
    std::string m_key_as_given;
    std::set<std::string> m_bad; ///< fields whose given value was rejected
    bool m_project_missing = false;
    bool m_checks_given = false;
};

} // namespace labctl::config::detail
