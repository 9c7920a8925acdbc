#pragma once
// Judging sshd's effective settings (`sshd -T` output) against a hardening plan (pure). What the
// drop-in says is not what counts: another file in sshd_config.d (cloud-init's
// 50-cloud-init.conf, Ubuntu's 60-cloudimg-settings.conf, anything an admin adds) or a Match
// block can change a value, so the hardened host is judged by what sshd itself computes for
// labctl's connection.

#include <string>
#include <vector>

#include <labctl/harden/plan.hpp>

namespace labctl::harden {

/// What is wrong with `sshd_t_output` for `plan` and the login `user`, one line per setting
/// ("maxauthtries is '6', want '3'"); empty when sshd enforces the plan. AllowUsers must be
/// exactly the plan's users: sshd appends every AllowUsers line to the list, so a later file
/// can widen it although our drop-in is read first.
std::vector<std::string> effective_mismatches(const HardenPlan& plan, const std::string& user,
                                              const std::string& sshd_t_output);

} // namespace labctl::harden
