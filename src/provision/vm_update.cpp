#include "vm_update.hpp"

#include <fmt/format.h>

#include <sstream>
#include <thread>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/remote/session_pool.hpp>

#include "provision_parts.hpp"

namespace labctl::provision {

using namespace libvirt;

void grow_disk(const Connection& conn, virDomainPtr dom, const std::string& target,
               virStorageVolPtr vol, const std::string& name, std::uint64_t bytes) {
    const int active = dom != nullptr ? virDomainIsActive(dom) : 0;
    if (active < 0)
        throw_operation_error(conn.get(), fmt::format("reading the state of the domain of volume "
                                                      "'{}'",
                                                      name));
    // A running QEMU holds the image open: only it may change the size (and tells the guest);
    // virStorageVolResize would rewrite the header under it.
    const int rc = active == 1 ? virDomainBlockResize(dom, target.c_str(), bytes,
                                                      VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                               : virStorageVolResize(vol, bytes, 0);
    if (rc == 0)
        return;
    const LastError e = take_last_error();
    Error err = operation_error(conn.get(),
                                fmt::format("growing volume '{}' to {} ({})", name,
                                            config::format_size(bytes),
                                            active == 1 ? "virDomainBlockResize, the VM running"
                                                        : "virStorageVolResize, the VM shut off"),
                                e);
    // Disks made before labctl asked libvirt for qcow2 v3 are v2 (compat 0.10), which QEMU cannot
    // grow while they hold internal snapshots.
    // (provision replaces the hint with what it rolled back: the advice goes in the message.)
    if (e.message.find("snapshots") != std::string::npos)
        throw Error(err.code(),
                    fmt::format("{}; the disk is a qcow2 v2 image (made before labctl asked for "
                                "v3) holding snapshots, which QEMU cannot grow: delete the lab's "
                                "snapshots ('labctl snapshot list', 'labctl snapshot delete NAME') "
                                "and run again",
                                err.what()),
                    err.hint());
    throw err;
}

namespace {

void redefine_domain(const Connection& conn, virDomainPtr dom, std::string xml,
                     const std::string& name) {
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom, uuid) != 0)
        throw_operation_error(conn.get(), fmt::format("reading the UUID of domain '{}'", name));
    // Without its UUID libvirt would take the XML for another domain of the same name.
    const auto at = xml.find("</name>");
    if (at == std::string::npos)
        throw Error(ExitCode::internal, fmt::format("domain XML of '{}' has no <name>", name));
    xml.insert(at + 7, fmt::format("\n  <uuid>{}</uuid>", uuid));
    const DomainHandle redefined(
        virDomainDefineXMLFlags(conn.get(), xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
    if (!redefined)
        throw_operation_error(conn.get(), fmt::format("redefining domain '{}'", name));
}

/// True when the domain shut down by itself within `deadline`; else it is powered off.
bool shut_down_domain(const Connection& conn, virDomainPtr dom, const std::string& name,
                      std::chrono::milliseconds deadline, const std::atomic<bool>* cancelled) {
    using Clock = std::chrono::steady_clock;
    // Flags 0: libvirt picks the guest agent when the domain has one, else ACPI.
    if (virDomainShutdownFlags(dom, 0) != 0) {
        log::warn("domain '{}': shutdown refused ({}): powering it off", name,
                  take_last_error().message);
    } else {
        const auto until = Clock::now() + deadline;
        for (;;) {
            signals::check();
            if (cancelled != nullptr && cancelled->load())
                throw Error(ExitCode::interrupted,
                            fmt::format("domain '{}': restart cancelled (another VM of this run "
                                        "failed) while it shut down",
                                        name));
            const int active = virDomainIsActive(dom);
            if (active < 0)
                throw_operation_error(conn.get(),
                                      fmt::format("reading the state of domain '{}'", name));
            if (active == 0)
                return true;
            if (Clock::now() >= until)
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
        log::warn("domain '{}' did not shut down within {} s: powering it off", name,
                  std::chrono::duration_cast<std::chrono::seconds>(deadline).count());
    }
    if (virDomainDestroy(dom) != 0 && virDomainIsActive(dom) != 0)
        throw_operation_error(conn.get(), fmt::format("powering off domain '{}'", name));
    return false;
}

} // namespace

std::string redefine_and_stop(const Connection& conn, virDomainPtr dom, std::string xml,
                              Journal& journal, std::chrono::milliseconds shutdown,
                              const std::atomic<bool>* cancelled) {
    const std::string name = virDomainGetName(dom);
    const std::string old_xml =
        take_string(virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE));
    if (old_xml.empty())
        throw_operation_error(conn.get(), fmt::format("reading domain '{}'", name));
    const bool was_active = virDomainIsActive(dom) == 1;
    redefine_domain(conn, dom, std::move(xml), name);
    journal.add(
        fmt::format("the new definition of domain '{}' (the earlier one put back)", name),
        [&conn, name, old_xml, was_active] {
            const DomainHandle d(virDomainDefineXML(conn.get(), old_xml.c_str()));
            if (!d)
                throw_operation_error(conn.get(), fmt::format("redefining domain '{}'", name));
            if (was_active && virDomainIsActive(d.get()) == 0 && virDomainCreate(d.get()) != 0)
                throw_operation_error(conn.get(), fmt::format("starting domain '{}'", name));
        });
    if (!was_active)
        return "redefined";
    if (shut_down_domain(conn, dom, name, shutdown, cancelled))
        return "redefined, shut down to start with them";
    return fmt::format("redefined, powered off (no clean shutdown within {} s) to start with them",
                       std::chrono::duration_cast<std::chrono::seconds>(shutdown).count());
}

void set_domain_metadata(const Connection& conn, virDomainPtr dom,
                         const std::string& metadata_xml) {
    const std::string name = virDomainGetName(dom);
    const int active = virDomainIsActive(dom);
    unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
    if (active == 1)
        flags |= VIR_DOMAIN_AFFECT_LIVE;
    const std::string ns(k_metadata_namespace);
    const std::string prefix(k_metadata_prefix);
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, metadata_xml.c_str(), prefix.c_str(),
                             ns.c_str(), flags) != 0)
        throw_operation_error(conn.get(),
                              fmt::format("writing labctl's metadata of domain '{}'", name));
}

