#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <sstream>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/converge.hpp>
#include <labctl/deploy/tree.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::deploy {

namespace {

nlohmann::json container_json(const ServiceState& c) {
    return {{"service", c.service},
            {"container", c.container_id},
            {"state", c.state},
            {"exit_code", c.exit_code},
            {"health", c.health}};
}

ServiceState container_from(const nlohmann::json& j) {
    ServiceState c;
    c.service = j.at("service").get<std::string>();
    c.container_id = j.at("container").get<std::string>();
    c.state = j.at("state").get<std::string>();
    c.exit_code = j.at("exit_code").get<int>();
    c.health = j.at("health").get<std::string>();
    return c;
}

// Section markers of the observation script's output.
constexpr const char* k_record = "@@labctl-record";
constexpr const char* k_tree = "@@labctl-tree";
constexpr const char* k_compose = "@@labctl-compose";
constexpr const char* k_containers = "@@labctl-containers";
constexpr const char* k_end = "@@labctl-end";

std::string short_id(const std::string& id) {
    const auto colon = id.find(':');
    return id.substr(colon == std::string::npos ? 0 : colon + 1, 12);
}

} // namespace

nlohmann::json to_json(const DeployRecord& r) {
    nlohmann::json services = nlohmann::json::array();
    for (const auto& s : r.services)
        services.push_back(container_json(s));
    return {{"format", DeployRecord::k_format},
            {"labctl", r.inputs.labctl_version},
            {"project", r.inputs.project},
            {"remote_dir", r.inputs.remote_dir},
            {"tree", r.inputs.tree},
            {"env", r.inputs.env},
            {"compose_inputs", r.inputs.compose_inputs},
            {"images", r.inputs.images},
            {"remote_tree", r.remote_tree},
            {"compose", {{"flavor", r.compose_flavor}, {"version", r.compose_version}}},
            {"auto_images", r.auto_images},
            {"services", services},
            {"applied_at", r.applied_at}};
}

