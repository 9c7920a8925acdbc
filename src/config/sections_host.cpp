// The sections that say how the VMs are made and reached: libvirt, network (with its forwards),
// image (with its build) and ssh. Single values only; what spans sections is in cross_checks.cpp.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <map>

#include <labctl/core/text.hpp>

#include "loader_impl.hpp"

namespace labctl::config::detail {

namespace {

const std::vector<std::string> k_network_modes{"nat", "user"};
const std::vector<std::string> k_image_formats{"qcow2", "raw"};

bool is_bare_number(const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Check check_cidr(std::string_view label, const std::string& v) {
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

} // namespace

void Loader::read_libvirt(const Mapping& m) {
    auto& lv = m_spec.libvirt;
    read_string(m, "uri", lv.uri, check_libvirt_uri);
    read_string(m, "pool", lv.pool, check_pool);
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

// hosts: name -> {uri, pool, pool_path, domain_type, jump}. Only what is written is read here;
// the defaults from the libvirt section and ssh.jump are filled in by finish_hosts, after the
// environment and the flags (LABCTL_POOL applies to every host that names no pool).
void Loader::read_hosts(const Mapping& root) {
    const Entry* e = root.find("hosts");
    if (!e)
        return;
    m_hosts_given = true;
    record(e->path, e->where, Origin::file);
    const auto map = m_reader.mapping(*e, nullptr,
                                      "map host names to their libvirt URI, e.g. 'hosts: "
                                      "{kvm1: {uri: qemu+ssh://admin@kvm1/system}}'");
    if (!map)
        return;
    if (map->entries.empty())
        m_sink.error(e->where, "hosts is empty",
                     "name at least one host with its uri, or delete 'hosts' to use libvirt.uri");
    for (const auto& h : map->entries)
        read_host(h);
}

void Loader::read_host(const Entry& e) {
    HostEntry host;
    host.spec.name = e.name;
    host.spec.where = e.key_where;
    bool name_ok = true;
    if (auto p = check_vm_name(e.path, e.name)) {
        m_sink.error(e.key_where, fmt::format("{} '{}' is not a valid host name", e.path, e.name),
                     "lowercase letters, digits and '-', e.g. 'kvm1'");
        name_ok = false;
    }
    const auto m = m_reader.mapping(e, &k_host_keys,
                                    fmt::format("write its keys indented below '{}:' ({})", e.name,
                                                fmt::join(k_host_keys, ", ")));
    if (!m)
        return;
    auto& lv = host.spec.libvirt;
    if (const Entry* u = m->find("uri"); !u || u->empty())
        m_sink.error(u ? u->where : e.key_where, fmt::format("host '{}' has no uri", e.name),
                     "e.g. 'uri: qemu+ssh://admin@kvm1.example.org/system' or 'uri: "
                     "qemu:///system'");
    else if (read_string(*m, "uri", lv.uri, check_libvirt_uri))
        host.valid = name_ok;
    if (const Entry* u = m->find("uri"))
        host.uri_where = u->where;
    host.has_pool = read_string(*m, "pool", lv.pool, check_pool);
    host.has_pool_path = read_string(
        *m, "pool_path", lv.pool_path, [](std::string_view label, const std::string& v) {
            return !v.empty() && v.front() == '/'
                       ? Check()
                       : Problem{fmt::format("{} '{}' must be an absolute path", label, v),
                                 "a directory on that libvirt host, e.g. "
                                 "/var/lib/libvirt/images/lab"};
        });
    host.has_domain_type = read_string(
        *m, "domain_type", lv.domain_type,
        choice(k_domain_types, "kvm needs /dev/kvm on that host; qemu emulates; auto uses kvm "
                               "when it is usable"));
    host.has_jump = read_string(*m, "jump", host.spec.jump, check_jump);
    m_hosts.push_back(std::move(host));
}

void Loader::read_network(const Mapping& m) {
    auto& net = m_spec.network;
    read_string(m, "name", net.name, check_network_name);
    read_string(m, "mode", net.mode,
                choice(k_network_modes, "nat: a libvirt NAT network; user: SLIRP with ports "
                                        "forwarded on 127.0.0.1"));
    read_string(m, "cidr", net.cidr, check_cidr);
    read_string(m, "domain", net.domain, check_domain);
    if (const Entry* e = m.find("forwards"))
        read_forwards(*e);
}

void Loader::read_forwards(const Entry& e) {
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

void Loader::read_image(const Mapping& m) {
    auto& img = m_spec.image;
    read_string(m, "path", img.path,
                not_empty("give the image file, e.g. .labctl/images/debian-12.qcow2"));
    read_string(m, "url", img.url, check_image_url);
    if (read_string(m, "sha256", img.sha256, check_sha256))
        img.sha256 = lower(img.sha256);
    if (read_string(m, "sha512", img.sha512, check_sha512))
        img.sha512 = lower(img.sha512);
    read_string(m, "checksums", img.checksums, [](std::string_view label, const std::string& v) {
        auto problem = check_image_url(label, v);
        if (problem)
            problem->hint = "e.g. https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS";
        return problem;
    });
    read_string(m, "format", img.format,
                choice(k_image_formats, "qcow2 (Debian's cloud images) or raw"));
    read_string(m, "kernel", img.kernel, not_empty("give the kernel file, e.g. images/vmlinuz"));
    read_string(m, "initrd", img.initrd, not_empty("give the initrd file, e.g. images/initrd.img"));
    read_string(m, "cmdline", img.cmdline,
                not_empty(fmt::format("e.g. '{}', or delete the line", k_default_cmdline)));
    if (const Entry* e = m.find("build"))
        read_build(*e);
    check_image_combinations(m);
    read_image_url_checks(m);
}

void Loader::read_build(const Entry& e) {
    const auto m = m_reader.mapping(e, &k_build_keys,
                                    "e.g. 'build: {suite: bookworm, packages: [htop]}', or "
                                    "'build: {}' for the defaults");
    if (!m)
        return;
    ImageBuildSpec build;
    read_string(*m, "suite", build.suite, [](std::string_view label, const std::string& v) {
        const bool ok = !v.empty() && v.size() <= 32 && std::all_of(v.begin(), v.end(), [](char c) {
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
                const bool ok = t.size() >= 2 && std::isalnum(static_cast<unsigned char>(t[0])) &&
                                std::all_of(t.begin(), t.end(), [](char c) {
                                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                           c == '+' || c == '-' || c == '.';
                                });
                if (!ok)
                    m_sink.error(item.where,
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

void Loader::check_image_combinations(const Mapping& m) {
    const Entry* kernel = m.get("kernel");
    const Entry* initrd = m.get("initrd");
    const Entry* cmdline = m.get("cmdline");
    const Entry* build = m.find("build");
    if (build != nullptr) {
        for (const char* key : {"path", "url", "kernel", "initrd"})
            if (const Entry* other = m.get(key))
                m_sink.error(other->where,
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

void Loader::read_image_url_checks(const Mapping& m) {
    const Entry* url = m.get("url");
    if (url && m.get("path"))
        m_sink.error(url->where, "image.path and image.url are mutually exclusive",
                     "keep 'path' for a local image file, or 'url' (with sha256) to download "
                     "one");
    const std::vector<const Entry*> digests{m.get("sha256"), m.get("sha512"), m.get("checksums")};
    const auto given =
        std::count_if(digests.begin(), digests.end(), [](const Entry* e) { return e != nullptr; });
    if (url && !m.get("path") && given == 0)
        m_sink.error(url->where, "image.url needs a checksum: image.sha256, sha512 or checksums",
                     "e.g. 'checksums: https://cloud.debian.org/images/cloud/bookworm/latest/"
                     "SHA512SUMS', so that a corrupt or tampered download is caught");
    if (url && given > 1)
        for (const Entry* e : digests)
            if (e != nullptr && e != *std::find_if(digests.begin(), digests.end(),
                                                   [](const Entry* d) { return d != nullptr; }))
                m_sink.error(e->where, "image.sha256, sha512 and checksums are exclusive: give one",
                             "keep the one the image's publisher gives; checksums follows a "
                             "'latest' URL when a new image is published");
    if (!url)
        for (const char* key : {"sha512", "checksums"})
            if (const Entry* e = m.get(key))
                m_sink.error(e->where, fmt::format("image.{} goes with image.url", key),
                             "a local image.path is checked with image.sha256");
}

void Loader::read_ssh(const Mapping& m) {
    auto& ssh = m_spec.ssh;
    read_string(m, "user", ssh.user, check_ssh_user);
    read_string(m, "private_key", ssh.private_key,
                not_empty("e.g. .labctl/id_ed25519 (the public key is the same path + .pub)"));
    read_string(m, "known_hosts", ssh.known_hosts, not_empty("e.g. .labctl/known_hosts"));
    if (const Entry* e = m.get("port"))
        if (auto v = m_reader.integer_in(*e, 1, 65535, "22"))
            ssh.port = static_cast<int>(*v);
    read_string(m, "jump", ssh.jump, check_jump);
    read_string(m, "jump_key", ssh.jump_key,
                not_empty("e.g. ~/.ssh/id_ed25519, the key the jump host accepts"));
}

} // namespace labctl::config::detail
