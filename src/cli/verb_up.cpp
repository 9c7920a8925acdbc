#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/terminal.hpp>
#include <labctl/deploy/stack_env.hpp>

#include "app.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {

const std::vector<std::string> k_stages{"provision", "harden", "deploy", "verify"};

struct UpOptions {
    std::vector<std::string> stages;
    std::vector<std::string> skip;
    std::string from;
    bool keep_on_failure = false;
    std::string junit;
    bool yes = false;
};

struct StageRun {
    std::string stage;
    std::string result; ///< ok, failed (exit N), skipped
    std::chrono::milliseconds elapsed{0};
};

std::vector<std::string> select_stages(const UpOptions& o) {
    std::vector<std::string> out;
    bool started = o.from.empty();
    for (const auto& s : k_stages) {
        started = started || s == o.from;
        const bool chosen =
            o.stages.empty() || std::find(o.stages.begin(), o.stages.end(), s) != o.stages.end();
        const bool skipped = std::find(o.skip.begin(), o.skip.end(), s) != o.skip.end();
        if (started && chosen && !skipped)
            out.push_back(s);
    }
    if (out.empty())
        throw usage_error("--stage/--skip/--from leave no stage to run",
                          "stages run in the order provision, harden, deploy, verify");
    return out;
}

// The address users open: LAB_HOST (as in the original lab) wins, then deploy.host, then the
// target VM's address.
std::string lab_host(const config::LabSpec& spec) {
    // deploy.host already holds LAB_HOST (the loader's environment layer), as [USER@]HOST[:PORT].
    if (!spec.deploy.host.empty()) {
        const auto host = remote::parse_endpoint(spec.deploy.host, {"", 22, "x"}).host;
        return host.find(':') == std::string::npos ? host : "[" + host + "]";
    }
    if (const auto* vm = spec.find_vm(spec.deploy.target_vm))
        return spec.network.mode == "nat" ? vm->ip : "127.0.0.1";
    return "127.0.0.1";
}

/// The URLs point at the target VM (not at LAB_HOST or deploy.host).
bool uses_target_vm(const config::LabSpec& spec) {
    return spec.deploy.host.empty();
}

std::string timing_table(const std::vector<StageRun>& runs) {
    Table t({"STAGE", "RESULT", "TIME"});
    std::chrono::milliseconds total{0};
    for (const auto& r : runs) {
        t.add({r.stage, r.result, format_duration(r.elapsed)});
        total += r.elapsed;
    }
    t.add({"total", "", format_duration(total)});
    return t.render();
}

} // namespace

