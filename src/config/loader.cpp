// lab.yaml -> LabSpec: parse, check every value, apply the environment and the command line, derive
// the defaults that depend on other values, then check what spans several values. Every problem is
// collected; nothing here throws for bad input.

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/config/suggest.hpp>

#include "validate.hpp"
#include "yaml_reader.hpp"

namespace fs = std::filesystem;

namespace labctl::config {

namespace {

using detail::Check;
using detail::Entry;
using detail::Item;
using detail::Mapping;
using detail::Problem;

using Validator = std::function<Check(std::string_view, const std::string&)>;

const std::vector<std::string> k_root_keys{"version", "project", "libvirt",   "network", "image",
                                           "ssh",     "vms",     "hardening", "deploy",  "verify"};
const std::vector<std::string> k_libvirt_keys{"uri", "pool", "pool_path", "domain_type"};
const std::vector<std::string> k_network_keys{"name", "mode", "cidr", "domain", "forwards"};
const std::vector<std::string> k_forward_keys{"guest", "host"};
const std::vector<std::string> k_image_keys{"path",   "url",    "sha256",  "format",
                                            "kernel", "initrd", "cmdline", "build"};
const std::vector<std::string> k_build_keys{"suite", "packages"};
const std::vector<std::string> k_ssh_keys{"user", "private_key", "known_hosts", "port"};
const std::vector<std::string> k_vm_keys{"name", "cpus", "memory", "disk", "ip", "roles"};
const std::vector<std::string> k_hardening_keys{"profile", "allow_users", "revert_seconds"};
const std::vector<std::string> k_deploy_keys{"target_vm",      "host",           "stack_dir",
                                             "remote_dir",     "project",        "wait_timeout",
                                             "image_registry", "preload_images", "pins"};
const std::vector<std::string> k_verify_keys{"checks",    "deadline", "deadlines",
                                             "endpoints", "services", "prometheus_jobs"};
// The services stack.health can probe (verify's endpoint names).
const std::vector<std::string> k_verify_services{"nginx", "api",  "grafana",  "prometheus",
                                                 "tempo", "loki", "collector"};

const std::vector<std::string> k_domain_types{"kvm", "qemu", "auto"};
const std::vector<std::string> k_network_modes{"nat", "user"};
const std::vector<std::string> k_image_formats{"qcow2", "raw"};
const std::vector<std::string> k_profiles{"modern", "compat"};

constexpr std::uint64_t k_mib = 1024ULL * 1024;
constexpr std::uint64_t k_min_memory = 128 * k_mib;
constexpr std::uint64_t k_min_disk = 1024 * k_mib;
constexpr std::uint32_t k_first_assigned = 10; ///< VMs without ip get .10, .11, ... in order

const char* const k_vms_example = "e.g. vms: [{name: lab1, roles: [stack]}]";
const char* const k_project_hint =
    "add e.g. 'project: lab' (lowercase letters, digits and '-', starting with a letter)";

/// Where a value came from, for messages about it and for resolving relative paths.
enum class Origin { defaulted, file, environment, flag };

struct Source {
    Origin origin = Origin::defaulted;
    SourceLocation where;
};

/// What the loader remembers about each VM beyond VmSpec.
struct VmFacts {
    SourceLocation name_where;
    SourceLocation ip_where;
    bool name_valid = false;
    std::optional<std::uint32_t> ip; ///< given and well-formed
    bool ip_given = false;
};

bool is_bare_number(const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// "1", "+1", "01": the version this labctl reads.
bool is_one(const std::string& s) {
    const auto digits = s.find_first_not_of("+0");
    return digits != std::string::npos && s.substr(digits) == "1";
}

std::string expand_home(const std::string& p) {
    if (p == "~" || p.rfind("~/", 0) == 0) {
        if (const char* home = std::getenv("HOME"); home && *home)
            return std::string(home) + p.substr(1);
    }
    return p;
}

std::string resolve_path(const std::string& p, const fs::path& base) {
    fs::path path = expand_home(p);
    if (path.is_relative())
        path = base / path;
    return path.lexically_normal().string();
}

std::string syntax_hint(const std::string& msg, const std::string& line_text) {
    const auto indent_end = line_text.find_first_not_of(" \t");
    if (line_text.substr(0, indent_end).find('\t') != std::string::npos)
        return "indent with spaces: YAML does not allow tabs for indentation";
    if (msg == "illegal map value")
        return "a value that contains ': ' must be quoted, or this line is indented wrongly";
    if (msg == "end of map flow not found")
        return "a '{' is not closed with '}'";
    if (msg == "end of sequence flow not found")
        return "a '[' is not closed with ']'";
    if (msg == "the referenced anchor is not defined")
        return "define the anchor with '&name' before referring to it with '*name'";
    if (msg.rfind("unknown escape character", 0) == 0)
        return "inside double quotes a backslash starts an escape; use single quotes or '\\\\'";
    return "check the indentation and quoting of this line and the one before it";
}

std::string line_of(const std::string& text, int line) {
    std::istringstream in(text);
    std::string s;
    for (int i = 0; i <= line && std::getline(in, s); ++i) {
    }
    return s;
}

class Loader {
public:
    Loader(const LoadOptions& options, std::string display, const fs::path& source)
        : m_options(options), m_sink(std::move(display)), m_reader(m_sink) {
        m_spec.source_file = source.lexically_normal().string();
        m_spec.base_dir = source.parent_path().lexically_normal().string();
        m_base = m_spec.base_dir;
    }

    LoadResult load(const std::string& text) {
        if (parse(text)) {
            apply_environment();
            apply_overrides();
            finish();
        }
        LoadResult result;
        result.diagnostics = m_sink.sorted();
        if (!m_sink.has_errors())
            result.spec = std::move(m_spec);
        return result;
    }

    LoadResult fail(std::string message, std::string hint) {
        m_sink.error(m_sink.whole_file(), std::move(message), std::move(hint));
        return LoadResult{std::nullopt, m_sink.sorted()};
    }

private:
    // ---- plumbing -----------------------------------------------------------------------------

    void record(const std::string& field, const SourceLocation& where, Origin origin) {
        m_sources[field] = Source{origin, where};
    }

    Source source_of(const std::string& field) const {
        const auto it = m_sources.find(field);
        if (it != m_sources.end())
            return it->second;
        return Source{Origin::defaulted, m_sink.whole_file()};
    }

    bool given(const std::string& field) const { return m_sources.count(field) != 0; }

    /// Reads mapping[key] as a string, checks it and stores it; false when absent or bad.
    bool read_string(const Mapping& m, std::string_view key, std::string& target,
                     const Validator& check = {}) {
        const Entry* e = m.get(key);
        if (!e)
            return false;
        const auto value = m_reader.string(*e);
        if (!value)
            return false;
        if (check) {
            if (auto problem = check(e->path, *value)) {
                m_sink.error(e->where, std::move(*problem));
                m_bad.insert(e->path);
                return false;
            }
        }
        target = *value;
        record(e->path, e->where, Origin::file);
        return true;
    }

    static Validator choice(const std::vector<std::string>& allowed, std::string hint) {
        return [&allowed, hint](std::string_view label, const std::string& v) {
            return detail::check_choice(label, v, allowed, hint);
        };
    }

    static Validator not_empty(std::string hint) {
        return [hint](std::string_view label, const std::string& v) {
            return detail::check_not_empty(label, v, hint);
        };
    }

    std::optional<Mapping> section(const Mapping& root, std::string_view name,
                                   const std::vector<std::string>& keys) {
        const Entry* e = root.find(name);
        if (!e)
            return Mapping{};
        return m_reader.mapping(
            *e, &keys,
            fmt::format("write its keys indented below '{}:' ({})", name, detail::join(keys)));
    }

    // ---- the file -----------------------------------------------------------------------------

    bool parse(const std::string& text) {
        std::vector<YAML::Node> docs;
        try {
            docs = YAML::LoadAll(text);
        } catch (const YAML::ParserException& e) {
            SourceLocation where = m_sink.whole_file();
            if (!e.mark.is_null() && e.mark.line >= 0)
                where = SourceLocation{m_sink.file(), e.mark.line + 1, e.mark.column + 1};
            m_sink.error(where, fmt::format("invalid YAML: {}", e.msg),
                         syntax_hint(e.msg, e.mark.line >= 0 ? line_of(text, e.mark.line) : ""));
            return false;
        } catch (const YAML::Exception& e) {
            m_sink.error(m_sink.whole_file(), fmt::format("invalid YAML: {}", e.msg));
            return false;
        }
        if (docs.empty() || docs.front().IsNull()) {
            m_sink.error(m_sink.whole_file(), "the file is empty",
                         "start from the template 'labctl init' writes, or from "
                         "examples/lab.yaml");
            return false;
        }
        if (docs.size() > 1)
            m_sink.error(m_reader.at(docs[1]),
                         fmt::format("only one YAML document is allowed, found {}", docs.size()),
                         "remove the '---' line and what follows it");
        const YAML::Node& root = docs.front();
        if (!root.IsMap()) {
            m_sink.error(
                m_reader.at(root),
                fmt::format("the top level must be a mapping, got {}", detail::describe(root)),
                "start with 'version: 1', 'project: <name>' and 'vms:' at column 1");
            return false;
        }
        return read_root(root);
    }

    bool read_root(const YAML::Node& root) {
        // A newer schema means other keys: judge nothing else by version 1's rules.
        for (auto it = root.begin(); it != root.end(); ++it) {
            if (!it->first.IsScalar() || it->first.Scalar() != "version")
                continue;
            if (detail::is_plain_integer(it->second) && !is_one(it->second.Scalar())) {
                m_sink.error(m_reader.at(it->second),
                             fmt::format("unsupported version {}", it->second.Scalar()),
                             fmt::format("this labctl reads version {} files; write 'version: {}' "
                                         "or use a labctl that knows version {}",
                                         k_schema_version, k_schema_version, it->second.Scalar()));
                return false;
            }
            break;
        }

        const auto m = m_reader.mapping(root, "", m_reader.at(root), &k_root_keys, "");
        if (!m)
            return false;

        if (const Entry* e = m->find("version"); !e) {
            m_sink.error(m_sink.whole_file(), "missing required key 'version'",
                         "add 'version: 1' as the first line");
        } else if (e->empty()) {
            m_sink.error(e->where, "version must have a value", "write 'version: 1'");
        } else if (const auto v = m_reader.integer(*e, "1")) {
            m_spec.version = static_cast<int>(*v);
        }

        if (const Entry* e = m->find("project"); !e) {
            m_project_missing = true; // unless the environment or a flag names it
        } else if (e->empty()) {
            m_sink.error(e->where, "project must have a value", k_project_hint);
        } else {
            read_string(*m, "project", m_spec.project, detail::check_project);
        }

        if (auto s = section(*m, "libvirt", k_libvirt_keys))
            read_libvirt(*s);
        if (auto s = section(*m, "network", k_network_keys))
            read_network(*s);
        if (auto s = section(*m, "image", k_image_keys))
            read_image(*s);
        if (auto s = section(*m, "ssh", k_ssh_keys))
            read_ssh(*s);
        read_vms(*m);
        if (auto s = section(*m, "hardening", k_hardening_keys))
            read_hardening(*s);
        if (auto s = section(*m, "deploy", k_deploy_keys))
            read_deploy(*s);
        if (auto s = section(*m, "verify", k_verify_keys))
            read_verify(*s);
        return true;
    }

    void read_libvirt(const Mapping& m) {
        auto& lv = m_spec.libvirt;
        read_string(m, "uri", lv.uri, detail::check_libvirt_uri);
        read_string(m, "pool", lv.pool, detail::check_pool);
        read_string(m, "pool_path", lv.pool_path, [](std::string_view label, const std::string& v) {
            return !v.empty() && v.front() == '/'
                       ? Check()
                       : Problem{fmt::format("{} '{}' must be an absolute path", label, v),
                                 "libvirt creates the pool on the libvirt host, e.g. "
                                 "/var/lib/libvirt/images/lab"};
        });
        read_string(m, "domain_type", lv.domain_type,
                    choice(k_domain_types, "kvm needs /dev/kvm; qemu emulates (slow, works "
                                           "anywhere); auto uses kvm when it is usable"));
    }

    static Check check_cidr(std::string_view label, const std::string& v) {
        const auto slash = v.find('/');
        const auto address = parse_ipv4(v.substr(0, slash));
        const std::string digits = slash == std::string::npos ? "" : v.substr(slash + 1);
        if (!address || digits.empty() || digits.size() > 2 || !is_bare_number(digits) ||
            (digits.size() > 1 && digits[0] == '0') || std::stoi(digits) > 32)
            return Problem{fmt::format("{} '{}' is not an IPv4 network", label, v),
                           "write address/prefix, e.g. 10.66.77.0/24"};
        const int prefix = std::stoi(digits);
        if (prefix < 8 || prefix > 30)
            return Problem{
                fmt::format("{} '{}' has prefix /{}; labctl needs /8 to /30", label, v, prefix),
                "a /24 leaves 253 addresses for VMs, e.g. 10.66.77.0/24"};
        const Ipv4Network net{*address & Ipv4Network{0, prefix}.netmask(), prefix};
        if (net.address != *address)
            return Problem{fmt::format("{} '{}' has host bits set", label, v),
                           fmt::format("did you mean {}?", net.to_string())};
        return std::nullopt;
    }

    void read_network(const Mapping& m) {
        auto& net = m_spec.network;
        read_string(m, "name", net.name, detail::check_network_name);
        read_string(m, "mode", net.mode,
                    choice(k_network_modes, "nat: a libvirt NAT network; user: SLIRP with ports "
                                            "forwarded on 127.0.0.1"));
        read_string(m, "cidr", net.cidr, check_cidr);
        read_string(m, "domain", net.domain, detail::check_domain);
        if (const Entry* e = m.find("forwards"))
            read_forwards(*e);
    }

    void read_forwards(const Entry& e) {
        record(e.path, e.where, Origin::file);
        const auto items = m_reader.sequence(e);
        if (!items)
            return;
        const std::string example = "e.g. '- {guest: 3000, host: 3000}' (the host side binds "
                                    "127.0.0.1)";
        std::map<int, std::size_t> by_host; // host port -> index in network.forwards
        for (std::size_t i = 0; i < items->size(); ++i) {
            const Entry& item = (*items)[i];
            const auto m =
                m_reader.mapping(item, &k_forward_keys, "each forward is a mapping: " + example);
            if (!m)
                continue;
            const Entry* guest = m->get("guest");
            const Entry* host = m->get("host");
            if (guest == nullptr || host == nullptr) {
                m_sink.error(item.where, fmt::format("{} needs both 'guest' and 'host'", item.path),
                             example);
                continue;
            }
            const auto g = m_reader.integer_in(*guest, 1, 65535, "3000");
            const auto h = m_reader.integer_in(*host, 1, 65535, "3000");
            if (!g || !h)
                continue;
            const int host_port = static_cast<int>(*h);
            if (const auto it = by_host.find(host_port); it != by_host.end()) {
                m_sink.error(host->where,
                             fmt::format("{} {} is already forwarded by network.forwards[{}] on "
                                         "line {}",
                                         host->path, host_port, it->second,
                                         m_spec.network.forwards[it->second].where.line),
                             "give every forward its own host port");
                continue;
            }
            if (host_port < 1024)
                m_sink.warning(host->where,
                               fmt::format("{} {} is a privileged port", host->path, host_port),
                               "QEMU runs unprivileged and may not bind it; pick a port from "
                               "1024 up, e.g. 8080");
            by_host.emplace(host_port, m_spec.network.forwards.size());
            m_spec.network.forwards.push_back({static_cast<int>(*g), host_port, item.where});
        }
    }

    void read_image(const Mapping& m) {
        auto& img = m_spec.image;
        read_string(m, "path", img.path,
                    not_empty("give the image file, e.g. .labctl/images/debian-12.qcow2"));
        read_string(m, "url", img.url, detail::check_image_url);
        if (read_string(m, "sha256", img.sha256, detail::check_sha256))
            std::transform(img.sha256.begin(), img.sha256.end(), img.sha256.begin(),
                           [](char c) { return static_cast<char>(std::tolower(c)); });
        read_string(m, "format", img.format,
                    choice(k_image_formats, "qcow2 (Debian's cloud images) or raw"));
        read_string(m, "kernel", img.kernel,
                    not_empty("give the kernel file, e.g. images/vmlinuz"));
        read_string(m, "initrd", img.initrd,
                    not_empty("give the initrd file, e.g. images/initrd.img"));
        read_string(m, "cmdline", img.cmdline,
                    not_empty(fmt::format("e.g. '{}', or delete the line", k_default_cmdline)));
        if (const Entry* e = m.find("build"))
            read_build(*e);
        check_image_combinations(m);
        read_image_url_checks(m);
    }

    void read_build(const Entry& e) {
        const auto m = m_reader.mapping(e, &k_build_keys,
                                        "e.g. 'build: {suite: bookworm, packages: [htop]}', or "
                                        "'build: {}' for the defaults");
        if (!m)
            return;
        ImageBuildSpec build;
        read_string(*m, "suite", build.suite, [](std::string_view label, const std::string& v) {
            const bool ok =
                !v.empty() && v.size() <= 32 && std::all_of(v.begin(), v.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                });
            return ok ? Check()
                      : Problem{fmt::format("{} '{}' is not a Debian suite name", label, v),
                                "e.g. bookworm"};
        });
        if (const Entry* p = m->get("packages")) {
            if (const auto items = m_reader.strings(*p)) {
                for (const auto& item : *items) {
                    // Debian policy: lowercase letters, digits, '+', '-', '.'; at least two
                    // characters, starting with a letter or digit. Anything else would reach
                    // mmdebstrap's command line.
                    const auto& t = item.text;
                    const bool ok = t.size() >= 2 &&
                                    std::isalnum(static_cast<unsigned char>(t[0])) &&
                                    std::all_of(t.begin(), t.end(), [](char c) {
                                        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                               c == '+' || c == '-' || c == '.';
                                    });
                    if (!ok)
                        m_sink.error(
                            item.where,
                            fmt::format("{} '{}' is not a Debian package name", item.path, t),
                            "lowercase letters, digits, '+', '-' and '.', e.g. htop");
                    else if (std::find(build.packages.begin(), build.packages.end(), t) ==
                             build.packages.end())
                        build.packages.push_back(t);
                }
            }
        }
        m_spec.image.build = std::move(build);
        record(e.path, e.where, Origin::file);
    }

    void check_image_combinations(const Mapping& m) {
        const Entry* kernel = m.get("kernel");
        const Entry* initrd = m.get("initrd");
        const Entry* cmdline = m.get("cmdline");
        const Entry* build = m.find("build");
        if (build != nullptr) {
            for (const char* key : {"path", "url", "kernel", "initrd"})
                if (const Entry* other = m.get(key))
                    m_sink.error(
                        other->where,
                        fmt::format("image.build and image.{} are mutually exclusive", key),
                        fmt::format("image.build makes the disk, kernel and initrd "
                                    "itself: delete '{}', or delete 'build' to use "
                                    "your own files",
                                    key));
            return;
        }
        if (kernel != nullptr && initrd == nullptr)
            m_sink.error(kernel->where, "image.kernel needs image.initrd",
                         "direct kernel boot takes both: the initrd mounts the root file system, "
                         "e.g. initrd: images/initrd.img");
        else if (initrd != nullptr && kernel == nullptr)
            m_sink.error(initrd->where, "image.initrd needs image.kernel",
                         "direct kernel boot takes both, e.g. kernel: images/vmlinuz");
        if (cmdline != nullptr && kernel == nullptr && initrd == nullptr)
            m_sink.error(cmdline->where, "image.cmdline needs image.kernel and image.initrd",
                         "the kernel command line is used only with direct kernel boot: add "
                         "kernel and initrd, or delete cmdline");
    }

    void read_image_url_checks(const Mapping& m) {
        const Entry* url = m.get("url");
        if (url && m.get("path"))
            m_sink.error(url->where, "image.path and image.url are mutually exclusive",
                         "keep 'path' for a local image file, or 'url' (with sha256) to download "
                         "one");
        else if (url && !m.get("sha256"))
            m_sink.error(url->where, "image.url needs image.sha256",
                         "add 'sha256:' with the image's checksum, so that a corrupt or tampered "
                         "download is caught");
    }

    static Check check_ssh_user(std::string_view label, const std::string& v) {
        if (auto p = detail::check_user_name(label, v))
            return p;
        if (v == "root")
            return Problem{fmt::format("{} must not be 'root'", label),
                           "hardening turns root login off, so labctl would lock itself out; use "
                           "an unprivileged user with sudo, such as the default 'labctl'"};
        return std::nullopt;
    }

    void read_ssh(const Mapping& m) {
        auto& ssh = m_spec.ssh;
        read_string(m, "user", ssh.user, check_ssh_user);
        read_string(m, "private_key", ssh.private_key,
                    not_empty("e.g. .labctl/id_ed25519 (the public key is the same path + .pub)"));
        read_string(m, "known_hosts", ssh.known_hosts, not_empty("e.g. .labctl/known_hosts"));
        if (const Entry* e = m.get("port"))
            if (auto v = m_reader.integer_in(*e, 1, 65535, "22"))
                ssh.port = static_cast<int>(*v);
    }

    void read_vms(const Mapping& root) {
        const Entry* e = root.find("vms");
        if (!e) {
            m_sink.error(m_sink.whole_file(), "missing required key 'vms'",
                         fmt::format("add the VMs to create, {}", k_vms_example));
            return;
        }
        if (e->value.IsMap()) {
            m_sink.error(e->where, "vms must be a list, got a mapping",
                         "start each VM with '- ', e.g. '  - name: lab1'");
            return;
        }
        const auto items = m_reader.sequence(*e);
        if (!items)
            return;
        if (items->empty()) {
            m_sink.error(e->where, "vms must list at least one VM", k_vms_example);
            return;
        }
        for (const auto& item : *items)
            read_vm(item);
    }

    void read_vm(const Entry& item) {
        VmSpec vm;
        VmFacts facts;
        vm.where = item.where;
        if (item.value.IsScalar()) {
            m_sink.error(item.where,
                         fmt::format("{} must be a mapping, got {}", item.path,
                                     detail::describe(item.value)),
                         fmt::format("write '- name: {}' and the VM's other keys below it",
                                     item.value.Scalar()));
        } else if (const auto m = m_reader.mapping(item, &k_vm_keys,
                                                   "each VM is a mapping, e.g. '- name: lab1'")) {
            read_vm_fields(*m, item, vm, facts);
        }
        m_spec.vms.push_back(std::move(vm));
        m_vm_facts.push_back(std::move(facts));
    }

    void read_vm_fields(const Mapping& m, const Entry& item, VmSpec& vm, VmFacts& facts) {
        if (const Entry* e = m.find("name"); !e) {
            m_sink.error(item.where, fmt::format("missing required key 'name' in {}", item.path),
                         "add 'name: <hostname>', e.g. 'name: lab1'");
        } else if (e->empty()) {
            m_sink.error(e->where, fmt::format("{} must have a value", e->path),
                         "e.g. 'name: lab1'");
        } else if (const auto name = m_reader.string(*e)) {
            facts.name_where = e->where;
            if (auto p = detail::check_vm_name(e->path, *name)) {
                m_sink.error(e->where, std::move(*p));
            } else {
                vm.name = *name;
                facts.name_valid = true;
                for (std::size_t j = 0; j < m_spec.vms.size(); ++j) {
                    if (m_vm_facts[j].name_valid && m_spec.vms[j].name == *name) {
                        m_sink.error(e->where,
                                     fmt::format("duplicate VM name '{}'; first used by vms[{}] "
                                                 "on line {}",
                                                 *name, j, m_vm_facts[j].name_where.line),
                                     "give every VM its own name");
                        facts.name_valid = false;
                        break;
                    }
                }
            }
        }
        if (const Entry* e = m.get("cpus"))
            if (auto v = m_reader.integer_in(*e, 1, 128, "4"))
                vm.cpus = static_cast<int>(*v);
        if (const Entry* e = m.get("memory")) {
            if (auto v = m_reader.size(*e)) {
                if (*v < k_min_memory)
                    m_sink.error(e->where,
                                 fmt::format("{} '{}' is less than {}", e->path, e->value.Scalar(),
                                             format_size(k_min_memory)),
                                 "a Debian cloud guest needs at least 512MiB; the lab's stack "
                                 "wants 4GiB or more");
                else
                    vm.memory_bytes = *v;
            }
        }
        if (const Entry* e = m.get("disk")) {
            if (auto v = m_reader.size(*e)) {
                if (*v < k_min_disk)
                    m_sink.error(e->where,
                                 fmt::format("{} '{}' is less than {}", e->path, e->value.Scalar(),
                                             format_size(k_min_disk)),
                                 "the disk holds the system and the container images; the "
                                 "default is 20GiB");
                else
                    vm.disk_bytes = *v;
            }
        }
        if (const Entry* e = m.get("ip")) {
            if (const auto text = m_reader.string(*e)) {
                facts.ip_given = true;
                facts.ip_where = e->where;
                if (const auto ip = parse_ipv4(*text)) {
                    facts.ip = ip;
                    vm.ip = *text;
                } else {
                    m_sink.error(e->where,
                                 fmt::format("{} '{}' is not an IPv4 address", e->path, *text),
                                 "write four numbers 0-255 separated by dots, e.g. 10.66.77.10, "
                                 "or leave ip out to have one assigned");
                }
            }
        }
        if (const Entry* e = m.get("roles")) {
            if (const auto roles = m_reader.strings(*e)) {
                for (const auto& role : *roles) {
                    const bool ok = !role.text.empty() &&
                                    std::all_of(role.text.begin(), role.text.end(), [](char c) {
                                        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                               c == '-' || c == '_' || c == '.';
                                    });
                    if (!ok)
                        m_sink.error(
                            role.where,
                            fmt::format("{} '{}' is not a valid role", role.path, role.text),
                            "roles are lowercase words such as 'stack'");
                    else if (std::find(vm.roles.begin(), vm.roles.end(), role.text) ==
                             vm.roles.end())
                        vm.roles.push_back(role.text);
                }
            }
        }
    }

    void read_hardening(const Mapping& m) {
        auto& h = m_spec.hardening;
        read_string(m, "profile", h.profile,
                    choice(k_profiles, "modern: current algorithms only; compat: also older "
                                       "clients"));
        if (const Entry* e = m.get("allow_users")) {
            if (const auto users = m_reader.strings(*e)) {
                record(e->path, e->where, Origin::file);
                for (const auto& u : *users) {
                    if (auto p = detail::check_user_name(u.path, u.text))
                        m_sink.error(u.where, std::move(*p));
                    else if (std::find(h.allow_users.begin(), h.allow_users.end(), u.text) ==
                             h.allow_users.end())
                        h.allow_users.push_back(u.text);
                }
            }
        }
        if (const Entry* e = m.get("revert_seconds")) {
            if (const auto v = m_reader.integer(*e, "120")) {
                const std::string hint = "the revert must outlive labctl's reconnection check; "
                                         "the default is 120";
                if (*v < 30)
                    m_sink.error(e->where,
                                 fmt::format("{} must be at least 30, got {}", e->path, *v), hint);
                else if (*v > 3600)
                    m_sink.error(e->where,
                                 fmt::format("{} must be at most 3600, got {}", e->path, *v), hint);
                else
                    h.revert_after = std::chrono::seconds(*v);
            }
        }
    }

    static Check check_remote_dir(std::string_view label, const std::string& v) {
        const std::string hint = "e.g. /opt/labctl/lab";
        if (v.empty() || v.front() != '/')
            return Problem{fmt::format("{} '{}' must be an absolute path", label, v), hint};
        int depth = 0;
        std::istringstream parts(v);
        std::string part;
        while (std::getline(parts, part, '/')) {
            if (part == "." || part == "..")
                return Problem{fmt::format("{} '{}' must not contain '.' or '..'", label, v), hint};
            if (!part.empty())
                ++depth;
        }
        if (depth < 2)
            return Problem{fmt::format("{} '{}' is too close to '/'", label, v),
                           "labctl syncs into it with rsync --delete, which empties it first: "
                           "use a directory of its own such as /opt/labctl/lab"};
        return std::nullopt;
    }

    void read_deploy(const Mapping& m) {
        auto& d = m_spec.deploy;
        read_string(m, "target_vm", d.target_vm,
                    not_empty("name one of the VMs, or delete the line"));
        read_string(m, "host", d.host, detail::check_host);
        read_string(m, "stack_dir", d.stack_dir, not_empty("e.g. stacks/lab"));
        if (read_string(m, "remote_dir", d.remote_dir, check_remote_dir))
            while (d.remote_dir.size() > 1 && d.remote_dir.back() == '/')
                d.remote_dir.pop_back();
        read_string(m, "project", d.project, detail::check_compose_project);
        if (const Entry* e = m.get("wait_timeout"))
            if (const auto v = m_reader.duration(*e))
                d.wait_timeout = *v;
        if (read_string(m, "image_registry", d.image_registry, detail::check_registry))
            if (!d.image_registry.empty() && d.image_registry.back() != '/')
                d.image_registry += '/';
        if (const Entry* e = m.get("preload_images"))
            read_preload(*e);
        read_string(m, "pins", d.pins, detail::check_pin_set);
    }

    void read_preload(const Entry& e) {
        auto& out = m_spec.deploy.preload_images;
        if (e.value.IsScalar()) {
            if (e.value.Scalar() == "auto")
                out = {"auto"};
            else
                m_sink.error(e.where,
                             fmt::format("{} must be a list of images or 'auto', got {}", e.path,
                                         detail::describe(e.value)),
                             "write 'auto' to preload the images the compose file uses, or list "
                             "them: [prom/prometheus:v2.53.0, ...]");
            return;
        }
        const auto items = m_reader.strings(e);
        if (!items)
            return;
        for (const auto& item : *items) {
            if (item.text == "auto" && items->size() > 1) {
                m_sink.error(item.where, fmt::format("'auto' must be the only entry of {}", e.path),
                             "write 'preload_images: auto', or list the images yourself");
            } else if (auto p = detail::check_image_ref(item.path, item.text)) {
                m_sink.error(item.where, std::move(*p));
            } else {
                out.push_back(item.text);
            }
        }
    }

    static std::string check_hint(const std::string& name) {
        if (const auto s = did_you_mean(name, known_checks()))
            return fmt::format("did you mean '{}'?", *s);
        return fmt::format("known checks: {}", detail::join(known_checks()));
    }

    static bool is_known_check(const std::string& name) {
        const auto& k = known_checks();
        return std::find(k.begin(), k.end(), name) != k.end();
    }

    void read_verify(const Mapping& m) {
        auto& v = m_spec.verify;
        if (const Entry* e = m.get("checks")) {
            if (const auto items = m_reader.strings(*e)) {
                m_checks_given = true;
                if (items->empty())
                    m_sink.warning(
                        e->where,
                        fmt::format("{} is empty: 'labctl verify' will check nothing", e->path),
                        "delete the key to run the default checks");
                for (const auto& item : *items) {
                    if (!is_known_check(item.text))
                        m_sink.error(item.where,
                                     fmt::format("unknown check '{}' in {}", item.text, e->path),
                                     check_hint(item.text));
                    else if (std::find(v.checks.begin(), v.checks.end(), item.text) !=
                             v.checks.end())
                        m_sink.warning(item.where,
                                       fmt::format("{} lists '{}' twice", e->path, item.text),
                                       "delete the second one");
                    else
                        v.checks.push_back(item.text);
                }
            }
        }
        if (const Entry* e = m.get("deadline"))
            if (const auto d = m_reader.duration(*e))
                v.deadline = *d;
        std::vector<const Entry*> deadline_entries;
        if (const Entry* e = m.find("deadlines")) {
            if (const auto map = m_reader.mapping(*e, nullptr,
                                                  "map check names to durations, e.g. "
                                                  "'trace.e2e: 5m'")) {
                for (const auto& d : map->entries) {
                    if (!is_known_check(d.name)) {
                        m_sink.error(d.key_where,
                                     fmt::format("unknown check '{}' in {}", d.name, e->path),
                                     check_hint(d.name));
                        continue;
                    }
                    if (d.empty())
                        continue;
                    if (const auto dur = m_reader.duration(d)) {
                        v.check_deadlines[d.name] = *dur;
                        m_deadline_where[d.name] = d.key_where;
                    }
                }
            }
        }
        if (const Entry* e = m.get("services")) {
            if (const auto items = m_reader.strings(*e)) {
                if (items->empty())
                    m_sink.error(e->where,
                                 fmt::format("{} is empty: stack.health needs a service", e->path),
                                 "delete the key to probe every service of the full lab");
                for (const auto& item : *items) {
                    if (std::find(k_verify_services.begin(), k_verify_services.end(), item.text) ==
                        k_verify_services.end())
                        m_sink.error(item.where,
                                     fmt::format("unknown service '{}' in {}", item.text, e->path),
                                     did_you_mean(item.text, k_verify_services)
                                         ? fmt::format("did you mean '{}'?",
                                                       *did_you_mean(item.text, k_verify_services))
                                         : fmt::format("known services: {}",
                                                       detail::join(k_verify_services)));
                    else if (std::find(v.services.begin(), v.services.end(), item.text) ==
                             v.services.end())
                        v.services.push_back(item.text);
                }
            }
        }
        if (const Entry* e = m.get("prometheus_jobs")) {
            if (const auto items = m_reader.strings(*e)) {
                if (items->empty())
                    m_sink.error(
                        e->where,
                        fmt::format("{} is empty: prometheus.targets needs a job", e->path),
                        "delete the key to expect every job of the full lab");
                for (const auto& item : *items) {
                    if (item.text.empty())
                        m_sink.error(item.where, fmt::format("empty job name in {}", e->path),
                                     "write the job_name of a scrape config in prometheus.yml");
                    else
                        v.prometheus_jobs.push_back(item.text);
                }
            }
        }
        if (const Entry* e = m.find("endpoints")) {
            if (const auto map = m_reader.mapping(
                    *e, nullptr, "map names to URLs, e.g. 'grafana: http://127.0.0.1:3000'")) {
                for (const auto& d : map->entries) {
                    if (d.empty())
                        continue;
                    if (const auto url = m_reader.string(d)) {
                        if (auto p = detail::check_http_url(d.path, *url))
                            m_sink.error(d.where, std::move(*p));
                        else
                            v.endpoints[d.name] = *url;
                    }
                }
            }
        }
    }

    // ---- environment and command line ---------------------------------------------------------

    struct Binding {
        std::string name;
        std::string field;
        std::string* target;
        Validator check;
    };

    void apply(const Binding& b, const std::string& value, Origin origin, SourceLocation where) {
        if (b.check) {
            if (auto problem = b.check(b.field, value)) {
                m_sink.error(std::move(where), std::move(*problem));
                m_bad.insert(b.field);
                return;
            }
        }
        *b.target = value;
        record(b.field, where, origin);
    }

    void apply_environment() {
        auto& s = m_spec;
        const std::vector<Binding> bindings{
            {"LABCTL_PROJECT", "project", &s.project, detail::check_project},
            {"LABCTL_LIBVIRT_URI", "libvirt.uri", &s.libvirt.uri, detail::check_libvirt_uri},
            {"LABCTL_POOL", "libvirt.pool", &s.libvirt.pool, detail::check_pool},
            {"LABCTL_DOMAIN_TYPE", "libvirt.domain_type", &s.libvirt.domain_type,
             choice(k_domain_types, "kvm, qemu or auto")},
            {"LABCTL_SSH_USER", "ssh.user", &s.ssh.user, check_ssh_user},
            {"LABCTL_SSH_KEY", "ssh.private_key", &s.ssh.private_key, {}},
            {"LABCTL_KNOWN_HOSTS", "ssh.known_hosts", &s.ssh.known_hosts, {}},
            {"PROJECT", "deploy.project", &s.deploy.project, detail::check_compose_project},
            {"LAB_HOST", "deploy.host", &s.deploy.host, detail::check_host},
            {"LAB_PINS", "deploy.pins", &s.deploy.pins, detail::check_pin_set},
        };
        for (const auto& b : bindings) {
            const auto it = m_options.env.find(b.name);
            if (it == m_options.env.end() || it->second.empty())
                continue; // an empty variable counts as unset
            apply(b, it->second, Origin::environment, SourceLocation{"$" + b.name, 0, 0});
        }
    }

    void apply_overrides() {
        auto& s = m_spec;
        const auto& o = m_options.overrides;
        if (o.project)
            apply({"--project", "project", &s.project, detail::check_project}, *o.project,
                  Origin::flag, SourceLocation{"--project", 0, 0});
        if (o.libvirt_uri)
            apply({"--libvirt-uri", "libvirt.uri", &s.libvirt.uri, detail::check_libvirt_uri},
                  *o.libvirt_uri, Origin::flag, SourceLocation{"--libvirt-uri", 0, 0});
        if (o.host)
            apply({"--host", "deploy.host", &s.deploy.host, detail::check_host}, *o.host,
                  Origin::flag, SourceLocation{"--host", 0, 0});
    }

    // ---- what depends on several values -------------------------------------------------------

    void finish() {
        auto& s = m_spec;
        if (m_project_missing && !given("project"))
            m_sink.error(m_sink.whole_file(), "missing required key 'project'", k_project_hint);
        if (!given("network.name") && !s.project.empty() &&
            !detail::check_project("project", s.project))
            s.network.name = s.project + "-net";

        m_key_as_given = s.ssh.private_key;
        resolve("image.path", s.image.path);
        resolve("image.kernel", s.image.kernel);
        resolve("image.initrd", s.image.initrd);
        if (!s.image.kernel.empty() && s.image.cmdline.empty())
            s.image.cmdline = k_default_cmdline;
        resolve("ssh.private_key", s.ssh.private_key);
        resolve("ssh.known_hosts", s.ssh.known_hosts);
        resolve("deploy.stack_dir", s.deploy.stack_dir);

        if (!m_checks_given)
            for (const auto& c : known_checks())
                if (c != "nginx.resilience")
                    s.verify.checks.push_back(c);
        for (const auto& [name, where] : m_deadline_where)
            if (std::find(s.verify.checks.begin(), s.verify.checks.end(), name) ==
                s.verify.checks.end())
                m_sink.warning(where,
                               fmt::format("verify.deadlines sets a deadline for '{}', which "
                                           "verify.checks does not run",
                                           name),
                               "add it to verify.checks, or delete the deadline");

        finish_pins();
        finish_target_vm();
        finish_allow_users();
        finish_network();
        finish_forwards();
        check_key();
    }

    void resolve(const std::string& field, std::string& path) {
        if (path.empty())
            return;
        const auto src = source_of(field);
        const bool from_outside = src.origin == Origin::environment || src.origin == Origin::flag;
        path = resolve_path(path, from_outside ? fs::current_path() : m_base);
    }

    // deploy.pins names a file of the stack: <stack_dir>/pins/<name>.env.
    void finish_pins() {
        const auto& d = m_spec.deploy;
        if (d.pins.empty() || m_bad.count("deploy.pins"))
            return;
        const fs::path dir = fs::path(d.stack_dir) / "pins";
        std::error_code ec;
        if (fs::is_regular_file(dir / (d.pins + ".env"), ec))
            return;
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir, ec))
            if (entry.path().extension() == ".env")
                names.push_back(entry.path().stem().string());
        std::sort(names.begin(), names.end());
        std::string hint =
            names.empty()
                ? fmt::format("{} has no pin sets: delete deploy.pins", dir.string())
                : fmt::format("the pin sets of {} are: {}", d.stack_dir, detail::join(names));
        if (const auto guess = did_you_mean(d.pins, names))
            hint = fmt::format("did you mean '{}'?", *guess);
        m_sink.error(source_of("deploy.pins").where,
                     fmt::format("deploy.pins '{}': there is no {}", d.pins,
                                 (dir / (d.pins + ".env")).string()),
                     hint);
    }

