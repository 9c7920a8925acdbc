// `labctl console VM`: the VM's serial console on this terminal; Ctrl-] detaches.

#include <unistd.h>

#include <labctl/core/log.hpp>
#include <labctl/provision/console.hpp>

#include "app.hpp"

namespace labctl::cli {

Runner register_console(CLI::App& app, Context& ctx) {
    struct Flags {
        std::string vm;
        bool force = false;
    };
    auto flags = std::make_shared<Flags>();
    auto* sub = app.add_subcommand(
        "console", "Attach to a VM's serial console (libvirt stream); Ctrl-] detaches");
    sub->add_option("vm", flags->vm, "The lab VM")->required()->type_name("VM");
    sub->add_flag("--force", flags->force, "Take the console over from another client");
    return [&ctx, flags]() -> int {
        const auto spec = load_spec(ctx);
        provision::ConsoleOptions o;
        o.force = flags->force;
        const auto end = provision::attach_console(spec, flags->vm, o);
        // On a terminal the guest's output left the cursor anywhere: start a fresh line.
        if (::isatty(STDERR_FILENO) == 1)
            log::info("");
        log::info("console of '{}': {}", flags->vm,
                  end == provision::ConsoleEnd::detached      ? "detached"
                  : end == provision::ConsoleEnd::input_ended ? "input ended"
                                                              : "closed by the VM");
        return 0;
    };
}

} // namespace labctl::cli
