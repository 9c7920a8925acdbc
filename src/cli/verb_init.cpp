#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "app.hpp"

namespace fs = std::filesystem;

namespace labctl::cli {

namespace {

struct InitOptions {
    std::string project = "lab";
    std::string key; ///< default: <dir of lab file>/.labctl/id_ed25519
};

// Creates `path` with `content` only if it does not exist (core's create_file_exclusive: written
// to a temporary, fsynced, linked into place), so nothing is overwritten even when two inits race
// and no half-written file is left behind. A path that cannot be created is a usage error here.
bool write_new_file(const fs::path& path, const std::string& content, mode_t mode) {
    try {
        return create_file_exclusive(path.string(), content, mode);
    } catch (const Interrupted&) {
        throw;
    } catch (const Error& e) {
        throw Error(ExitCode::usage, e.what(), "check that the directory exists and is writable");
    }
}

} // namespace

Runner register_init(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<InitOptions>();
    auto* sub = app.add_subcommand(
        "init", "Write a commented lab.yaml and an ed25519 key pair (never overwrites anything)");
    sub->add_option("--project", opts->project, "Project name for the new lab.yaml")
        ->type_name("NAME");
    sub->add_option("--key", opts->key, "Where to create the private key")->type_name("PATH");
    return [&ctx, opts]() -> int {
        if (auto problem = config::check_project_name(opts->project))
            throw Error(ExitCode::usage, "--" + problem->message, problem->hint);
        const fs::path lab_file = ctx.global.file;
        const fs::path dir = lab_file.has_parent_path() ? lab_file.parent_path() : fs::path(".");
        const fs::path key =
            opts->key.empty() ? dir / ".labctl" / "id_ed25519" : fs::path(opts->key);
        nlohmann::json done = nlohmann::json::object();

        const std::string text =
            templates::render(templates::load("lab.yaml"), {{"project", opts->project}});
        if (write_new_file(lab_file, text, 0644)) {
            log::info("wrote {}", lab_file.string());
            done["lab_file"] = {{"path", lab_file.string()}, {"created", true}};
        } else {
            log::warn("{} exists: left unchanged", lab_file.string());
            done["lab_file"] = {{"path", lab_file.string()}, {"created", false}};
        }

        std::error_code ec;
        if (fs::exists(key, ec)) {
            log::warn("{} exists: left unchanged", key.string());
            done["key"] = {{"path", key.string()}, {"created", false}};
        } else {
            fs::create_directories(key.parent_path(), ec);
            ::chmod(key.parent_path().c_str(), 0700);
            const auto r = run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                        "labctl@" + opts->project, "-f", key.string()},
                                       {.timeout = std::chrono::seconds(30)});
            if (!r.ok())
                throw Error(ExitCode::internal,
                            fmt::format("ssh-keygen failed ({}): {}", r.exit_code, r.err),
                            "is openssh-client installed? (scripts/install-deps)");
            ::chmod(key.c_str(), 0600);
            log::info("created key pair {} (+.pub)", key.string());
            done["key"] = {{"path", key.string()}, {"created", true}};
        }
        // Jump hosts are pinned by hand (labctl pins only the guests' keys it makes): say which
        // are not yet, and how.
        std::string jump_lines;
        done["jumps"] = nlohmann::json::array();
        config::LoadOptions lo;
        lo.path = lab_file.string();
        lo.env = config::environment_snapshot();
        if (const auto loaded = config::load_lab(lo); loaded.spec)
            for (const auto& host : loaded.spec->hosts)
                if (const auto jump = loaded.spec->jump_for(host)) {
                    const auto pattern = remote::known_hosts_pattern(jump->host, jump->port);
                    const auto& kh = loaded.spec->ssh.known_hosts;
                    const bool pinned =
                        !remote::find_known_hosts(kh, jump->host, jump->port).empty();
                    done["jumps"].push_back(
                        {{"host", host.name},
                         {"jump", fmt::format("{}@{}:{}", jump->user, jump->host, jump->port)},
                         {"pinned", pinned}});
                    if (!pinned)
                        jump_lines += fmt::format(
                            "jump:     the VMs of host '{}' are reached through {}@{}:{}, whose "
                            "key is not pinned in {}: check its fingerprint out of band, then: "
                            "ssh-keygen -F '{}' | grep -v '^#' >> {}\n",
                            host.name, jump->user, jump->host, jump->port, kh, pattern, kh);
                }
        if (ctx.global.json())
            print_json(done);
        else
            print(fmt::format("lab file: {} ({})\nkey:      {} ({})\n{}next:     labctl validate "
                              "-f {} && labctl up -f {}\n",
                              lab_file.string(),
                              done["lab_file"]["created"].get<bool>() ? "created" : "kept",
                              key.string(), done["key"]["created"].get<bool>() ? "created" : "kept",
                              jump_lines, lab_file.string(), lab_file.string()));
        return 0;
    };
}

} // namespace labctl::cli