    void finish_target_vm() {
        auto& s = m_spec;
        std::vector<std::string> names;
        for (std::size_t i = 0; i < s.vms.size(); ++i)
            if (m_vm_facts[i].name_valid)
                names.push_back(s.vms[i].name);
        if (given("deploy.target_vm")) {
            if (names.empty() ||
                std::find(names.begin(), names.end(), s.deploy.target_vm) != names.end())
                return;
            std::string hint = fmt::format("the VMs are: {}", detail::join(names));
            if (const auto guess = did_you_mean(s.deploy.target_vm, names))
                hint = fmt::format("did you mean '{}'?", *guess);
            m_sink.error(
                source_of("deploy.target_vm").where,
                fmt::format("deploy.target_vm '{}' is not one of the VMs", s.deploy.target_vm),
                hint);
            return;
        }
        for (const auto& vm : s.vms) {
            if (std::find(vm.roles.begin(), vm.roles.end(), "stack") != vm.roles.end()) {
                s.deploy.target_vm = vm.name;
                return;
            }
        }
        if (!s.vms.empty())
            s.deploy.target_vm = s.vms.front().name;
    }

    void finish_allow_users() {
        auto& h = m_spec.hardening;
        const std::string& user = m_spec.ssh.user;
        const bool listed =
            std::find(h.allow_users.begin(), h.allow_users.end(), user) != h.allow_users.end();
        if (listed || m_bad.count("ssh.user"))
            return; // a bad ssh.user is reported already: do not blame allow_users for it
        if (given("hardening.allow_users") && !h.allow_users.empty())
            m_sink.error(source_of("hardening.allow_users").where,
                         fmt::format("hardening.allow_users must contain the ssh user '{}' or "
                                     "labctl would lock itself out",
                                     user),
                         fmt::format("add '{}' to the list, or delete allow_users to allow only "
                                     "'{}'",
                                     user, user));
        h.allow_users.push_back(user);
    }

