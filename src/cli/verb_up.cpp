#include "app.hpp"

namespace labctl::cli {

namespace {
struct UpOptions {
    std::vector<std::string> stages;
    std::vector<std::string> skip;
    std::string from;
    bool keep_on_failure = false;
    std::string junit;
};
} // namespace

Runner register_up(CLI::App& app, Context& /*ctx*/) {
    auto opts = std::make_shared<UpOptions>();
    auto* sub = app.add_subcommand(
        "up", "Provision, harden, deploy and verify the lab (idempotent, resumable)");
    const std::vector<std::string> stages{"provision", "harden", "deploy", "verify"};
    sub->add_option("--stage", opts->stages,
                    "Run only this stage (repeatable): provision, harden, deploy, verify")
        ->check(one_of(stages))
        ->type_name("STAGE");
    sub->add_option("--skip", opts->skip, "Skip this stage (repeatable)")
        ->check(one_of(stages))
        ->type_name("STAGE");
    sub->add_option("--from", opts->from, "Resume from this stage")
        ->check(one_of(stages))
        ->type_name("STAGE");
    sub->add_flag("--keep-on-failure", opts->keep_on_failure,
                  "Keep what a failed provision created (for debugging)");
    sub->add_option("--junit", opts->junit, "Write verify's JUnit XML report here")
        ->type_name("FILE");
    return []() -> int {
        not_available("up");
    };
}

} // namespace labctl::cli
