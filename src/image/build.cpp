#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/scope_guard.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/image/build.hpp>
#include <labctl/image/recipe.hpp>

#include "cache_lock.hpp"

namespace labctl::image {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_manifest = "manifest.json";

std::string seconds(std::chrono::steady_clock::duration d) {
    return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count());
}

/// Mount points at or below `dir` (mmdebstrap bind-mounts /dev, /proc, /sys into the tree while
/// it runs; remove_all must never descend into one of those).
std::vector<std::string> mounts_below(const fs::path& dir) {
    std::vector<std::string> out;
    std::ifstream in("/proc/self/mountinfo");
    const std::string prefix = dir.string();
    for (std::string line; std::getline(in, line);) {
        std::istringstream f(line);
        std::string id, parent, devno, root, mount_point;
        f >> id >> parent >> devno >> root >> mount_point;
        if (mount_point == prefix || mount_point.rfind(prefix + "/", 0) == 0)
            out.push_back(mount_point);
    }
    return out;
}

/// Removes a build directory, but never through a mount point that is still there.
void remove_build_dir(const fs::path& dir) {
    std::error_code ec;
    if (!fs::exists(dir, ec))
        return;
    if (!mounts_below(dir).empty()) {
        run_process({"umount", "--recursive", "--lazy", dir.string()}, {.timeout = 60s});
        if (const auto left = mounts_below(dir); !left.empty()) {
            log::error("not removing {}: {} is still mounted; unmount it, then delete the "
                       "directory",
                       dir.string(), left.front());
            return;
        }
    }
    fs::remove_all(dir, ec);
    if (ec)
        log::warn("could not remove {}: {}", dir.string(), ec.message());
}

/// The tool's full path. Also looks in the sbin directories, which a non-root PATH often lacks
/// (mkfs.ext4 lives there).
std::string require_tool(const std::string& program, const std::string& package) {
    if (auto p = find_program(program))
        return *p;
    for (const char* dir : {"/usr/sbin", "/sbin"})
        if (::access((fs::path(dir) / program).c_str(), X_OK) == 0)
            return (fs::path(dir) / program).string();
    throw Error(
        ExitCode::preflight,
        fmt::format("'{}' was not found in PATH (Debian package {})", program, package),
        fmt::format("install it: apt-get install {} (or run scripts/install-deps)", package));
}

/// Runs one build step's tool; a failure is a host problem (mirror, disk space), exit 3.
void run_step(const std::string& phase, const std::vector<std::string>& argv, const fs::path& dir,
              std::chrono::minutes timeout, std::string_view hint) {
    ProcessOptions opts;
    opts.timeout = timeout;
    // Ctrl-C reaches the tool through run_process (SIGTERM to its group); mmdebstrap then
    // unmounts what it bind-mounted into the tree, which may take a while before SIGKILL.
    opts.kill_grace = std::chrono::seconds(30);
    // Tool chatter is detail; the step lines at info level mark the phases, and the tool's
    // latest line is the live line (an event line at most every 10 s without a terminal).
    Progress progress("image " + phase);
    progress.show("started");
    opts.on_stderr_line = [&progress](const std::string& l) {
        log::debug("image: {}", l);
        if (!trim(l).empty())
            progress.update(std::string(trim(l)));
    };
    opts.on_stdout_line = opts.on_stderr_line;
    const auto r = run_process(argv, opts);
    signals::check();
    if (r.ok())
        return;
    const auto why = r.timed_out ? fmt::format("timed out after {} min", timeout.count())
                                 : fmt::format("exited with {}", r.exit_code);
    throw Error(ExitCode::preflight,
                fmt::format("{} {} (building in {}){}", fs::path(argv.front()).filename().string(),
                            why, dir.string(), tail_lines(r.err + r.out, 15)),
                std::string(hint));
}