    void finish_network() {
        auto& s = m_spec;
        if (m_bad.count("network.cidr"))
            return;
        const auto net = parse_cidr(s.network.cidr);
        if (!net)
            return;
        const SourceLocation cidr_where = source_of("network.cidr").where;
        if (s.network.mode == "user") {
            finish_user_network(*net, cidr_where);
            return;
        }
        const Ipv4Network libvirt_default{0xC0A87A00, 24}; // 192.168.122.0/24
        const auto overlaps = [](const Ipv4Network& a, const Ipv4Network& b) {
            return a.contains(b.address) || b.contains(a.address);
        };
        if (s.network.mode == "nat" && overlaps(*net, libvirt_default))
            m_sink.warning(cidr_where,
                           fmt::format("network.cidr {} overlaps libvirt's 'default' network "
                                       "192.168.122.0/24",
                                       net->to_string()),
                           "both networks cannot be active at once; pick another private range, "
                           "e.g. 10.66.77.0/24");
        const std::vector<Ipv4Network> k_private{
            {0x0A000000, 8}, {0xAC100000, 12}, {0xC0A80000, 16}};
        if (std::none_of(k_private.begin(), k_private.end(), [&](const Ipv4Network& p) {
                return p.contains(net->address) && net->prefix >= p.prefix;
            }))
            m_sink.warning(
                cidr_where,
                fmt::format("network.cidr {} is not a private (RFC 1918) range", net->to_string()),
                "the lab would hide real hosts with those addresses; use 10.0.0.0/8, "
                "172.16.0.0/12 or 192.168.0.0/16");

        const std::string range_hint =
            fmt::format("pick an address from {} to {}, or leave ip out to have one assigned",
                        format_ipv4(net->gateway() + 1), format_ipv4(net->last_host()));
        std::map<std::uint32_t, std::size_t> used;
        for (std::size_t i = 0; i < s.vms.size(); ++i) {
            const auto& f = m_vm_facts[i];
            if (!f.ip)
                continue;
            const std::uint32_t ip = *f.ip;
            const std::string label = fmt::format("vms[{}].ip {}", i, s.vms[i].ip);
            if (!net->contains(ip))
                m_sink.error(f.ip_where,
                             fmt::format("{} is outside network.cidr {}", label, net->to_string()),
                             range_hint);
            else if (ip == net->address)
                m_sink.error(
                    f.ip_where,
                    fmt::format("{} is the network address of {}", label, net->to_string()),
                    range_hint);
            else if (ip == net->gateway())
                m_sink.error(f.ip_where,
                             fmt::format("{} is the gateway of {} (the host's side of the "
                                         "network)",
                                         label, net->to_string()),
                             range_hint);
            else if (ip == net->broadcast())
                m_sink.error(
                    f.ip_where,
                    fmt::format("{} is the broadcast address of {}", label, net->to_string()),
                    range_hint);
            else if (const auto it = used.find(ip); it != used.end())
                m_sink.error(f.ip_where,
                             fmt::format("{} is already used by vms[{}] on line {}", label,
                                         it->second, m_vm_facts[it->second].ip_where.line),
                             "give every VM its own address, or leave ip out to have one "
                             "assigned");
            else
                used.emplace(ip, i);
        }
        // From .10 on, so that low addresses stay free for hand-picked ones; a network too small
        // for that starts right after the gateway.
        std::uint32_t next = net->address + k_first_assigned;
        if (next > net->last_host())
            next = net->gateway() + 1;
        for (std::size_t i = 0; i < s.vms.size(); ++i) {
            if (m_vm_facts[i].ip_given)
                continue;
            while (next <= net->last_host() && used.count(next))
                ++next;
            if (next > net->last_host()) {
                m_sink.error(s.vms[i].where,
                             fmt::format("no free address left in network.cidr {} for vms[{}]",
                                         net->to_string(), i),
                             "use a larger network (a smaller prefix), or give the VM an ip");
                return;
            }
            s.vms[i].ip = format_ipv4(next);
            used.emplace(next, i);
        }
    }

