#include "app.hpp"

namespace labctl::cli {

Runner register_doctor(CLI::App& app, Context& /*ctx*/) {
    app.add_subcommand("doctor", "Check this host: KVM, libvirt, pool, network, tools, key, disk");
    return []() -> int {
        not_available("doctor");
    };
}

} // namespace labctl::cli
