#include <fmt/format.h>

#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/provision.hpp>

#include "app.hpp"
#include "approval.hpp"
#include "built_image.hpp"
#include "downloaded_image.hpp"
#include "lab_output.hpp"

namespace labctl::cli {

namespace {

struct ProvisionOptions {
    bool keep_on_failure = false;
    bool strict = false;
    int parallel = 4;
    int ip_timeout = 180;
    int ssh_timeout = 300;
    int cloud_init_timeout = 900;
    bool yes = false;
};

int run_provision(const Context& ctx, const ProvisionOptions& opts) {
    auto spec = load_spec(ctx, {}, true);
    // image.build: build the image (or take it from the cache) before anything in libvirt.
    resolve_built_image(spec, ImageNeed::build);
    provision::ProvisionOptions p;
    // image.url: downloaded only if a base volume must be uploaded.
    p.fetch_image = image_fetcher(spec.image);
    p.keep_on_failure = ctx.up.active ? ctx.up.keep_on_failure : opts.keep_on_failure;
    p.strict = opts.strict;
    // A restart of a running VM or a change that loses data is asked about first.
    p.approve = approval(ctx.up.active ? ctx.up.yes : opts.yes);
    p.parallel = opts.parallel;
    p.deadlines.ip = std::chrono::seconds(opts.ip_timeout);
    p.deadlines.ssh = std::chrono::seconds(opts.ssh_timeout);
    p.deadlines.cloud_init = std::chrono::seconds(opts.cloud_init_timeout);
    for (const auto& h : spec.hosts)
        log::info("provisioning lab '{}' at {}{}", spec.project, h.libvirt.uri,
                  spec.several_hosts() ? fmt::format(" (host '{}')", h.name) : "");
    const auto result = provision::provision_lab(spec, p);
    const bool several = spec.several_hosts();
    if (ctx.global.json()) {
        nlohmann::json vms = nlohmann::json::array();
        for (const auto& vm : result.vms)
            vms.push_back({{"vm", vm.vm},
                           {"host", vm.host},
                           {"domain", vm.domain},
                           {"ip", vm.ip},
                           {"ip_source", vm.ip_source},
                           {"waited", vm.waited},
                           {"cloud_init", vm.cloud_init}});
        print_json({{"project", spec.project},
                    {"uri", spec.libvirt.uri},
                    {"hosts", hosts_json(spec)},
                    {"changed", !result.changes.empty()},
                    {"changes", changes_json(result.changes)},
                    {"vms", vms},
                    {"notes", result.notes}});
        return 0;
    }
    std::string out;
    if (result.changes.empty()) {
        out += "No changes: the lab is up to date.\n";
    } else {
        out += changes_table(result.changes, several).render();
    }
    Table vms = several ? Table({"HOST", "VM", "DOMAIN", "ADDRESS", "CLOUD-INIT"})
                        : Table({"VM", "DOMAIN", "ADDRESS", "CLOUD-INIT"});
    for (const auto& vm : result.vms) {
        std::vector<std::string> row{vm.vm, vm.domain, vm.ip,
                                     vm.waited ? vm.cloud_init : "not waited for"};
        if (several)
            row.insert(row.begin(), vm.host);
        vms.add(std::move(row));
    }
    out += "\n" + vms.render() + "\n";
    print(out);
    return 0;
}

} // namespace

Runner register_provision(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<ProvisionOptions>();
    auto* sub = app.add_subcommand(
        "provision", "Create the network, volumes, cloud-init seed and VMs; wait for IP, SSH and "
                     "cloud-init");
    sub->add_flag("--keep-on-failure", opts->keep_on_failure,
                  "Keep what a failed run created (for debugging)");
    sub->add_flag("-y,--yes", opts->yes,
                  "Apply changes that restart a running VM or lose data without asking");
    sub->add_flag("--strict", opts->strict, "Treat cloud-init warnings (status 2) as failures");
    sub->add_option("--parallel", opts->parallel, "VMs provisioned at once")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    sub->add_option("--ip-timeout", opts->ip_timeout, "Seconds to wait for a VM's IP address")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    sub->add_option("--ssh-timeout", opts->ssh_timeout, "Seconds to wait for SSH")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    sub->add_option("--cloud-init-timeout", opts->cloud_init_timeout,
                    "Seconds to wait for cloud-init to finish")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    return [&ctx, opts]() -> int {
        return run_provision(ctx, *opts);
    };
}

} // namespace labctl::cli
