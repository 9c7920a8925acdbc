// The cloud-init seed for an official cloud image (Debian 12/13 genericcloud, Ubuntu 24.04), read
// against what their cloud-init does with it:
// - ssh_pwauth: false makes cloud-init write "PasswordAuthentication no" into
//   sshd_config.d/50-cloud-init.conf (the main file when sshd_config has no Include of that
//   directory) and restart ssh only if it is active
//   (canonical/cloud-init@24.4:cloudinit/config/cc_set_passwords.py handle_ssh_pwauth); true
//   would write "yes" there, which our drop-in (01-) still overrides, but nothing should ask.
// - ssh_keys given: cloud-init writes those host keys and generates none
//   (canonical/cloud-init@24.4:cloudinit/config/cc_ssh.py, "if 'ssh_keys' in cfg ... else"
//   generate), after ssh_deletekeys removed the image's.
// - growpart left at its default mode auto: without growpart or gpart (not every genericcloud
//   build has cloud-guest-utils) cloud-init only logs at debug level and carries on
//   (canonical/cloud-init@25.1:cloudinit/config/cc_growpart.py handle), so `cloud-init status`
//   stays clean where an explicit mode would raise.

#include <catch2/catch.hpp>

#include <labctl/config/loader.hpp>
#include <labctl/provision/seed.hpp>

#include "support.hpp"

using namespace labctl;
using labctl::test::contains;

namespace {

provision::SeedFiles cloud_image_seed() {
    const auto result = config::load_lab_text(R"(version: 1
project: lab
image:
  path: /srv/noble-server-cloudimg-amd64.img
vms:
  - name: lab1
)",
                                              "/nonexistent/lab/lab.yaml");
    for (const auto& d : result.diagnostics)
        UNSCOPED_INFO(d.message);
    REQUIRE(result.ok());
    const auto& spec = *result.spec;
    REQUIRE_FALSE(spec.image.labctl_built());
    return provision::render_seed(spec, spec.vms.at(0), "ssh-ed25519 AAAAC3Nza-test alice@host",
                                  {"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n"
                                   "-----END OPENSSH PRIVATE KEY-----",
                                   "ssh-ed25519 AAAAC3Nza-host lab1@lab"});
}

} // namespace

TEST_CASE("the seed turns password logins off, so cloud-init writes PasswordAuthentication no "
          "into 50-cloud-init.conf",
          "[provision][seed][cloud-image]") {
    const auto seed = cloud_image_seed();
    CHECK(contains(seed.user_data, "\nssh_pwauth: false\n"));
    CHECK_FALSE(contains(seed.user_data, "ssh_pwauth: true"));
    CHECK(contains(seed.user_data, "\ndisable_root: true\n"));
    CHECK(contains(seed.user_data, "    lock_passwd: true\n"));
    // Only our user: the image's default user (ubuntu, debian) is created only when the users
    // list names "default".
    CHECK_FALSE(contains(seed.user_data, "- default"));
}

TEST_CASE("the seed replaces the image's host keys with the pinned ed25519 key only",
          "[provision][seed][cloud-image]") {
    const auto seed = cloud_image_seed();
    CHECK(contains(seed.user_data, "\nssh_deletekeys: true\n"));
    CHECK(contains(seed.user_data, "\nssh_keys:\n  ed25519_private: |\n"));
    CHECK(contains(seed.user_data, "  ed25519_public: ssh-ed25519 AAAAC3Nza-host lab1@lab\n"));
    CHECK_FALSE(contains(seed.user_data, "rsa_private"));
    CHECK_FALSE(contains(seed.user_data, "ssh_genkeytypes"));
}

TEST_CASE("the seed leaves growpart in auto mode, where an image without growpart is no error",
          "[provision][seed][cloud-image]") {
    const auto seed = cloud_image_seed();
    CHECK_FALSE(contains(seed.user_data, "growpart"));
    CHECK_FALSE(contains(seed.user_data, "resize_rootfs"));
}