void write_file(const fs::path& p, const std::string& content, unsigned mode) {
    fs::create_directories(p.parent_path());
    std::error_code ec;
    // A dangling symlink (Debian's resolv.conf can be one) would otherwise be followed.
    if (fs::is_symlink(p, ec))
        fs::remove(p, ec);
    const auto fail = [&p](int err) {
        throw Error(ExitCode::preflight,
                    fmt::format("cannot write {}: {}", p.string(), std::strerror(err)),
                    "check the free space of the cache directory");
    };
    Fd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.fd < 0)
        fail(errno);
    for (std::size_t done = 0; done < content.size();) {
        const ssize_t n = ::write(fd.fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail(errno);
        done += static_cast<std::size_t>(n);
    }
    const int fd_number = fd.fd;
    fd.fd = -1;
    if (::close(fd_number) != 0)
        fail(errno);
    fs::permissions(p, static_cast<fs::perms>(mode), fs::perm_options::replace);
}

/// The customisation step: files, links, and what must not be baked into an image that many
/// guests boot from.
void customise(const fs::path& tree) {
    for (const auto& f : tree_files())
        write_file(tree / f.path, f.content, f.mode);
    for (const auto& l : tree_links()) {
        const auto p = tree / l.path;
        fs::create_directories(p.parent_path());
        std::error_code ec;
        fs::remove(p, ec);
        fs::create_symlink(l.target, p);
    }
    std::error_code ec;
    // Host keys: every guest must get its own (the cloud-init seed provides them).
    for (const auto& e : fs::directory_iterator(tree / "etc/ssh", ec))
        if (e.path().filename().string().rfind("ssh_host_", 0) == 0)
            fs::remove(e.path(), ec);
    // An empty machine-id makes systemd generate one per guest at first boot (not "uninitialized",
    // which would also run first-boot presets).
    write_file(tree / "etc/machine-id", "", 0444);
    if (!fs::is_symlink(tree / "var/lib/dbus/machine-id", ec))
        fs::remove(tree / "var/lib/dbus/machine-id", ec);
    // apt lists and caches are ~60 MB and stale the day after; the guest never runs apt offline.
    for (const auto* dir : {"var/lib/apt/lists", "var/cache/apt"})
        for (const auto& e : fs::directory_iterator(tree / dir, ec))
            if (e.is_regular_file(ec))
                fs::remove(e.path(), ec);
    // Logs of the build itself mean nothing on the guest.
    for (const auto& e : fs::recursive_directory_iterator(tree / "var/log", ec))
        if (e.is_regular_file(ec))
            fs::resize_file(e.path(), 0, ec);
}

struct KernelFiles {
    fs::path vmlinuz;
    fs::path initrd;
    std::string version;
};

KernelFiles find_kernel(const fs::path& tree) {
    std::vector<std::string> versions;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(tree / "boot", ec)) {
        const auto name = e.path().filename().string();
        if (name.rfind("vmlinuz-", 0) == 0 && e.is_regular_file(ec))
            versions.push_back(name.substr(8));
    }
    if (versions.empty())
        throw Error(ExitCode::internal, "the built tree has no kernel in /boot",
                    "linux-image-cloud-amd64 should have installed one; run with -v for "
                    "mmdebstrap's output");
    // More than one can only come from an extra package; the newest is what the guest would boot.
    std::sort(versions.begin(), versions.end());
    const auto v = versions.back();
    KernelFiles k{tree / "boot" / ("vmlinuz-" + v), tree / "boot" / ("initrd.img-" + v), v};
    if (!fs::is_regular_file(k.initrd, ec))
        throw Error(ExitCode::internal, fmt::format("the built tree has no initrd for {}", v),
                    "initramfs-tools should have made one; run with -v for mmdebstrap's output");
    return k;
}

BuiltImage paths_in(const fs::path& dir) {
    BuiltImage b;
    b.disk = dir / "disk.qcow2";
    b.kernel = dir / "vmlinuz";
    b.initrd = dir / "initrd.img";
    return b;
}

/// The cached image when its manifest matches the key and the files are all there.
std::optional<BuiltImage> load_cached(const fs::path& dir, const std::string& key) {
    std::error_code ec;
    std::ifstream in(dir / k_manifest);
    if (!in)
        return std::nullopt;
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || j.value("inputs_hash", "") != key)
        return std::nullopt;
    auto b = paths_in(dir);
    b.cmdline = j.value("cmdline", "");
    b.sha256 = j.value("sha256", "");
    b.size_bytes = j.value("size_bytes", std::uint64_t{0});
    b.inputs_hash = key;
    b.cached = true;
    if (!fs::is_regular_file(b.kernel, ec) || !fs::is_regular_file(b.initrd, ec) ||
        fs::file_size(b.disk, ec) != b.size_bytes || ec)
        return std::nullopt;
    return b;
}

} // namespace

