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
        if (ctx.global.json())
            print_json(done);
        else
            print(fmt::format("lab file: {} ({})\nkey:      {} ({})\nnext:     labctl validate "
                              "-f {} && labctl up -f {}\n",
                              lab_file.string(),
                              done["lab_file"]["created"].get<bool>() ? "created" : "kept",
                              key.string(), done["key"]["created"].get<bool>() ? "created" : "kept",
                              lab_file.string(), lab_file.string()));
        return 0;
    };
}

} // namespace labctl::cli
