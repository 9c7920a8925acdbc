// Every file in tests/fixtures/config/bad/ is a broken lab.yaml. Each must produce exactly the
// diagnostics listed here, formatted as users see them (file:line:col, message, hint). Adding a
// fixture without an expectation fails the last test case.

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <labctl/config/loader.hpp>

#include "support.hpp"

namespace {

using labctl::config::format;
using labctl::config::load_lab;
using labctl::config::LoadOptions;

struct Expectation {
    std::string file;
    std::vector<std::string> diagnostics;
};

// The warning every fixture gets because no key pair exists next to it; the key tests cover it.
const std::string k_default_key_warning =
    ": warning: ssh.private_key '.labctl/id_ed25519' (the default) does not exist\n"
    "  hint: run 'labctl init' to create a key pair";

// clang-format off
const std::vector<Expectation> k_expectations{
    {"allow_users_without_ssh_user.yaml",
     {
         "allow_users_without_ssh_user.yaml:6:16: error: hardening.allow_users must contain the ssh user 'labctl' or labctl would lock itself out\n"
         "  hint: add 'labctl' to the list, or delete allow_users to allow only 'labctl'",
     }},
    {"cidr_full.yaml",
     {
         "cidr_full.yaml:7:5: error: no free address left in network.cidr 10.66.77.0/30 for vms[1]\n"
         "  hint: use a larger network (a smaller prefix), or give the VM an ip",
     }},
    {"cidr_host_bits.yaml",
     {
         "cidr_host_bits.yaml:4:9: error: network.cidr '10.66.77.5/24' has host bits set\n"
         "  hint: did you mean 10.66.77.0/24?",
     }},
    {"cidr_malformed.yaml",
     {
         "cidr_malformed.yaml:4:9: error: network.cidr '10.66.77/24' is not an IPv4 network\n"
         "  hint: write address/prefix, e.g. 10.66.77.0/24",
     }},
    {"cidr_prefix_range.yaml",
     {
         "cidr_prefix_range.yaml:4:9: error: network.cidr '10.66.77.0/31' has prefix /31; labctl needs /8 to /30\n"
         "  hint: a /24 leaves 253 addresses for VMs, e.g. 10.66.77.0/24",
     }},
    {"cpus_not_integer.yaml",
     {
         "cpus_not_integer.yaml:5:11: error: vms[0].cpus must be an integer, got string 'two'\n"
         "  hint: write a whole number, e.g. cpus: 4",
     }},
    {"cpus_out_of_range.yaml",
     {
         "cpus_out_of_range.yaml:5:11: error: vms[0].cpus must be between 1 and 128, got 0\n"
         "  hint: e.g. cpus: 4",
     }},
    {"cpus_quoted.yaml",
     {
         "cpus_quoted.yaml:5:11: error: vms[0].cpus must be an integer, got string '4'\n"
         "  hint: remove the quotes: cpus: 4",
     }},
    {"disk_bare_number.yaml",
     {
         "disk_bare_number.yaml:5:11: error: vms[0].disk 20 has no unit\n"
         "  hint: add a unit, e.g. '20GiB' (sizes need KiB, MiB, GiB or TiB)",
     }},
    {"disk_too_small.yaml",
     {
         "disk_too_small.yaml:5:11: error: vms[0].disk '512MiB' is less than 1 GiB\n"
         "  hint: the disk holds the system and the container images; the default is 20GiB",
     }},
    {"domain_type_typo.yaml",
     {
         "domain_type_typo.yaml:4:16: error: libvirt.domain_type 'kvmm' is not one of: kvm, qemu, auto\n"
         "  hint: did you mean 'kvm'?",
     }},
    {"duplicate_key.yaml",
     {
         "duplicate_key.yaml:5:1: error: duplicate top-level key 'project'; first defined on line 2\n"
         "  hint: delete one of them (YAML tools disagree on which one wins)",
     }},
    {"duplicate_vm_key.yaml",
     {
         "duplicate_vm_key.yaml:7:5: error: duplicate key 'memory' in vms[0]; first defined on line 5\n"
         "  hint: delete one of them (YAML tools disagree on which one wins)",
     }},
    {"duplicate_vm_name.yaml",
     {
         "duplicate_vm_name.yaml:6:11: error: duplicate VM name 'web'; first used by vms[0] on line 4\n"
         "  hint: give every VM its own name",
     }},
    {"empty.yaml",
     {
         "empty.yaml: error: the file is empty\n"
         "  hint: start from the template 'labctl init' writes, or from examples/lab.yaml",
     }},
    {"empty_vms.yaml",
     {
         "empty_vms.yaml:3:6: error: vms must list at least one VM\n"
         "  hint: e.g. vms: [{name: lab1, roles: [stack]}]",
     }},
    {"forwards_duplicate_host.yaml",
     {
         "forwards_duplicate_host.yaml:7:27: error: network.forwards[1].host 2222 is already forwarded by network.forwards[0] on line 6\n"
         "  hint: give every forward its own host port",
     }},
    {"forwards_incomplete.yaml",
     {
         "forwards_incomplete.yaml:6:7: error: network.forwards[0] needs both 'guest' and 'host'\n"
         "  hint: e.g. '- {guest: 3000, host: 3000}' (the host side binds 127.0.0.1)",
         "forwards_incomplete.yaml:7:33: error: unknown key 'proto' in network.forwards[1]\n"
         "  hint: valid keys here: guest, host",
     }},
    {"forwards_port_range.yaml",
     {
         "forwards_port_range.yaml:7:13: error: network.forwards[0].host must be between 1 and 65535, got 70000\n"
         "  hint: e.g. host: 3000",
         "forwards_port_range.yaml:8:14: error: network.forwards[1].guest must be between 1 and 65535, got 0\n"
         "  hint: e.g. guest: 3000",
     }},
    {"forwards_vms_collide.yaml",
     {
         "forwards_vms_collide.yaml:4:9: warning: network.mode 'user' gives every VM its own private network: the 2 VMs cannot reach each other\n"
         "  hint: use 'mode: nat' when the VMs must talk to each other",
         "forwards_vms_collide.yaml:10:5: error: vms[1] would forward 127.0.0.1:2223 to guest port 22, which vms[0] forwards to guest port 3000\n"
         "  hint: the n-th VM binds every host port + n: space the host ports of network.forwards at least 2 apart",
     }},
    {"forwards_with_nat.yaml",
     {
         "forwards_with_nat.yaml:6:5: error: network.forwards needs network.mode user (it is nat)\n"
         "  hint: with mode nat the VMs are reached at their own addresses: set 'mode: user' to forward ports on 127.0.0.1, or delete forwards",
     }},
    {"image_build_and_path.yaml",
     {
         "image_build_and_path.yaml:4:9: error: image.build and image.path are mutually exclusive\n"
         "  hint: image.build makes the disk, kernel and initrd itself: delete 'path', or delete 'build' to use your own files",
         "image_build_and_path.yaml:5:11: error: image.build and image.kernel are mutually exclusive\n"
         "  hint: image.build makes the disk, kernel and initrd itself: delete 'kernel', or delete 'build' to use your own files",
     }},
    {"image_build_bad_values.yaml",
     {
         "image_build_bad_values.yaml:5:12: error: image.build.suite 'Bookworm' is not a Debian suite name\n"
         "  hint: e.g. bookworm",
         "image_build_bad_values.yaml:6:22: error: image.build.packages[1] 'curl; rm -rf /' is not a Debian package name\n"
         "  hint: lowercase letters, digits, '+', '-' and '.', e.g. htop",
         "image_build_bad_values.yaml:6:40: error: image.build.packages[2] 'x' is not a Debian package name\n"
         "  hint: lowercase letters, digits, '+', '-' and '.', e.g. htop",
         "image_build_bad_values.yaml:7:5: error: unknown key 'mirror' in image.build\n"
         "  hint: valid keys here: suite, packages",
     }},
    {"image_cmdline_without_kernel.yaml",
     {
         "image_cmdline_without_kernel.yaml:5:12: error: image.cmdline needs image.kernel and image.initrd\n"
         "  hint: the kernel command line is used only with direct kernel boot: add kernel and initrd, or delete cmdline",
     }},
    {"image_kernel_without_initrd.yaml",
     {
         "image_kernel_without_initrd.yaml:5:11: error: image.kernel needs image.initrd\n"
         "  hint: direct kernel boot takes both: the initrd mounts the root file system, e.g. initrd: images/initrd.img",
     }},
    {"image_path_and_url.yaml",
     {
         "image_path_and_url.yaml:5:8: error: image.path and image.url are mutually exclusive\n"
         "  hint: keep 'path' for a local image file, or 'url' (with sha256) to download one",
     }},
    {"image_sha256_malformed.yaml",
     {
         "image_sha256_malformed.yaml:5:11: error: image.sha256 contains 'z', which is not a hexadecimal digit\n"
         "  hint: copy it from the image's SHA256SUMS, or run: sha256sum <image>",
     }},
    {"image_sha256_short.yaml",
     {
         "image_sha256_short.yaml:5:11: error: image.sha256 must be 64 hexadecimal characters, got 6\n"
         "  hint: copy it from the image's SHA256SUMS, or run: sha256sum <image>",
     }},
    {"image_url_without_sha256.yaml",
     {
         "image_url_without_sha256.yaml:4:8: error: image.url needs a checksum: image.sha256, sha512 or checksums\n"
         "  hint: e.g. 'checksums: https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS', so that a corrupt or tampered download is caught",
     }},
    {"image_url_two_checksums.yaml",
     {
         "image_url_two_checksums.yaml:6:14: error: image.sha256, sha512 and checksums are exclusive: give one\n"
         "  hint: keep the one the image's publisher gives; checksums follows a 'latest' URL when a new image is published",
     }},
    {"image_sha512_without_url.yaml",
     {
         "image_sha512_without_url.yaml:5:11: error: image.sha512 must be 128 hexadecimal characters, got 32\n"
         "  hint: copy it from the image's SHA512SUMS, or run: sha512sum <image>",
         "image_sha512_without_url.yaml:5:11: error: image.sha512 goes with image.url\n"
         "  hint: a local image.path is checked with image.sha256",
         "image_sha512_without_url.yaml:6:14: error: image.checksums 'ftp://example.org/SHA512SUMS' is not an http, https or file URL\n"
         "  hint: e.g. https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
         "image_sha512_without_url.yaml:6:14: error: image.checksums goes with image.url\n"
         "  hint: a local image.path is checked with image.sha256",
     }},
    {"ip_broadcast.yaml",
     {
         "ip_broadcast.yaml:7:9: error: vms[0].ip 10.66.77.255 is the broadcast address of 10.66.76.0/23\n"
         "  hint: pick an address from 10.66.76.2 to 10.66.77.254, or leave ip out to have one assigned",
     }},
    {"ip_duplicate.yaml",
     {
         "ip_duplicate.yaml:7:9: error: vms[1].ip 10.66.77.20 is already used by vms[0] on line 5\n"
         "  hint: give every VM its own address, or leave ip out to have one assigned",
     }},
    {"ip_gateway.yaml",
     {
         "ip_gateway.yaml:5:9: error: vms[0].ip 10.66.77.1 is the gateway of 10.66.77.0/24 (the host's side of the network)\n"
         "  hint: pick an address from 10.66.77.2 to 10.66.77.254, or leave ip out to have one assigned",
     }},
    {"ip_malformed.yaml",
     {
         "ip_malformed.yaml:5:9: error: vms[0].ip '10.66.77.300' is not an IPv4 address\n"
         "  hint: write four numbers 0-255 separated by dots, e.g. 10.66.77.10, or leave ip out to have one assigned",
     }},
    {"ip_network_address.yaml",
     {
         "ip_network_address.yaml:5:9: error: vms[0].ip 10.66.77.0 is the network address of 10.66.77.0/24\n"
         "  hint: pick an address from 10.66.77.2 to 10.66.77.254, or leave ip out to have one assigned",
     }},
    {"ip_outside_cidr.yaml",
     {
         "ip_outside_cidr.yaml:7:9: error: vms[0].ip 10.66.78.10 is outside network.cidr 10.66.77.0/24\n"
         "  hint: pick an address from 10.66.77.2 to 10.66.77.254, or leave ip out to have one assigned",
     }},
    {"memory_bad_unit.yaml",
     {
         "memory_bad_unit.yaml:5:13: error: vms[0].memory '4 gigs' is not a size\n"
         "  hint: use a number with a unit: 512MiB, 4GiB, 20G",
     }},
    {"memory_too_small.yaml",
     {
         "memory_too_small.yaml:5:13: error: vms[0].memory '64MiB' is less than 128 MiB\n"
         "  hint: a Debian cloud guest needs at least 512MiB; the lab's stack wants 4GiB or more",
     }},
    {"memory_bare_number.yaml",
     {
         "memory_bare_number.yaml:5:13: error: vms[0].memory 4096 has no unit\n"
         "  hint: add a unit, e.g. '4096MiB' (sizes need KiB, MiB, GiB or TiB)",
     }},
    {"missing_project.yaml",
     {
         "missing_project.yaml: error: missing required key 'project'\n"
         "  hint: add e.g. 'project: lab' (lowercase letters, digits and '-', starting with a letter)",
     }},
    {"missing_version.yaml",
     {
         "missing_version.yaml: error: missing required key 'version'\n"
         "  hint: add 'version: 1' as the first line",
     }},
    {"missing_vms.yaml",
     {
         "missing_vms.yaml: error: missing required key 'vms'\n"
         "  hint: add the VMs to create, e.g. vms: [{name: lab1, roles: [stack]}]",
     }},
    {"multiple_documents.yaml",
     {
         "multiple_documents.yaml:6:1: error: only one YAML document is allowed, found 2\n"
         "  hint: remove the '---' line and what follows it",
     }},
    {"nat_default_overlap.yaml",
     {
         "nat_default_overlap.yaml:4:9: warning: network.cidr 192.168.122.0/24 overlaps libvirt's 'default' network 192.168.122.0/24\n"
         "  hint: both networks cannot be active at once; pick another private range, e.g. 10.66.77.0/24",
         "nat_default_overlap.yaml:6:16: warning: ssh.private_key 'keys/missing' does not exist\n"
         "  hint: run 'labctl init' to create a key pair",
         "nat_default_overlap.yaml:9:11: error: vms[0].cpus must be between 1 and 128, got 200\n"
         "  hint: e.g. cpus: 4",
     }},
    {"network_mode_invalid.yaml",
     {
         "network_mode_invalid.yaml:4:9: error: network.mode 'bridge' is not one of: nat, user\n"
         "  hint: nat: a libvirt NAT network; user: SLIRP with ports forwarded on 127.0.0.1",
     }},
    {"pool_path_relative.yaml",
     {
         "pool_path_relative.yaml:4:14: error: libvirt.pool_path 'images' must be an absolute path\n"
         "  hint: libvirt creates the pool on the libvirt host, e.g. /var/lib/libvirt/images/lab",
     }},
    {"preload_auto_mixed.yaml",
     {
         "preload_auto_mixed.yaml:6:20: error: 'auto' must be the only entry of deploy.preload_images\n"
         "  hint: write 'preload_images: auto', or list the images yourself",
     }},
    {"private_key_is_directory.yaml",
     {
         "private_key_is_directory.yaml:4:16: error: ssh.private_key '.' is not a file\n"
         "  hint: point ssh.private_key at an OpenSSH private key, e.g. .labctl/id_ed25519",
     }},
    {"project_invalid.yaml",
     {
         "project_invalid.yaml:2:10: error: project 'My_Lab' is not a valid name\n"
         "  hint: use lowercase letters, digits and '-', starting with a letter (at most 40 characters), e.g. 'my-lab'",
     }},
    {"project_too_long.yaml",
     {
         "project_too_long.yaml:2:10: error: project 'an-observability-lab-with-a-very-long-name' is too long (42 characters, at most 40)\n"
         "  hint: use lowercase letters, digits and '-', starting with a letter (at most 40 characters)",
     }},
    {"remote_dir_root.yaml",
     {
         "remote_dir_root.yaml:6:15: error: deploy.remote_dir '/' is too close to '/'\n"
         "  hint: labctl syncs into it with rsync --delete, which empties it first: use a directory of its own such as /opt/labctl/lab",
     }},
    {"revert_seconds_duration.yaml",
     {
         "revert_seconds_duration.yaml:6:19: error: hardening.revert_seconds must be an integer, got string '2m'\n"
         "  hint: write a whole number, e.g. revert_seconds: 120",
     }},
    {"revert_seconds_too_small.yaml",
     {
         "revert_seconds_too_small.yaml:6:19: error: hardening.revert_seconds must be at least 30, got 10\n"
         "  hint: the revert must outlive labctl's reconnection check; the default is 120",
     }},
    {"roles_not_list.yaml",
     {
         "roles_not_list.yaml:5:12: error: vms[0].roles must be a list, got string 'stack'\n"
         "  hint: write it as a list: roles: [stack]",
     }},
    {"section_not_mapping.yaml",
     {
         "section_not_mapping.yaml:3:10: error: libvirt must be a mapping, got string 'qemu:///system'\n"
         "  hint: write its keys indented below 'libvirt:' (uri, pool, pool_path, domain_type)",
     }},
    {"several_problems.yaml",
     {
         "several_problems.yaml:3:10: error: project 'Lab' is not a valid name\n"
         "  hint: use lowercase letters, digits and '-', starting with a letter (at most 40 characters), e.g. 'lab'",
         "several_problems.yaml:8:11: error: vms[0].cpus must be an integer, got string 'many'\n"
         "  hint: write a whole number, e.g. cpus: 4",
         "several_problems.yaml:9:13: error: vms[0].memory '8 GB please' is not a size\n"
         "  hint: use a number with a unit: 512MiB, 4GiB, 20G",
         "several_problems.yaml:11:9: error: vms[1].ip 10.66.77.1 is the gateway of 10.66.77.0/24 (the host's side of the network)\n"
         "  hint: pick an address from 10.66.77.2 to 10.66.77.254, or leave ip out to have one assigned",
         "several_problems.yaml:13:3: error: unknown key 'wait_timout' in deploy\n"
         "  hint: did you mean 'wait_timeout'?",
     }},
    {"ssh_port_range.yaml",
     {
         "ssh_port_range.yaml:4:9: error: ssh.port must be between 1 and 65535, got 70000\n"
         "  hint: e.g. port: 22",
     }},
    {"ssh_user_bad_no_cascade.yaml",
     {
         "ssh_user_bad_no_cascade.yaml:4:9: error: ssh.user 'Admin' is not a valid user name\n"
         "  hint: use lowercase letters, digits, '_' and '-', starting with a letter or '_' (at most 32 characters)",
     }},
    {"ssh_user_root.yaml",
     {
         "ssh_user_root.yaml:4:9: error: ssh.user must not be 'root'\n"
         "  hint: hardening turns root login off, so labctl would lock itself out; use an unprivileged user with sudo, such as the default 'labctl'",
     }},
    {"syntax_bad_indent.yaml",
     {
         "syntax_bad_indent.yaml:5:4: error: invalid YAML: end of sequence not found\n"
         "  hint: check the indentation and quoting of this line and the one before it",
     }},
    {"syntax_colon_in_value.yaml",
     {
         "syntax_colon_in_value.yaml:4:12: error: invalid YAML: illegal map value\n"
         "  hint: a value that contains ': ' must be quoted, or this line is indented wrongly",
     }},
    {"syntax_tab.yaml",
     {
         "syntax_tab.yaml:5:1: error: invalid YAML: illegal tab when looking for indentation\n"
         "  hint: indent with spaces: YAML does not allow tabs for indentation",
     }},
    {"syntax_unclosed_list.yaml",
     {
         "syntax_unclosed_list.yaml:6:1: error: invalid YAML: end of sequence flow not found\n"
         "  hint: a '[' is not closed with ']'",
     }},
    {"syntax_undefined_alias.yaml",
     {
         "syntax_undefined_alias.yaml:5:11: error: invalid YAML: the referenced anchor is not defined\n"
         "  hint: define the anchor with '&name' before referring to it with '*name'",
     }},
    {"target_vm_unknown.yaml",
     {
         "target_vm_unknown.yaml:7:14: error: deploy.target_vm 'stak1' is not one of the VMs\n"
         "  hint: did you mean 'stack1'?",
     }},
    {"top_level_list.yaml",
     {
         "top_level_list.yaml:1:1: error: the top level must be a mapping, got a list\n"
         "  hint: start with 'version: 1', 'project: <name>' and 'vms:' at column 1",
     }},
    {"unknown_key_alias.yaml",
     {
         "unknown_key_alias.yaml:5:5: error: unknown key 'ram' in vms[0]\n"
         "  hint: did you mean 'memory'?",
     }},
    {"unknown_key_no_suggestion.yaml",
     {
         "unknown_key_no_suggestion.yaml:5:5: error: unknown key 'color' in vms[0]\n"
         "  hint: valid keys here: name, cpus, memory, disk, ip, roles, host",
     }},
    {"unknown_key_typo.yaml",
     {
         "unknown_key_typo.yaml:5:1: error: unknown top-level key 'netwrok'\n"
         "  hint: did you mean 'network'?",
     }},
    {"unsupported_version.yaml",
     {
         "unsupported_version.yaml:1:10: error: unsupported version 2\n"
         "  hint: this labctl reads version 1 files; write 'version: 1' or use a labctl that knows version 2",
     }},
    {"user_mode_warnings.yaml",
     {
         "user_mode_warnings.yaml:4:9: warning: network.mode 'user' gives every VM its own private network: the 2 VMs cannot reach each other\n"
         "  hint: use 'mode: nat' when the VMs must talk to each other",
         "user_mode_warnings.yaml:5:9: warning: network.cidr 192.168.122.0/24 is not used with network.mode user: every VM gets 10.0.2.15/24 on QEMU's own network\n"
         "  hint: delete network.cidr; the VMs are reached through network.forwards on 127.0.0.1",
         "user_mode_warnings.yaml:7:25: warning: network.forwards[0].host 80 is a privileged port\n"
         "  hint: QEMU runs unprivileged and may not bind it; pick a port from 1024 up, e.g. 8080",
         "user_mode_warnings.yaml:12:5: error: vms[1] would forward 127.0.0.1:3001 to guest port 3000, which vms[0] forwards to guest port 3001\n"
         "  hint: the n-th VM binds every host port + n: space the host ports of network.forwards at least 2 apart",
         "user_mode_warnings.yaml:13:9: warning: vms[1].ip 192.168.122.1 is not used with network.mode user: the VM's address is 10.0.2.15\n"
         "  hint: delete the ip line",
     }},
    {"verify_deadlines_unknown_check.yaml",
     {
         "verify_deadlines_unknown_check.yaml:7:5: error: unknown check 'trace-e2e' in verify.deadlines\n"
         "  hint: did you mean 'trace.e2e'?",
         "verify_deadlines_unknown_check.yaml:8:19: error: verify.deadlines.stack.health 'soon' is not a duration\n"
         "  hint: use a number with a unit: 90s, 10m, 1h30m (a bare number means seconds)",
     }},
    {"verify_endpoint_not_url.yaml",
     {
         "verify_endpoint_not_url.yaml:7:14: error: verify.endpoints.grafana 'localhost:3000' is not an http(s) URL\n"
         "  hint: e.g. http://127.0.0.1:3000",
     }},
    {"verify_unknown_check.yaml",
     {
         "verify_unknown_check.yaml:6:26: error: unknown check 'trace.e2' in verify.checks\n"
         "  hint: did you mean 'trace.e2e'?",
         "verify_unknown_check.yaml:6:36: error: unknown check 'metrics' in verify.checks\n"
         "  hint: known checks: stack.health, prometheus.targets, prometheus.sli, trace.e2e, logs.correlated, grafana.provisioned, nginx.resilience, ssh.hardened, host.hardened",
     }},
    {"verify_unknown_service.yaml",
     {
         "verify_unknown_service.yaml:6:19: error: unknown service 'grafna' in verify.services\n"
         "  hint: did you mean 'grafana'?",
         "verify_unknown_service.yaml:6:27: error: unknown service 'web' in verify.services\n"
         "  hint: known services: nginx, api, grafana, prometheus, tempo, loki, collector",
         "verify_unknown_service.yaml:7:20: error: verify.prometheus_jobs is empty: prometheus.targets needs a job\n"
         "  hint: delete the key to expect every job of the full lab",
     }},
    {"version_quoted.yaml",
     {
         "version_quoted.yaml:1:10: error: version must be an integer, got string '1'\n"
         "  hint: remove the quotes: version: 1",
     }},
    {"vm_name_invalid.yaml",
     {
         "vm_name_invalid.yaml:4:11: error: vms[0].name 'Web_1' is not a valid hostname\n"
         "  hint: use lowercase letters, digits and '-', starting with a letter (at most 63 characters), e.g. 'web-1'",
     }},
    {"vm_name_missing.yaml",
     {
         "vm_name_missing.yaml:4:5: error: missing required key 'name' in vms[0]\n"
         "  hint: add 'name: <hostname>', e.g. 'name: lab1'",
     }},
    {"vm_not_mapping.yaml",
     {
         "vm_not_mapping.yaml:4:5: error: vms[0] must be a mapping, got string 'lab1'\n"
         "  hint: write '- name: lab1' and the VM's other keys below it",
     }},
    {"vms_not_list.yaml",
     {
         "vms_not_list.yaml:4:3: error: vms must be a list, got a mapping\n"
         "  hint: start each VM with '- ', e.g. '  - name: lab1'",
     }},
    {"wait_timeout_bad.yaml",
     {
         "wait_timeout_bad.yaml:6:17: error: deploy.wait_timeout '10 minutes' is not a duration\n"
         "  hint: use a number with a unit: 90s, 10m, 1h30m (a bare number means seconds)",
     }},
};
// clang-format on

std::filesystem::path bad_dir() {
    return labctl::test::fixture("config/bad");
}

/// Loads bad/<name> and returns its diagnostics formatted, with the fixture directory removed
/// from the paths so they read as if labctl ran inside it.
std::vector<std::string> diagnostics_of(const std::string& name, bool& ok) {
    LoadOptions options;
    options.path = (bad_dir() / name).string();
    const auto result = load_lab(options);
    ok = result.ok();
    const std::string prefix = bad_dir().string() + "/";
    std::vector<std::string> out;
    for (const auto& d : result.diagnostics) {
        std::string text = format(d);
        for (auto pos = text.find(prefix); pos != std::string::npos; pos = text.find(prefix))
            text.erase(pos, prefix.size());
        if (text != name + k_default_key_warning)
            out.push_back(text);
    }
    return out;
}

} // namespace

TEST_CASE("each bad fixture yields exactly its expected diagnostics", "[config][fixtures]") {
    for (const auto& e : k_expectations) {
        CAPTURE(e.file);
        bool ok = true;
        const auto actual = diagnostics_of(e.file, ok);
        CHECK_FALSE(ok);
        CHECK(actual == e.diagnostics);
    }
}

TEST_CASE("there are at least 30 bad fixtures and every one has an expectation",
          "[config][fixtures]") {
    std::set<std::string> on_disk;
    for (const auto& entry : std::filesystem::directory_iterator(bad_dir()))
        if (entry.is_regular_file())
            on_disk.insert(entry.path().filename().string());
    std::set<std::string> expected;
    for (const auto& e : k_expectations)
        CHECK(expected.insert(e.file).second); // listed once
    CHECK(on_disk.size() >= 30);
    for (const auto& f : on_disk) {
        CAPTURE(f);
        CHECK(expected.count(f) == 1);
    }
    for (const auto& f : expected) {
        CAPTURE(f);
        CHECK(on_disk.count(f) == 1);
    }
}
