// `labctl snapshot save|list|restore|delete`: verified snapshots of the whole lab. save runs
// verify first and keeps its report with the snapshot; restore reverts every VM, waits for SSH
// and runs verify again.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/scope_guard.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/snapshot.hpp>
#include <labctl/remote/session_pool.hpp>

#include "app.hpp"
#include "lab_output.hpp"
#include "lab_verify.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {

namespace fs = std::filesystem;

struct SnapshotFlags {
    std::string name;
    bool force = false;
    int ssh_timeout = 300;
};

/// <state_dir>/snapshots/NAME/: the verify report saved with the snapshot.
fs::path snapshot_dir(const config::LabSpec& spec, const std::string& name) {
    return fs::path(spec.state_dir()) / "snapshots" / name;
}

/// "passed 8/8", "forced", or "-" when labctl holds no report for it.
std::string verify_summary(const config::LabSpec& spec, const std::string& name) {
    const auto path = snapshot_dir(spec, name) / "verify.json";
    std::error_code ec;
    if (!fs::exists(path, ec))
        return "-";
    try {
        const auto j = nlohmann::json::parse(read_file(path.string()));
        if (j.value("forced", false))
            return "forced (not verified)";
        // One host's report, or {"hosts": [...]} for several: summed.
        int passed = 0, all = 0;
        for (const auto& h : j.contains("hosts") ? j.at("hosts") : nlohmann::json::array({j})) {
            const auto& s = h.at("summary");
            passed += s.value("passed", 0);
            all += s.value("passed", 0) + s.value("failed", 0) + s.value("skipped", 0);
        }
        return fmt::format("passed {}/{}", passed, all);
    } catch (const std::exception&) {
        return "-";
    }
}

/// Every lab VM answers SSH again (a restored guest runs from the instant of its snapshot).
void wait_for_ssh(const config::LabSpec& spec, std::chrono::seconds bound) {
    for (const auto& target : resolve_targets(spec, "")) {
        log::info("snapshot: waiting for SSH on {}", target.name);
        auto lease = remote::lease_session(connect_options(spec, target), bound);
    }
}

int run_save(const Context& ctx, const SnapshotFlags& f) {
    provision::check_snapshot_name(f.name);
    const auto spec = load_spec(ctx);
    // Before verify (which takes a while), and before the report of a snapshot of that name
    // could be overwritten.
    for (const auto& s : provision::snapshot_list(spec))
        if (s.name == f.name)
            throw usage_error(fmt::format("the lab has a snapshot '{}' already", f.name),
                              fmt::format("delete it first (labctl snapshot delete {}), or "
                                          "choose another name",
                                          f.name));
    nlohmann::json report{{"forced", true}};
    if (f.force) {
        log::warn("snapshot: --force: saved without running verify");
    } else {
        log::info("snapshot: running verify before saving '{}'", f.name);
        const auto verified = verify_lab(spec);
        if (!verified.ok()) {
            print(verified.text());
            throw Error(ExitCode::verify,
                        fmt::format("verify failed: snapshot '{}' was not saved", f.name),
                        "fix the lab (the report is above), or save anyway with --force");
        }
        report = verified.json();
    }
    // The report first: a snapshot never exists without it. A failed save removes it again.
    const auto dir = snapshot_dir(spec, f.name);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot create {}: {}", dir.string(), ec.message()),
                    "check the permissions of the lab's .labctl directory");
    write_file_atomic((dir / "verify.json").string(), report.dump(2) + "\n");
    ScopeGuard remove_report([&dir] {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    });
    const auto changes = provision::snapshot_save(spec, f.name);
    remove_report.dismiss();
    if (ctx.global.json())
        print_json({{"project", spec.project},
                    {"snapshot", f.name},
                    {"changes", changes_json(changes)},
                    {"verify", report}});
    else
        print(changes_table(changes, spec.several_hosts()).render() + "\n");
    return 0;
}