Runner register_up(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<UpOptions>();
    auto* sub = app.add_subcommand(
        "up", "Provision, harden, deploy and verify the lab (idempotent, resumable)");
    sub->add_option("--stage", opts->stages,
                    "Run only this stage (repeatable): provision, harden, deploy, verify")
        ->check(one_of(k_stages))
        ->type_name("STAGE");
    sub->add_option("--skip", opts->skip, "Skip this stage (repeatable)")
        ->check(one_of(k_stages))
        ->type_name("STAGE");
    sub->add_option("--from", opts->from, "Resume from this stage")
        ->check(one_of(k_stages))
        ->type_name("STAGE");
    sub->add_flag("--keep-on-failure", opts->keep_on_failure,
                  "Keep what a failed provision created (for debugging)");
    sub->add_option("--junit", opts->junit, "Write verify's JUnit XML report here")
        ->type_name("FILE");
    sub->add_flag("-y,--yes", opts->yes,
                  "Apply changes that restart a running VM or lose data without asking");
    return [&ctx, opts]() -> int {
        const auto stages = select_stages(*opts);
        // Fail on a broken lab file before any stage starts.
        const auto spec = load_spec(ctx, {}, true);
        ctx.up = {true, opts->keep_on_failure, opts->junit, opts->yes};

        std::vector<StageRun> runs;
        for (std::size_t i = 0; i < stages.size(); ++i) {
            const auto& stage = stages[i];
            signals::check();
            log::info("==> [{}/{}] {}", i + 1, stages.size(), stage);
            const auto t0 = std::chrono::steady_clock::now();
            auto elapsed = [&] {
                return std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0);
            };
            int rc = 0;
            results_to_stderr(true);
            try {
                rc = ctx.runners.at(stage)();
                results_to_stderr(false);
            } catch (const Error& e) {
                results_to_stderr(false);
                runs.push_back(
                    {stage, fmt::format("failed (exit {})", to_int(e.code())), elapsed()});
                std::fprintf(stderr, "%s", timing_table(runs).c_str());
                throw;
            }
            runs.push_back(
                {stage, rc == 0 ? "ok" : fmt::format("failed (exit {})", rc), elapsed()});
            log::info("<== {} {} in {}", stage, rc == 0 ? "done" : "failed",
                      format_duration(runs.back().elapsed));
            if (rc != 0) {
                std::fprintf(stderr, "%s", timing_table(runs).c_str());
                return rc;
            }
        }

        struct Shown {
            const char* name;
            const char* service;
            int port;
        };
        const Shown shown[] = {{"frontend", "nginx", 8080},
                               {"grafana", "grafana", 3000},
                               {"prometheus", "prometheus", 9090},
                               {"tempo", "tempo", 3200}};
        std::vector<int> ports;
        for (const auto& u : shown)
            ports.push_back(u.port);
        // The URLs of one VM running the stack (or of LAB_HOST / deploy.host).
        const auto urls_of = [&](const std::string& vm_name) {
            std::string host = lab_host(spec);
            if (uses_target_vm(spec))
                if (const auto* vm = spec.find_vm(vm_name))
                    host = spec.network.mode == "nat" ? vm->ip : "127.0.0.1";
            // mode user (and no other host named): the forwarded host ports on 127.0.0.1.
            const auto forwarded = uses_target_vm(spec) ? vm_endpoints(spec, vm_name)
                                                        : std::map<std::string, std::string>{};
            std::vector<std::pair<std::string, std::string>> out;
            for (const auto& u : shown) {
                const auto it = forwarded.find(u.service);
                out.emplace_back(u.name,
                                 it == forwarded.end() ? fmt::format("http://{}:{}", host, u.port)
                                 : it->second == "http://127.0.0.1:0"
                                     ? fmt::format("(guest port {} is not forwarded)", u.port)
                                     : it->second);
            }
            return out;
        };
        const auto urls = urls_of(spec.deploy.target_vm);
        // The stack on several VMs (deploy.role): the others' URLs too.
        std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> more;
        if (uses_target_vm(spec))
            for (const auto* vm : spec.deploy_vms())
                if (vm->name != spec.deploy.target_vm)
                    more.emplace_back(vm->name, urls_of(vm->name));
        // Behind the jump host those addresses answer only there: say how to reach them.
        const auto hint = uses_target_vm(spec) ? jump_url_hint(spec, spec.deploy.target_vm, ports)
                                               : std::string();
        // Where Grafana's generated admin password is (the password itself is never printed).
        std::string password_file = deploy::grafana_password_file(spec.state_dir());
        if (!std::filesystem::exists(password_file))
            password_file.clear();
        if (ctx.global.json()) {
            nlohmann::json j{{"stages", nlohmann::json::array()},
                             {"urls", nlohmann::json::object()}};
            for (const auto& r : runs)
                j["stages"].push_back(
                    {{"stage", r.stage},
                     {"result", r.result},
                     {"seconds", static_cast<double>(r.elapsed.count()) / 1000.0}});
            for (const auto& [name, url] : urls)
                j["urls"][name] = url;
            for (const auto& [vm, vm_urls] : more)
                for (const auto& [name, url] : vm_urls)
                    j["more_urls"][vm][name] = url;
            if (!hint.empty())
                j["urls_hint"] = hint;
            if (!password_file.empty())
                j["grafana_admin_password_file"] = password_file;
            print_json(j);
        } else {
            std::string text = "\n" + timing_table(runs) + "\n";
            for (const auto& [name, url] : urls)
                text += fmt::format("{:<11} {}\n", name, url);
            for (const auto& [vm, vm_urls] : more) {
                text += fmt::format("{:<11} the stack also runs on VM '{}':\n", "", vm);
                for (const auto& [name, url] : vm_urls)
                    text += fmt::format("{:<11} {}\n", name, url);
            }
            if (!hint.empty())
                text += fmt::format("{:<11} {}\n", "", hint);
            if (!password_file.empty())
                text += fmt::format("{:<11} user admin, password in {} (anonymous visitors are "
                                    "Viewers)\n",
                                    "", password_file);
            print(text);
        }
        return 0;
    };
}

} // namespace labctl::cli