    /// mode user: every VM sits alone on QEMU's SLIRP network and gets its fixed address; the
    /// host reaches it only through network.forwards on 127.0.0.1.
    void finish_user_network(const Ipv4Network& net, const SourceLocation& cidr_where) {
        auto& s = m_spec;
        if (s.vms.size() > 1)
            m_sink.warning(source_of("network.mode").where,
                           fmt::format("network.mode 'user' gives every VM its own private "
                                       "network: the {} VMs cannot reach each other",
                                       s.vms.size()),
                           "use 'mode: nat' when the VMs must talk to each other");
        if (given("network.cidr") && net.to_string() != k_user_cidr)
            m_sink.warning(cidr_where,
                           fmt::format("network.cidr {} is not used with network.mode user: "
                                       "every VM gets {}/24 on QEMU's own network",
                                       net.to_string(), k_user_guest_ip),
                           "delete network.cidr; the VMs are reached through network.forwards "
                           "on 127.0.0.1");
        for (std::size_t i = 0; i < s.vms.size(); ++i) {
            const auto& f = m_vm_facts[i];
            if (f.ip_given && s.vms[i].ip != k_user_guest_ip && !s.vms[i].ip.empty())
                m_sink.warning(f.ip_where,
                               fmt::format("vms[{}].ip {} is not used with network.mode user: "
                                           "the VM's address is {}",
                                           i, s.vms[i].ip, k_user_guest_ip),
                               "delete the ip line");
            s.vms[i].ip = k_user_guest_ip;
        }
    }

