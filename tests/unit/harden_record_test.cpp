// The hardening record's pure parts: fingerprints, the record's text and when it matches.
// Probing and applying run against a real sshd in tests/integration/harden_cli_test.cpp.

#include <catch2/catch.hpp>

#include <labctl/core/encoding.hpp>
#include <labctl/core/version.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/harden/record.hpp>

using namespace labctl;

namespace {
struct Matching {
    harden::HardenPlan plan;
    harden::TargetFacts facts;
    std::string policy;
    Matching() {
        plan.dropin_path = "/etc/ssh/sshd_config.d/01-labctl.conf";
        plan.dropin = "PasswordAuthentication no\n";
        policy = harden::policy_fingerprint(plan, "labctl", {"labctl", "root"});
        facts.effective_sha256 =
            harden::effective_fingerprint("port 22\npasswordauthentication no\n");
        facts.applied_record = harden::to_text({std::string(labctl::version()), policy,
                                                facts.effective_sha256, "2026-12-07T08:00:00Z"});
    }
};
} // namespace

TEST_CASE("the effective fingerprint hashes sshd -T's text with one final newline, as the probe "
          "does",
          "[harden][converge]") {
    CHECK(harden::effective_fingerprint("a b\nc d\n") == sha256_hex("a b\nc d\n"));
    CHECK(harden::effective_fingerprint("a b\nc d") == sha256_hex("a b\nc d\n"));
    CHECK(harden::effective_fingerprint("a b\nc d\n\n") == sha256_hex("a b\nc d\n"));
}

TEST_CASE("the policy fingerprint follows the drop-in, the user and the locked accounts",
          "[harden][converge]") {
    const Matching m;
    auto other = m.plan;
    other.dropin += "MaxAuthTries 3\n";
    CHECK(harden::policy_fingerprint(other, "labctl", {"labctl", "root"}) != m.policy);
    CHECK(harden::policy_fingerprint(m.plan, "ops", {"labctl", "root"}) != m.policy);
    CHECK(harden::policy_fingerprint(m.plan, "labctl", {"labctl"}) != m.policy);
}

TEST_CASE("a record matches only with the same policy, labctl and effective settings, nothing to "
          "change",
          "[harden][converge]") {
    {
        const Matching m;
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy).empty());
    }
    {
        Matching m;
        m.plan.dropin_changes = true;
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) ==
              "the drop-in differs from the policy");
    }
    {
        Matching m;
        m.plan.accounts_to_lock = {"root"};
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) == "password of root not locked");
    }
    {
        Matching m;
        m.facts.applied_record.clear();
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) ==
              "no record of an earlier hardening on the target");
    }
    {
        Matching m;
        m.facts.applied_record = "{\"format\": 2}";
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) ==
              "the hardening record on the target is unreadable");
    }
    {
        Matching m;
        CHECK(harden::record_mismatch(m.facts, m.plan, "other") == "the policy changed");
    }
    {
        Matching m;
        m.facts.effective_sha256 = harden::effective_fingerprint("passwordauthentication yes\n");
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) ==
              "sshd's effective settings changed (sshd -T)");
    }
    {
        Matching m;
        m.facts.effective_sha256.clear();
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy) == "sshd -T did not answer");
    }
    {
        Matching m;
        m.facts.applied_record =
            harden::to_text({"0.0.1", m.policy, m.facts.effective_sha256, "x"});
        CHECK(harden::record_mismatch(m.facts, m.plan, m.policy).find("labctl changed") == 0);
    }
}

TEST_CASE("the probe script hashes sshd -T for the first user and reads the record",
          "[harden][converge]") {
    const auto script = harden::facts_script({"labctl", "root"});
    // For this connection's addresses (harden_probe_script_test.cpp runs it), the first user.
    CHECK(script.find("-C \"user=\"'labctl'\",host=localhost,addr=${c_addr:-127.0.0.1}") !=
          std::string::npos);
    CHECK(script.find("01-labctl.conf.labctl-applied") != std::string::npos);
    const auto f = harden::parse_facts("main_config=/etc/ssh/sshd_config\neffective_sha256=abc\n"
                                       "applied_b64=" +
                                       base64_encode("{\"format\":1}") + "\n");
    CHECK(f.effective_sha256 == "abc");
    CHECK(f.applied_record == "{\"format\":1}");
}