namespace {

/// Options with their defaults filled in (mirror, cache directory), as the cache key needs them.
BuildOptions resolved(const BuildOptions& options) {
    BuildOptions o = options;
    validate(o);
    if (o.mirror.empty())
        o.mirror = host_mirror(o.suite);
    while (o.mirror.size() > 1 && o.mirror.back() == '/')
        o.mirror.pop_back();
    if (o.cache_dir.empty())
        o.cache_dir = process_cache_dir();
    o.cache_dir = fs::absolute(o.cache_dir);
    return o;
}

} // namespace

std::optional<BuiltImage> find_cached(const BuildOptions& options) {
    const auto o = resolved(options);
    const auto key = inputs_hash(o);
    return load_cached(o.cache_dir / cache_entry_name(o.suite, key), key);
}

BuiltImage build(const BuildOptions& options) {
    const BuildOptions o = resolved(options);
    const bool root = ::geteuid() == 0;

    const auto key = inputs_hash(o);
    const auto name = cache_entry_name(o.suite, key);
    const auto entry = o.cache_dir / name;
    log::debug("image: inputs hash {} (suite {}, mirror {})", key, o.suite, o.mirror);

    if (!o.force)
        if (auto cached = load_cached(entry, key)) {
            log::info("image: {} is cached ({})", name, entry.string());
            return *cached;
        }

    // Preflight before anything is created: the tools (named by their Debian package) and root,
    // which mmdebstrap needs to chroot, mount and create device nodes.
    const auto mmdebstrap = require_tool("mmdebstrap", "mmdebstrap");
    const auto mkfs = require_tool("mkfs.ext4", "e2fsprogs");
    const auto qemu_img = require_tool("qemu-img", "qemu-utils");
    if (!root)
        throw Error(ExitCode::preflight, "building an image needs root",
                    "run it as root (e.g. sudo labctl image build); the image is then cached "
                    "under /var/cache/labctl/images");

    std::error_code ec;
    fs::create_directories(o.cache_dir, ec);
    if (ec)
        throw usage_error(fmt::format("cannot create the cache directory {}: {}",
                                      o.cache_dir.string(), ec.message()),
                          "pass a writable --cache-dir");
    fs::permissions(o.cache_dir, fs::perms(0755), fs::perm_options::replace, ec);
    EntryLock lock(o.cache_dir / ("." + name + ".lock"), "building the same image");
    // Another build may have finished the same entry while this one waited for the lock.
    if (!o.force)
        if (auto cached = load_cached(entry, key)) {
            log::info("image: {} is cached ({})", name, entry.string());
            return *cached;
        }

    // Everything is built in a directory next to the entry and renamed into place at the end, so
    // the entry is either complete or absent; the guard removes the half-built one on any exit.
    const auto tmp = o.cache_dir / fmt::format(".build-{}-{}", name, ::getpid());
    // Holding the entry's lock, any other build or old directory of this entry is left over from a
    // labctl that was killed (SIGKILL, power loss): nobody else can be using it.
    for (const auto& e : fs::directory_iterator(o.cache_dir, ec)) {
        const auto n = e.path().filename().string();
        if (n.rfind(".build-" + name + "-", 0) == 0 || n.rfind(".old-" + name + "-", 0) == 0) {
            log::info("image: removing {} (left over from an earlier build)", e.path().string());
            remove_build_dir(e.path());
        }
    }
    fs::create_directory(tmp);
    ScopeGuard cleanup([&tmp] { remove_build_dir(tmp); });

    const auto started = std::chrono::steady_clock::now();
    const auto packages = package_set(o.extra_packages);
    const auto tree = tmp / "tree";
    const auto raw = tmp / "root.raw";
    auto result = paths_in(tmp);

    auto t = std::chrono::steady_clock::now();
    log::info("image: [1/4] mmdebstrap {} from {} ({} packages)", o.suite, o.mirror,
              packages.size());
    std::vector<std::string> argv{mmdebstrap};
    for (const auto& a : mmdebstrap_args())
        argv.push_back(a);
    argv.push_back(fmt::format("--include={}", fmt::join(packages, ",")));
    argv.push_back(o.suite);
    argv.push_back(tree.string());
    argv.push_back(o.mirror);
    run_step("[1/4] mmdebstrap", argv, tmp, 60min,
             fmt::format("check that {} is reachable and has suite '{}' and every package, and "
                         "that {} has a few GB free",
                         o.mirror, o.suite, o.cache_dir.string()));
    log::info("image: [1/4] mmdebstrap done in {}", seconds(std::chrono::steady_clock::now() - t));

    t = std::chrono::steady_clock::now();
    log::info("image: [2/4] customising the tree (cloud-init NoCloud, networkd, no host keys)");
    customise(tree);
    const auto kernel = find_kernel(tree);
    fs::copy_file(kernel.vmlinuz, result.kernel);
    fs::copy_file(kernel.initrd, result.initrd);
    signals::check();
    log::info("image: [2/4] kernel {} extracted; done in {}", kernel.version,
              seconds(std::chrono::steady_clock::now() - t));

    t = std::chrono::steady_clock::now();
    log::info("image: [3/4] mkfs.ext4 -d (sparse {} GiB filesystem)", k_disk_bytes >> 30);
    { std::ofstream touch(raw, std::ios::binary); }
    // Sparse: only the written blocks take space, and the filesystem already spans the whole
    // virtual disk, so the guest needs no resize at boot.
    fs::resize_file(raw, k_disk_bytes);
    run_step("[3/4] mkfs.ext4",
             {mkfs, "-q", "-F", "-L", "labctl-root", "-m", "1", "-d", tree.string(), raw.string()},
             tmp, 30min, "check the free space of the cache directory");
    remove_build_dir(tree);
    log::info("image: [3/4] mkfs.ext4 done in {}", seconds(std::chrono::steady_clock::now() - t));

    t = std::chrono::steady_clock::now();
    log::info("image: [4/4] qemu-img convert to compressed qcow2");
    run_step(
        "[4/4] qemu-img",
        {qemu_img, "convert", "-f", "raw", "-O", "qcow2", "-c", raw.string(), result.disk.string()},
        tmp, 60min, "check the free space of the cache directory");
    fs::remove(raw, ec);
    result.sha256 = sha256_file_hex(result.disk.string());
    result.size_bytes = fs::file_size(result.disk);
    result.cmdline = kernel_cmdline();
    result.inputs_hash = key;
    log::info("image: [4/4] qemu-img done in {}", seconds(std::chrono::steady_clock::now() - t));

    const nlohmann::json manifest{
        {"format", k_format_version},
        {"inputs_hash", key},
        {"suite", o.suite},
        {"mirror", o.mirror},
        {"packages", packages},
        {"kernel_version", kernel.version},
        {"cmdline", result.cmdline},
        {"sha256", result.sha256},
        {"size_bytes", result.size_bytes},
        {"virtual_size_bytes", k_disk_bytes},
        {"build_seconds",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
    };
    write_file(tmp / k_manifest, manifest.dump(2) + "\n", 0644);
    // Readable by everyone: libvirt's qemu user boots from these files.
    for (const auto& p : {result.disk, result.kernel, result.initrd})
        fs::permissions(p, fs::perms(0644), fs::perm_options::replace);
    fs::permissions(tmp, fs::perms(0755), fs::perm_options::replace);

    signals::check();
    // A forced rebuild replaces the old entry: move it aside first (rename cannot replace a
    // non-empty directory), then put the new one in place and drop the old one.
    const auto old = o.cache_dir / fmt::format(".old-{}-{}", name, ::getpid());
    if (fs::exists(entry, ec))
        fs::rename(entry, old);
    fs::rename(tmp, entry);
    cleanup.dismiss();
    remove_build_dir(old);

    auto done = paths_in(entry);
    done.cmdline = result.cmdline;
    done.sha256 = result.sha256;
    done.size_bytes = result.size_bytes;
    done.inputs_hash = key;
    done.cached = false;
    log::info("image: built {} in {} ({:.0f} MiB qcow2)", entry.string(),
              seconds(std::chrono::steady_clock::now() - started),
              static_cast<double>(done.size_bytes) / (1024.0 * 1024.0));
    return done;
}

} // namespace labctl::image
