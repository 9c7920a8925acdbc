#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/lab.hpp>

#include "app.hpp"
#include "built_image.hpp"
#include "lab_output.hpp"

namespace labctl::cli {

Runner register_down(CLI::App& app, Context& ctx) {
    auto purge = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "down", "Remove exactly what labctl created for this lab (by metadata label)");
    sub->add_flag("--purge", *purge,
                  "Also remove the base image volume (when unused) and the VMs' host keys");
    return [&ctx, purge]() -> int {
        auto spec = load_spec(ctx);
        resolve_built_image(spec, ImageNeed::cached_only); // names the base volume for --purge
        provision::DownOptions opts;
        opts.purge = *purge;
        const auto lab = provision::down_lab(spec, opts);
        // The snapshots went with their domains (down lists them): their saved verify reports
        // go too, once every host's lab is gone.
        if (lab.failures.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(std::filesystem::path(spec.state_dir()) / "snapshots", ec);
        }
        const auto& changes = lab.changes;
        if (ctx.global.json()) {
            print_json({{"project", spec.project},
                        {"uri", spec.libvirt.uri},
                        {"hosts", hosts_json(spec)},
                        {"changed", !changes.empty()},
                        {"changes", changes_json(changes)}});
        } else if (changes.empty() && lab.failures.empty()) {
            print("Nothing to remove.\n");
        } else if (!changes.empty()) {
            print(changes_table(changes, spec.several_hosts()).render() + "\n");
        }
        // The other hosts were cleaned; the failed one is the command's error.
        throw_host_failures(spec, lab.failures, "cleaned");
        return 0;
    };
}

} // namespace labctl::cli
