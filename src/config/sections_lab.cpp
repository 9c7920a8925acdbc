// The sections that say what runs on the VMs: vms, deploy (with preload_images) and verify
// (hardening is sections_hardening.cpp). Single values only; what spans sections is in
// cross_checks.cpp.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include <labctl/config/suggest.hpp>

#include "loader_impl.hpp"

namespace labctl::config::detail {

namespace {

// The services stack.health can probe (verify's endpoint names).
const std::vector<std::string> k_verify_services{"nginx", "api",  "grafana",  "prometheus",
                                                 "tempo", "loki", "collector"};

constexpr std::uint64_t k_mib = 1024ULL * 1024;
constexpr std::uint64_t k_min_memory = 128 * k_mib;
constexpr std::uint64_t k_min_disk = 1024 * k_mib;

const char* const k_vms_example = "e.g. vms: [{name: lab1, roles: [stack]}]";

Check check_remote_dir(std::string_view label, const std::string& v) {
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

std::string check_hint(const std::string& name) {
    if (const auto s = did_you_mean(name, known_checks()))
        return fmt::format("did you mean '{}'?", *s);
    return fmt::format("known checks: {}", fmt::join(known_checks(), ", "));
}

bool is_known_check(const std::string& name) {
    const auto& k = known_checks();
    return std::find(k.begin(), k.end(), name) != k.end();
}

} // namespace

void Loader::read_vms(const Mapping& root) {
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

void Loader::read_vm(const Entry& item) {
    VmSpec vm;
    VmFacts facts;
    vm.where = item.where;
    if (item.value.IsScalar()) {
        m_sink.error(item.where,
                     fmt::format("{} must be a mapping, got {}", item.path, describe(item.value)),
                     fmt::format("write '- name: {}' and the VM's other keys below it",
                                 item.value.Scalar()));
    } else if (const auto m = m_reader.mapping(item, &k_vm_keys,
                                               "each VM is a mapping, e.g. '- name: lab1'")) {
        read_vm_fields(*m, item, vm, facts);
    }
    m_spec.vms.push_back(std::move(vm));
    m_vm_facts.push_back(std::move(facts));
}

void Loader::read_vm_fields(const Mapping& m, const Entry& item, VmSpec& vm, VmFacts& facts) {
    if (const Entry* e = m.find("name"); !e) {
        m_sink.error(item.where, fmt::format("missing required key 'name' in {}", item.path),
                     "add 'name: <hostname>', e.g. 'name: lab1'");
    } else if (e->empty()) {
        m_sink.error(e->where, fmt::format("{} must have a value", e->path), "e.g. 'name: lab1'");
    } else if (const auto name = m_reader.string(*e)) {
        facts.name_where = e->where;
        if (auto p = check_vm_name(e->path, *name)) {
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
    if (const Entry* e = m.get("host")) {
        if (const auto name = m_reader.string(*e)) {
            vm.host = *name; // checked against hosts: by finish_hosts
            facts.host_where = e->where;
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
                    m_sink.error(role.where,
                                 fmt::format("{} '{}' is not a valid role", role.path, role.text),
                                 "roles are lowercase words such as 'stack'");
                else if (std::find(vm.roles.begin(), vm.roles.end(), role.text) == vm.roles.end())
                    vm.roles.push_back(role.text);
            }
        }
    }
}

void Loader::read_deploy(const Mapping& m) {
    auto& d = m_spec.deploy;
    read_string(m, "role", d.role, [](std::string_view label, const std::string& v) -> Check {
        const bool ok = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                   c == '.';
        });
        if (ok)
            return std::nullopt;
        return Problem{fmt::format("{} '{}' is not a valid role", label, v),
                       "roles are lowercase words such as 'stack', as in vms[].roles"};
    });
    read_string(m, "target_vm", d.target_vm, not_empty("name one of the VMs, or delete the line"));
    read_string(m, "host", d.host, check_host);
    read_string(m, "stack_dir", d.stack_dir, not_empty("e.g. stacks/lab"));
    if (read_string(m, "remote_dir", d.remote_dir, check_remote_dir))
        while (d.remote_dir.size() > 1 && d.remote_dir.back() == '/')
            d.remote_dir.pop_back();
    read_string(m, "project", d.project, check_compose_project);
    if (const Entry* e = m.get("wait_timeout"))
        if (const auto v = m_reader.duration(*e))
            d.wait_timeout = *v;
    if (read_string(m, "image_registry", d.image_registry, check_registry))
        if (!d.image_registry.empty() && d.image_registry.back() != '/')
            d.image_registry += '/';
    if (const Entry* e = m.get("preload_images"))
        read_preload(*e);
    if (const Entry* e = m.get("preload_timeout"))
        if (const auto v = m_reader.duration(*e))
            d.preload_timeout = *v;
    read_string(m, "pins", d.pins, check_pin_set);
}

void Loader::read_preload(const Entry& e) {
    auto& out = m_spec.deploy.preload_images;
    if (e.value.IsScalar()) {
        if (e.value.Scalar() == "auto")
            out = {"auto"};
        else
            m_sink.error(e.where,
                         fmt::format("{} must be a list of images or 'auto', got {}", e.path,
                                     describe(e.value)),
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
        } else if (auto p = check_image_ref(item.path, item.text)) {
            m_sink.error(item.where, std::move(*p));
        } else {
            out.push_back(item.text);
        }
    }
}

void Loader::read_verify(const Mapping& m) {
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
                else if (std::find(v.checks.begin(), v.checks.end(), item.text) != v.checks.end())
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
                                                   fmt::join(k_verify_services, ", ")));
                else if (std::find(v.services.begin(), v.services.end(), item.text) ==
                         v.services.end())
                    v.services.push_back(item.text);
            }
        }
    }
    if (const Entry* e = m.get("prometheus_jobs")) {
        if (const auto items = m_reader.strings(*e)) {
            if (items->empty())
                m_sink.error(e->where,
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
                    if (auto p = check_http_url(d.path, *url))
                        m_sink.error(d.where, std::move(*p));
                    else
                        v.endpoints[d.name] = *url;
                }
            }
        }
    }
}

} // namespace labctl::config::detail