    /// Forwards make sense only in mode user; there the guest's SSH port is always forwarded, and
    /// every VM gets its own copy of the list with host ports shifted by its index.
    void finish_forwards() {
        auto& s = m_spec;
        auto& fw = s.network.forwards;
        if (s.network.mode != "user") {
            if (!fw.empty())
                m_sink.error(source_of("network.forwards").where,
                             fmt::format("network.forwards needs network.mode user (it is {})",
                                         s.network.mode),
                             "with mode nat the VMs are reached at their own addresses: set "
                             "'mode: user' to forward ports on 127.0.0.1, or delete forwards");
            fw.clear();
            return;
        }
        const auto forwarded = [&](int guest) {
            return std::any_of(fw.begin(), fw.end(),
                               [guest](const PortForward& f) { return f.guest == guest; });
        };
        const auto host_used = [&](int host) {
            return std::any_of(fw.begin(), fw.end(),
                               [host](const PortForward& f) { return f.host == host; });
        };
        if (!forwarded(s.ssh.port)) {
            // Spaced by the number of VMs so that the shifted copies stay free too.
            int host = k_default_ssh_host_port;
            const auto n = static_cast<int>(std::max<std::size_t>(s.vms.size(), 1));
            const auto clear = [&](int h) {
                for (int k = 0; k < n; ++k)
                    for (const auto& f : fw)
                        for (int j = 0; j < n; ++j)
                            if (f.host + j == h + k)
                                return false;
                return true;
            };
            while (host + n - 1 <= 65535 && (host_used(host) || !clear(host)))
                ++host;
            fw.insert(fw.begin(), PortForward{s.ssh.port, host, source_of("network.mode").where});
        }
        std::map<int, std::pair<std::size_t, int>> bound; // host port -> (vm, guest port)
        for (std::size_t i = 0; i < s.vms.size(); ++i) {
            auto& vm = s.vms[i];
            vm.forwards.clear();
            for (const auto& f : fw) {
                const int host = f.host + static_cast<int>(i);
                if (host > 65535) {
                    m_sink.error(f.where.line > 0 ? f.where : vm.where,
                                 fmt::format("vms[{}] would forward host port {} (network.forwards "
                                             "host {} + {}), above 65535",
                                             i, host, f.host, i),
                                 "the n-th VM binds every host port + n: lower the host ports");
                    continue;
                }
                if (const auto it = bound.find(host); it != bound.end()) {
                    m_sink.error(vm.where,
                                 fmt::format("vms[{}] would forward 127.0.0.1:{} to guest port "
                                             "{}, which vms[{}] forwards to guest port {}",
                                             i, host, f.guest, it->second.first, it->second.second),
                                 fmt::format("the n-th VM binds every host port + n: space the "
                                             "host ports of network.forwards at least {} apart",
                                             s.vms.size()));
                    continue;
                }
                bound.emplace(host, std::pair{i, f.guest});
                vm.forwards.push_back({f.guest, host, f.where});
            }
        }
    }

