#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/provision.hpp>

#include "app.hpp"
#include "built_image.hpp"

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
        const auto changes = provision::down(spec, opts);
        if (ctx.global.json()) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& c : changes)
                list.push_back({{"action", c.action},
                                {"kind", c.kind},
                                {"name", c.name},
                                {"detail", c.detail}});
            print_json({{"project", spec.project},
                        {"uri", spec.libvirt.uri},
                        {"changed", !changes.empty()},
                        {"changes", list}});
            return 0;
        }
        if (changes.empty()) {
            print("Nothing to remove.\n");
            return 0;
        }
        Table t({"ACTION", "KIND", "NAME", "DETAIL"});
        for (const auto& c : changes)
            t.add({c.action, c.kind, c.name, c.detail});
        print(t.render() + "\n");
        return 0;
    };
}

} // namespace labctl::cli
