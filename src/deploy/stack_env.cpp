#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::deploy {

namespace fs = std::filesystem;

std::string grafana_password_file(const std::string& state_dir) {
    return (fs::path(state_dir) / "grafana-admin-password").string();
}

std::optional<std::string> read_secret(const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        if (errno == ENOENT)
            return std::nullopt;
        throw Error(ExitCode::preflight,
                    fmt::format("cannot read the secret file {}: {}", file, std::strerror(errno)),
                    "check the file's permissions");
    }
    if ((st.st_mode & 077) != 0)
        log::warn("{} is readable by other users (mode {:o}): chmod 600 it", file,
                  st.st_mode & 0777);
    std::ifstream in(file);
    std::string value;
    if (!in || !std::getline(in, value) || value.empty())
        throw Error(ExitCode::preflight,
                    fmt::format("the secret file {} is unreadable or empty", file),
                    "delete it and run the command again: labctl makes a new one (a deployed "
                    "Grafana keeps the password it started with)");
    return value;
}

std::string ensure_secret(const std::string& file) {
    if (auto existing = read_secret(file))
        return *existing;
    const auto dir = fs::path(file).parent_path();
    std::error_code ec;
    if (!dir.empty() && fs::create_directories(dir, ec))
        fs::permissions(dir, fs::perms::owner_all, ec);
    if (ec)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot create {}: {}", dir.string(), ec.message()),
                    "check the directory's permissions");
    // Another run may win the race: then its value is the one both use.
    if (create_file_exclusive(file, random_token(24) + "\n", 0600))
        log::info("generated a new secret in {} (it is never printed)", file);
    return read_secret(file).value();
}

namespace {

/// True when one of the stack's compose files names `variable` (a stack without Grafana gets no
/// Grafana password, and no file is created for it).
bool stack_uses(const std::string& stack_dir, const std::string& variable) {
    for (const char* name :
         {"docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"}) {
        std::ifstream in(fs::path(stack_dir) / name);
        if (!in)
            continue;
        const std::string text{std::istreambuf_iterator<char>(in), {}};
        if (text.find(variable) != std::string::npos)
            return true;
    }
    return false;
}

} // namespace

std::string pin_set_file(const config::LabSpec& spec) {
    if (spec.deploy.pins.empty())
        return {};
    return (fs::path(spec.deploy.stack_dir) / "pins" / (spec.deploy.pins + ".env")).string();
}

ComposeEnv stack_compose_env(const config::LabSpec& spec, bool create_secrets) {
    ComposeEnv env;
    if (const auto file = pin_set_file(spec); !file.empty())
        env.vars = read_env_file(file);
    if (!spec.deploy.image_registry.empty())
        env.vars["IMAGE_REGISTRY"] = spec.deploy.image_registry;
    if (stack_uses(spec.deploy.stack_dir, k_grafana_password_variable)) {
        const auto file = grafana_password_file(spec.state_dir());
        if (create_secrets)
            env.secrets[k_grafana_password_variable] = ensure_secret(file);
        else if (auto value = read_secret(file))
            env.secrets[k_grafana_password_variable] = *value;
    }
    return env;
}

void apply_grafana_password(remote::Session& session, const ComposeFacts& facts,
                            const ComposeOptions& options,
                            const std::vector<ServiceState>& services) {
    const auto secret = options.env.secrets.find(k_grafana_password_variable);
    const bool runs_grafana =
        std::any_of(services.begin(), services.end(), [](const ServiceState& s) {
            return s.service == "grafana" && s.state == "running";
        });
    if (secret == options.env.secrets.end() || !runs_grafana)
        return;
    auto cmd = compose_command(facts.command(), options.remote_dir, options.project, options.env,
                               "exec -T grafana grafana cli admin reset-admin-password "
                               "--password-from-stdin");
    // The first lines feed compose's own variables; what follows reaches grafana cli's stdin.
    cmd.stdin_data = cmd.stdin_data.value_or("") + secret->second + "\n";
    const auto r = session.exec(
        cmd.command,
        {.timeout = std::chrono::minutes(2), .stdin_data = cmd.stdin_data, .sudo = options.sudo});
    if (!r.ok())
        throw Error(
            ExitCode::deploy,
            fmt::format("Grafana did not take the generated admin password on {} (exit {}): "
                        "{}",
                        session.endpoint().host, r.exit_status, r.err.empty() ? r.out : r.err),
            "see 'docker compose logs grafana' on the target");
    log::info("{}grafana: admin password set from {}", options.log_prefix,
              "the lab's generated secret");
}

} // namespace labctl::deploy