    void check_key() {
        const auto& key = m_spec.ssh.private_key;
        if (key.empty())
            return;
        const Source src = source_of("ssh.private_key");
        const std::string shown =
            fmt::format("ssh.private_key '{}'{}", m_key_as_given,
                        src.origin == Origin::defaulted ? " (the default)" : "");
        struct stat st {};
        if (::stat(key.c_str(), &st) != 0) {
            const int err = errno;
            if (err == ENOENT || err == ENOTDIR)
                m_sink.report(m_options.require_key ? Severity::error : Severity::warning,
                              src.where, fmt::format("{} does not exist", shown),
                              "run 'labctl init' to create a key pair");
            else
                m_sink.error(src.where,
                             fmt::format("{} cannot be read: {}", shown, std::strerror(err)));
            return;
        }
        if (!S_ISREG(st.st_mode)) {
            m_sink.error(src.where, fmt::format("{} is not a file", shown),
                         "point ssh.private_key at an OpenSSH private key, e.g. "
                         ".labctl/id_ed25519");
            return;
        }
        const unsigned mode = static_cast<unsigned>(st.st_mode) & 07777U;
        if ((mode & 077U) != 0)
            m_sink.error(
                src.where,
                fmt::format("{} has mode {:04o}: group or others can access it", shown, mode),
                fmt::format("chmod 600 {}", key));
        else if (::access(key.c_str(), R_OK) != 0)
            m_sink.error(src.where,
                         fmt::format("{} cannot be read: {}", shown, std::strerror(errno)),
                         "the user running labctl must own it (chmod 600)");
        std::error_code ec;
        if (!fs::exists(key + ".pub", ec))
            m_sink.warning(src.where, fmt::format("{} has no public key next to it", shown),
                           fmt::format("recreate it: ssh-keygen -y -f {} > {}.pub", key, key));
    }