namespace {

// Run as root through `sh -s -- BYTES`. findmnt -v: the device without a btrfs subvolume suffix.
// growpart exits 1 for NOCHANGE (the partition already fills the disk): not an error here.
constexpr std::string_view k_grow_script = R"sh(set -eu
want=$1
src=$(findmnt -nvo SOURCE /)
fstype=$(findmnt -no FSTYPE /)
dev=$(basename "$(readlink -f "$src")")
sys=/sys/class/block/$dev
if [ ! -e "$sys" ]; then
    echo "labctl: the root file system's device $src is not a block device" >&2
    exit 3
fi
if [ -e "$sys/partition" ]; then
    disk=$(basename "$(dirname "$(readlink -f "$sys")")")
    part=$(cat "$sys/partition")
else
    disk=$dev
    part=
fi
disk_bytes() { echo $(( $(cat "/sys/class/block/$disk/size") * 512 )); }
fs_bytes() { df -B1 --output=size / | tail -n 1 | tr -d ' '; }
i=0
while [ "$(disk_bytes)" -lt "$want" ]; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "labctl: after 30 s the guest still sees /dev/$disk at $(disk_bytes) bytes, not $want" >&2
        exit 4
    fi
    sleep 0.5
done
before=$(fs_bytes)
if [ -n "$part" ]; then
    if ! command -v growpart >/dev/null; then
        echo "labctl: growpart is missing (package cloud-guest-utils): partition $part of /dev/$disk cannot grow" >&2
        exit 5
    fi
    rc=0
    growpart "/dev/$disk" "$part" || rc=$?
    [ "$rc" -le 1 ] || exit "$rc"
fi
case $fstype in
ext2 | ext3 | ext4) resize2fs "$src" ;;
xfs) xfs_growfs / ;;
btrfs) btrfs filesystem resize max / ;;
*)
    echo "labctl: a $fstype root file system cannot be grown by labctl" >&2
    exit 6
    ;;
esac
echo "labctl-grown $src $fstype $before $(fs_bytes)"
)sh";

} // namespace

FilesystemGrowth parse_growth(const std::string& output) {
    FilesystemGrowth g;
    const auto at = output.rfind("labctl-grown ");
    if (at == std::string::npos)
        return g;
    std::istringstream in(output.substr(at + 13));
    std::string before, after;
    in >> g.source >> g.fstype >> before >> after;
    const auto b = parse_u64(before), a = parse_u64(after);
    if (!b || !a)
        return {};
    g.before = *b;
    g.after = *a;
    return g;
}

FilesystemGrowth grow_guest_filesystem(const remote::ConnectOptions& ssh, std::uint64_t bytes,
                                       const std::atomic<bool>* cancelled) {
    auto session = remote::lease_session(ssh, std::chrono::seconds(30));
    remote::ExecOptions eo;
    eo.timeout = std::chrono::minutes(5);
    eo.phase = "grow file system";
    eo.sudo = true;
    eo.stdin_data = std::string(k_grow_script);
    if (cancelled != nullptr)
        eo.cancelled = [cancelled] {
            return cancelled->load();
        };
    const auto r = session->exec(fmt::format("sh -s -- {}", bytes), eo);
    const FilesystemGrowth g = parse_growth(r.out);
    if (!r.ok() || g.source.empty())
        throw Error(ExitCode::provision,
                    fmt::format("growing the root file system on {} failed ({}){}",
                                ssh.endpoint.to_string(),
                                r.timed_out ? "timed out after 5 min"
                                            : fmt::format("exit {}", r.exit_status),
                                tail_lines(r.err + r.out, 6)),
                    "the disk itself is grown and its data kept: fix the cause and run labctl "
                    "provision again (it grows the file system once more)");
    return g;
}

Change finish_disk_growth(const Connection& conn, virDomainPtr dom, const config::LabSpec& spec,
                          const config::VmSpec& vm, const remote::ConnectOptions& ssh,
                          const std::atomic<bool>* cancelled) {
    const FilesystemGrowth g = grow_guest_filesystem(ssh, vm.disk_bytes, cancelled);
    set_domain_metadata(conn, dom, domain_metadata_xml(spec, vm, false));
    return {"update",
            "filesystem",
            fmt::format("{}:{}", vm.name, g.source),
            fmt::format("root file system ({}) grown online: {} -> {}", g.fstype,
                        config::format_size(g.before), config::format_size(g.after)),
            {}};
}

} // namespace labctl::provision