int run_list(const Context& ctx) {
    const auto spec = load_spec(ctx);
    const auto list = provision::snapshot_list(spec);
    if (ctx.global.json()) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& s : list)
            out.push_back({{"name", s.name},
                           {"created", s.created},
                           {"state", s.state},
                           {"vms", s.vms},
                           {"missing", s.missing},
                           {"verify", verify_summary(spec, s.name)}});
        print_json({{"project", spec.project}, {"snapshots", out}});
        return 0;
    }
    if (list.empty()) {
        print("No snapshots.\n");
        return 0;
    }
    Table t({"NAME", "CREATED", "STATE", "VMS", "VERIFY"});
    for (const auto& s : list)
        t.add({s.name, s.created, s.state,
               s.missing.empty() ? fmt::format("{}", fmt::join(s.vms, ","))
                                 : fmt::format("{} (missing: {})", fmt::join(s.vms, ","),
                                               fmt::join(s.missing, ",")),
               verify_summary(spec, s.name)});
    print(t.render() + "\n");
    return 0;
}

int run_restore(const Context& ctx, const SnapshotFlags& f) {
    const auto spec = load_spec(ctx);
    const auto changes = provision::snapshot_restore(spec, f.name);
    if (!ctx.global.json())
        print(changes_table(changes, spec.several_hosts()).render() + "\n");
    wait_for_ssh(spec, std::chrono::seconds(f.ssh_timeout));
    log::info("snapshot: running verify on the restored lab");
    const auto verified = verify_lab(spec);
    if (ctx.global.json())
        print_json({{"project", spec.project},
                    {"snapshot", f.name},
                    {"changes", changes_json(changes)},
                    {"verify", verified.json()}});
    else
        print(verified.text());
    return verified.ok() ? 0 : to_int(ExitCode::verify);
}

int run_delete(const Context& ctx, const SnapshotFlags& f) {
    const auto spec = load_spec(ctx);
    const auto changes = provision::snapshot_delete(spec, f.name);
    std::error_code ec;
    fs::remove_all(snapshot_dir(spec, f.name), ec);
    if (ctx.global.json())
        print_json(
            {{"project", spec.project}, {"snapshot", f.name}, {"changes", changes_json(changes)}});
    else
        print(changes_table(changes, spec.several_hosts()).render() + "\n");
    return 0;
}

} // namespace

Runner register_snapshot(CLI::App& app, Context& ctx) {
    auto* snap = app.add_subcommand(
        "snapshot", "Save, list, restore and delete verified snapshots of every VM of the lab");
    snap->require_subcommand(1);
    auto flags = std::make_shared<SnapshotFlags>();
    auto* save = snap->add_subcommand(
        "save", "Run verify, then snapshot every VM (disk, memory, device state; all or none)");
    save->add_option("name", flags->name, "Snapshot name (required)")->type_name("NAME");
    save->add_flag("--force", flags->force, "Save without running verify first");
    auto* list = snap->add_subcommand("list", "The lab's snapshots, with their verify result");
    auto* restore = snap->add_subcommand(
        "restore", "Revert every VM to the snapshot, wait for SSH and run verify again");
    restore->add_option("name", flags->name, "Snapshot name (required)")->type_name("NAME");
    restore
        ->add_option("--ssh-timeout", flags->ssh_timeout,
                     "Seconds to wait for SSH on each restored VM (default 300)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 3600));
    auto* del = snap->add_subcommand("delete", "Delete the snapshot from every VM");
    del->add_option("name", flags->name, "Snapshot name (required)")->type_name("NAME");
    return [&ctx, flags, save, list, restore, del]() -> int {
        // Checked here rather than by CLI11, so that `labctl snapshot save` parses (the
        // completions' test runs every verb they offer) and the message names the verb.
        for (auto* verb : {save, restore, del})
            if (verb->parsed() && flags->name.empty())
                throw usage_error(fmt::format("labctl snapshot {} needs a NAME", verb->get_name()),
                                  fmt::format("e.g. labctl snapshot {} before-upgrade; "
                                              "labctl snapshot list shows the lab's snapshots",
                                              verb->get_name()));
        if (save->parsed())
            return run_save(ctx, *flags);
        if (list->parsed())
            return run_list(ctx);
        if (restore->parsed())
            return run_restore(ctx, *flags);
        if (del->parsed())
            return run_delete(ctx, *flags);
        throw usage_error("no snapshot command given", "run 'labctl snapshot --help'");
    };
}

} // namespace labctl::cli
