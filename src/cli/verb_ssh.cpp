#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>

#include "app.hpp"
#include "targets.hpp"

namespace labctl::cli {

Runner register_ssh(CLI::App& app, Context& ctx) {
    auto vm = std::make_shared<std::string>();
    auto command = std::make_shared<std::vector<std::string>>();
    auto* sub = app.add_subcommand(
        "ssh", "Open a shell on a lab VM (or run a command) with the pinned host key");
    sub->add_option("vm", *vm, "VM name from lab.yaml")->required()->type_name("VM");
    sub->add_option("command", *command, "Command to run instead of a shell (after --)")
        ->type_name("CMD");
    return [&ctx, vm, command]() -> int {
        const auto spec = load_spec(ctx, {}, true);
        const auto targets = resolve_targets(spec, "", *vm);
        // The system ssh gives a real interactive terminal; the config pins the host key from
        // the lab's known_hosts and never disables checking.
        const auto config = write_ssh_config(spec, resolve_targets(spec, ""));
        if (!find_program("ssh"))
            throw Error(ExitCode::preflight, "ssh is not installed",
                        "install openssh-client (scripts/install-deps)");
        std::vector<std::string> argv{"ssh", "-F", config, targets.front().alias()};
        if (!command->empty()) {
            argv.push_back("--");
            argv.insert(argv.end(), command->begin(), command->end());
        }
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        std::fflush(stdout);
        std::signal(SIGPIPE, SIG_DFL); // ignored dispositions survive exec; ssh expects default
        ::execvp("ssh", cargv.data());
        throw Error(ExitCode::ssh, fmt::format("cannot run ssh: {}", std::strerror(errno)));
    };
}

} // namespace labctl::cli
