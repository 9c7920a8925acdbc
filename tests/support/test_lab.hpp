#pragma once
// A lab directory for libvirt's test driver, shared by the integration tests that provision one
// (header only: the support library does not link labctl's config module).

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include <labctl/config/loader.hpp>
#include <labctl/core/process.hpp>

#include "support.hpp"

namespace labctl::test {

/// Writes images/base.qcow2 (the header of a 2 GiB qcow2), an SSH key pair in .labctl/id_ed25519
/// and lab.yaml with `yaml` into `dir`, and returns the lab loaded (REQUIREs that it loads).
inline config::LabSpec write_test_lab(const TempDir& dir, const std::string& yaml) {
    dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
    const auto key = dir.path() / ".labctl" / "id_ed25519";
    std::filesystem::create_directories(key.parent_path());
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
    config::LoadOptions o;
    o.path = dir.write("lab.yaml", yaml).string();
    const auto r = config::load_lab(o);
    for (const auto& d : r.diagnostics)
        UNSCOPED_INFO(config::format(d));
    REQUIRE(r.ok());
    return *r.spec;
}

} // namespace labctl::test
