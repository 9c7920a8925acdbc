#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include <labctl/core/encoding.hpp>
#include <labctl/core/version.hpp>
#include <labctl/harden/record.hpp>

namespace labctl::harden {

std::string policy_fingerprint(const HardenPlan& plan, const std::string& user,
                               const std::vector<std::string>& locked_accounts) {
    return sha256_hex(fmt::format("dropin {}\n{}\nuser {}\nlocked {}\n", plan.dropin_path,
                                  plan.dropin, user, fmt::join(locked_accounts, " ")));
}

std::string effective_fingerprint(const std::string& sshd_t_output) {
    // The probe hashes `printf '%s\n' "$(sshd -T ...)"`: the output with one final newline.
    std::string text = sshd_t_output;
    while (!text.empty() && text.back() == '\n')
        text.pop_back();
    return sha256_hex(text + "\n");
}

std::string to_text(const HardenRecord& r) {
    return nlohmann::json{{"format", HardenRecord::k_format},
                          {"labctl", r.labctl_version},
                          {"policy", r.policy},
                          {"effective", r.effective},
                          {"applied_at", r.applied_at}}
               .dump() +
           "\n";
}

std::optional<HardenRecord> record_from_text(const std::string& text) {
    try {
        const auto j = nlohmann::json::parse(text);
        if (!j.is_object() || j.value("format", 0) != HardenRecord::k_format)
            return std::nullopt;
        return HardenRecord{j.at("labctl").get<std::string>(), j.at("policy").get<std::string>(),
                            j.at("effective").get<std::string>(),
                            j.at("applied_at").get<std::string>()};
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

std::string record_mismatch(const TargetFacts& facts, const HardenPlan& plan,
                            const std::string& policy) {
    if (facts.cached && facts.stamp_now != facts.stamp)
        return "the OpenSSH binaries changed";
    if (plan.dropin_changes)
        return "the drop-in differs from the policy";
    if (!plan.accounts_to_lock.empty())
        return fmt::format("password{} of {} not locked",
                           plan.accounts_to_lock.size() == 1 ? "" : "s",
                           fmt::join(plan.accounts_to_lock, ", "));
    if (facts.applied_record.empty())
        return "no record of an earlier hardening on the target";
    const auto record = record_from_text(facts.applied_record);
    if (!record)
        return "the hardening record on the target is unreadable";
    if (record->labctl_version != labctl::version())
        return fmt::format("labctl changed ({} → {})", record->labctl_version, labctl::version());
    if (record->policy != policy)
        return "the policy changed";
    if (facts.effective_sha256.empty())
        return "sshd -T did not answer";
    if (record->effective != facts.effective_sha256)
        return "sshd's effective settings changed (sshd -T)";
    return {};
}

} // namespace labctl::harden