    const LoadOptions& m_options;
    detail::Sink m_sink;
    detail::Reader m_reader;
    fs::path m_base;
    LabSpec m_spec;
    std::map<std::string, Source> m_sources;
    std::vector<VmFacts> m_vm_facts;
    std::map<std::string, SourceLocation> m_deadline_where;
    std::string m_key_as_given;
    std::set<std::string> m_bad; ///< fields whose given value was rejected
    bool m_project_missing = false;
    bool m_checks_given = false;
};

fs::path absolute_path(const std::string& path) {
    std::error_code ec;
    auto p = fs::absolute(path.empty() ? fs::path(".") : fs::path(path), ec);
    return ec ? fs::path(path) : p;
}

} // namespace

LoadResult load_lab(const LoadOptions& options) {
    Loader loader(options, options.path, absolute_path(options.path));
    std::error_code ec;
    if (fs::is_directory(options.path, ec))
        return loader.fail("cannot read the lab file: it is a directory",
                           "pass the file itself, e.g. -f " +
                               (fs::path(options.path) / "lab.yaml").string());
    std::ifstream in(options.path, std::ios::binary);
    if (!in) {
        const int err = errno;
        return loader.fail(
            fmt::format("cannot read the lab file: {}", std::strerror(err ? err : ENOENT)),
            err == ENOENT || err == 0
                ? "run 'labctl init' to write one, or point -f (or LABCTL_FILE) at it"
                : "check the file's permissions");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return loader.load(text.str());
}

LoadResult load_lab_text(const std::string& text, const std::string& name,
                         const LoadOptions& options) {
    Loader loader(options, name, absolute_path(name));
    return loader.load(text);
}

std::optional<Diagnostic> check_project_name(const std::string& name) {
    auto problem = detail::check_project("project", name);
    if (!problem)
        return std::nullopt;
    return Diagnostic{Severity::error, {}, problem->message, problem->hint};
}

} // namespace labctl::config