std::optional<DeployRecord> record_from_json(const std::string& text) {
    try {
        const auto j = nlohmann::json::parse(text);
        if (!j.is_object() || j.value("format", 0) != DeployRecord::k_format)
            return std::nullopt;
        DeployRecord r;
        r.inputs.labctl_version = j.at("labctl").get<std::string>();
        r.inputs.project = j.at("project").get<std::string>();
        r.inputs.remote_dir = j.at("remote_dir").get<std::string>();
        r.inputs.tree = j.at("tree").get<std::string>();
        r.inputs.env = j.at("env").get<std::string>();
        r.inputs.compose_inputs = j.at("compose_inputs").get<std::string>();
        r.inputs.images = j.at("images").get<std::map<std::string, std::string>>();
        r.remote_tree = j.at("remote_tree").get<std::string>();
        r.compose_flavor = j.at("compose").at("flavor").get<std::string>();
        r.compose_version = j.at("compose").at("version").get<std::string>();
        r.auto_images = j.at("auto_images").get<std::vector<std::string>>();
        for (const auto& s : j.at("services"))
            r.services.push_back(container_from(s));
        r.applied_at = j.at("applied_at").get<std::string>();
        return r;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

std::string record_path(const std::string& remote_dir) {
    return remote_dir + "/.labctl/deployed.json";
}

std::string observe_command(const std::string& remote_dir, const std::string& project,
                            const std::vector<std::string>& excludes) {
    // One read-only round trip: the record, the tree's digest, which compose there is, and every
    // container of the project (id, state, status, service). Compose v2 is found by its plugin
    // file where the Docker CLI looks for plugins (docker/cli@v20.10.24:
    // cli-plugins/manager/manager_unix.go, and ~/.docker/cli-plugins), not by starting it.
    return fmt::format(
        "echo {rec}; cat {path} 2>/dev/null | head -c 1000000; echo; echo {tree}; {digest}; "
        "echo {compose}; for d in \"$HOME/.docker/cli-plugins\" /usr/local/lib/docker/cli-plugins "
        "/usr/local/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins "
        "/usr/libexec/docker/cli-plugins; do [ -x \"$d/docker-compose\" ] && {{ echo v2; break; "
        "}}; "
        "done; command -v docker-compose >/dev/null 2>&1 && echo v1 || echo v1-; "
        "echo {containers}; {inspect}; echo; "
        "echo {end}",
        fmt::arg("rec", k_record), fmt::arg("path", shell_quote(record_path(remote_dir))),
        fmt::arg("tree", k_tree),
        fmt::arg("digest", remote_tree_fingerprint_command(remote_dir, excludes)),
        fmt::arg("compose", k_compose), fmt::arg("containers", k_containers),
        fmt::arg("inspect", ps_command(project) + " || echo @@labctl-no-docker"),
        fmt::arg("end", k_end));
}

TargetObservation parse_observation(const std::string& out) {
    TargetObservation o;
    std::istringstream in(out);
    std::string section;
    std::string record_text;
    std::string containers_text;
    bool ended = false;
    for (std::string line; std::getline(in, line);) {
        if (line == "@@labctl-no-docker") {
            o.docker_answered = false;
            continue;
        }
        if (line.rfind("@@labctl-", 0) == 0) {
            section = line;
            ended = ended || line == k_end;
            continue;
        }
        if (section == k_record) {
            record_text += line;
        } else if (section == k_tree) {
            if (!trim(line).empty())
                o.remote_tree = std::string(trim(line));
        } else if (section == k_compose) {
            if (line == "v2")
                o.compose_v2 = true;
            else if (line == "v1")
                o.compose_v1 = true;
        } else if (section == k_containers) {
            containers_text += line + "\n";
        }
    }
    if (!ended || o.remote_tree.empty())
        throw Error(ExitCode::deploy, "the target's answer to the converge check was cut short",
                    "run the deploy again; 'labctl ssh' shows whether the target is healthy");
    o.containers = parse_ps(containers_text);
    o.record_present = !trim(record_text).empty();
    if (o.record_present)
        o.record = record_from_json(record_text);
    return o;
}

TargetObservation observe(remote::Session& session, const std::string& remote_dir,
                          const std::string& project, const std::vector<std::string>& excludes,
                          bool sudo) {
    const auto r = session.exec(
        observe_command(remote_dir, project, excludes),
        {.timeout = std::chrono::seconds(120), .phase = "converge check", .sudo = sudo});
    if (!r.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("the converge check on {} failed{}: {}", session.endpoint().host,
                                r.timed_out ? " (timed out after 120s)"
                                            : fmt::format(" (exit {})", r.exit_status),
                                trim(r.err.empty() ? r.out : r.err)),
                    "is Docker running on the target? ('labctl ssh <vm> -- sudo docker info')");
    return parse_observation(r.out);
}

std::vector<std::string> drift(const TargetObservation& seen, const DeployInputs& now) {
    std::vector<std::string> why;
    if (!seen.record_present)
        return {"no record of an earlier deploy on the target"};
    if (!seen.record)
        return {"the deploy record on the target is unreadable or from another labctl format"};
    const auto& rec = *seen.record;
    const auto& was = rec.inputs;
    if (was.labctl_version != now.labctl_version)
        why.push_back(
            fmt::format("labctl changed ({} → {})", was.labctl_version, now.labctl_version));
    if (was.project != now.project || was.remote_dir != now.remote_dir)
        why.push_back("the compose project or the remote directory changed");
    if (was.tree != now.tree)
        why.push_back("the stack directory changed here");
    if (was.env != now.env)
        why.push_back("the compose variables or secrets changed");
    if (was.compose_inputs != now.compose_inputs && was.tree == now.tree && was.env == now.env)
        why.push_back("the compose inputs changed");
    for (const auto& [image, id] : now.images) {
        const auto it = was.images.find(image);
        if (it == was.images.end())
            why.push_back(fmt::format("image {} was not preloaded last time", image));
        else if (it->second != id)
            why.push_back(fmt::format("image {} changed here ({} → {})", image,
                                      it->second.empty() ? "missing" : short_id(it->second),
                                      id.empty() ? "missing" : short_id(id)));
    }
    for (const auto& [image, id] : was.images)
        if (!now.images.count(image))
            why.push_back(fmt::format("image {} is no longer preloaded", image));
    if (!seen.docker_answered)
        why.push_back("docker ps failed on the target");
    if (seen.remote_tree == "absent")
        why.push_back(fmt::format("{} is missing on the target", now.remote_dir));
    else if (seen.remote_tree != rec.remote_tree)
        why.push_back(fmt::format("files under {} were changed on the target", now.remote_dir));
    if (rec.compose_flavor == "v2" ? !seen.compose_v2 : !seen.compose_v1)
        why.push_back(fmt::format("the compose used last time ({}) is gone from the target",
                                  rec.compose_flavor));
    for (const auto& want : rec.services) {
        const auto it =
            std::find_if(seen.containers.begin(), seen.containers.end(),
                         [&](const ServiceState& c) { return c.service == want.service; });
        if (it == seen.containers.end()) {
            why.push_back(fmt::format("service {} has no container", want.service));
            continue;
        }
        // Same container, same image (a container's image never changes). Its state must be
        // the recorded one: a one-shot service done (exited 0), any other running and healthy;
        // a service that stopped is drift whatever its exit status (nginx exits 0 on TERM).
        if (it->container_id != want.container_id)
            why.push_back(fmt::format("service {}'s container was replaced ({} → {})", want.service,
                                      short_id(want.container_id), short_id(it->container_id)));
        else if (want.completed() ? !it->completed() : !(it->state == "running" && it->serving()))
            why.push_back(it->state == "exited" ? fmt::format("service {} exited with status {}",
                                                              want.service, it->exit_code)
                          : it->state == "running"
                              ? fmt::format("service {} is {}", want.service,
                                            it->health.empty() ? "running" : it->health)
                              : fmt::format("service {} is {}", want.service, it->state));
    }
    for (const auto& c : seen.containers)
        if (std::none_of(rec.services.begin(), rec.services.end(),
                         [&](const ServiceState& s) { return s.container_id == c.container_id; }) &&
            std::none_of(rec.services.begin(), rec.services.end(),
                         [&](const ServiceState& s) { return s.service == c.service; }))
            why.push_back(fmt::format("service {} was not deployed by labctl", c.service));
    return why;
}

bool only_stack_files_changed(const TargetObservation& seen, const DeployInputs& now) {
    if (!seen.record || seen.record->inputs.tree == now.tree)
        return false;
    auto same_files = now;
    same_files.tree = seen.record->inputs.tree;
    return drift(seen, same_files).empty();
}

void write_record(remote::Session& session, const std::string& remote_dir,
                  const DeployRecord& record, const std::vector<std::string>& excludes, bool sudo) {
    // One round trip: the target computes its tree's digest and completes the record with it
    // (the JSON arrives on stdin without its last member's value), written to a temporary and
    // renamed, root-only.
    auto json = to_json(record);
    json.erase("remote_tree");
    std::string head = json.dump();
    head.pop_back(); // the closing brace: the shell appends "remote_tree":"<digest>"}
    head += ",\"remote_tree\":";
    const auto dir = shell_quote(remote_dir + "/.labctl");
    const auto file = shell_quote(record_path(remote_dir));
    const auto tmp = shell_quote(record_path(remote_dir) + ".tmp");
    const auto r = session.exec(
        fmt::format("set -e; umask 077; mkdir -p {0}; chmod 0700 {0}; t=$({1}); "
                    "{{ cat; printf '\"%s\"}}\\n' \"$t\"; }} > {2}; mv -f {2} {3}",
                    dir, remote_tree_fingerprint_command(remote_dir, excludes), tmp, file),
        {.timeout = std::chrono::seconds(120),
         .phase = "deploy record",
         .stdin_data = head,
         .sudo = sudo});
    if (!r.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("cannot write the deploy record {} on {}{}: {}",
                                record_path(remote_dir), session.endpoint().host,
                                r.timed_out ? " (timed out after 120s)" : "", trim(r.err)),
                    "the next deploy then runs in full; is the target's disk full?");
}

} // namespace labctl::deploy
