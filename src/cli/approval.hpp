#pragma once
// The question provision asks before a change that restarts a running VM or loses data
// (provision::Plan::disruptive): none with --yes; on a terminal the changes and "Apply? [y/N]";
// elsewhere (CI, a pipe) a refusal that lists them and names --yes.

#include <functional>

#include <labctl/provision/plan.hpp>

namespace labctl::cli {

/// ProvisionOptions::approve for this command. Error(usage) when refused or not answered within
/// 10 minutes; Error(interrupted) on Ctrl-C while it asks.
std::function<void(const provision::Plan&)> approval(bool yes);

} // namespace labctl::cli
