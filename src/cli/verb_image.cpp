#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/text.hpp>
#include <labctl/image/build.hpp>

#include "app.hpp"
#include "downloaded_image.hpp"

namespace labctl::cli {

namespace {

namespace fs = std::filesystem;

struct ImageBuildFlags {
    std::string suite = "bookworm";
    std::string out;
    std::string cache_dir;
    std::string mirror;
    std::vector<std::string> packages;
    bool force = false;
};

/// Copies `from` to `dir/name` with copy_file_atomic, so `name` is never half-written, also after
/// a crash. A copy, not a hard link: booting or editing the file in DIR must not change the cached
/// image. A failure is a usage error (exit 2): the --out directory is the user's choice.
fs::path place(const fs::path& from, const fs::path& dir, const std::string& name) {
    const auto to = dir / name;
    try {
        copy_file_atomic(from.string(), to.string());
    } catch (const Error& e) {
        throw usage_error(e.what(), "pass a writable --out directory with room for the image");
    }
    return to;
}

std::string mib(std::uint64_t bytes) {
    return fmt::format("{:.1f} MiB ({} bytes)", static_cast<double>(bytes) / (1024.0 * 1024.0),
                       bytes);
}

int run_image_build(const Context& ctx, const ImageBuildFlags& f) {
    image::BuildOptions o;
    o.suite = f.suite;
    o.cache_dir = f.cache_dir;
    o.mirror = f.mirror;
    o.force = f.force;
    // `--package a,b --package c` and `--package a b` both work.
    for (const auto& p : f.packages) {
        std::size_t start = 0;
        while (start <= p.size()) {
            const auto comma = p.find(',', start);
            const auto one = p.substr(start, comma == std::string::npos ? comma : comma - start);
            if (!one.empty())
                o.extra_packages.push_back(one);
            if (comma == std::string::npos)
                break;
            start = comma + 1;
        }
    }
    if (!f.out.empty()) {
        std::error_code ec;
        fs::create_directories(f.out, ec);
        if (ec || !fs::is_directory(f.out))
            throw usage_error(fmt::format("--out {} is not a directory", f.out),
                              "pass a directory (it is created when missing)");
    }

    auto img = image::build(o);

    if (!f.out.empty()) {
        img.disk = place(img.disk, f.out, "disk.qcow2");
        img.kernel = place(img.kernel, f.out, "vmlinuz");
        img.initrd = place(img.initrd, f.out, "initrd.img");
        log::info("image: disk, kernel and initrd copied to {}", f.out);
    }
    if (ctx.global.json()) {
        print_json({{"disk", img.disk.string()},
                    {"kernel", img.kernel.string()},
                    {"initrd", img.initrd.string()},
                    {"cmdline", img.cmdline},
                    {"sha256", img.sha256},
                    {"inputs_hash", img.inputs_hash},
                    {"size_bytes", img.size_bytes},
                    {"cached", img.cached}});
        return 0;
    }
    Table t({"FIELD", "VALUE"});
    t.add({"disk", img.disk.string()});
    t.add({"kernel", img.kernel.string()});
    t.add({"initrd", img.initrd.string()});
    t.add({"cmdline", img.cmdline});
    t.add({"size", mib(img.size_bytes)});
    t.add({"sha256", img.sha256});
    t.add({"inputs_hash", img.inputs_hash});
    t.add({"cached", img.cached ? "yes" : "no"});
    print(t.render() + "\n");
    return 0;
}

struct ImageFetchFlags {
    std::string url;
    std::string sha256;
    std::string sha512;
    std::string checksums;
    std::string format;
    std::string cache_dir;
    int stall_timeout = 60;
};

int run_image_fetch(const Context& ctx, const ImageFetchFlags& f) {
    image::DownloadOptions o;
    if (f.url.empty()) {
        // No URL: the lab's image.url, as `up` would download it (a CI stage of its own).
        const auto spec = load_spec(ctx);
        if (spec.image.url.empty())
            throw usage_error(fmt::format("{} has no image.url", ctx.global.file),
                              "give the URL: labctl image fetch URL --sha256 HEX (or "
                              "--sha512, --checksums URL)");
        o = download_options(spec.image);
    } else {
        o.url = f.url;
        o.sha256 = lower(f.sha256);
        o.sha512 = lower(f.sha512);
        o.checksums_url = f.checksums;
        o.format = f.format.empty() ? "qcow2" : f.format;
    }
    o.cache_dir = f.cache_dir;
    o.stall_timeout = std::chrono::seconds(f.stall_timeout);
    const auto img = image::download(o);
    const double rate = img.seconds > 0 ? static_cast<double>(img.bytes_received) / img.seconds : 0;
    if (ctx.global.json()) {
        print_json({{"path", img.path.string()},
                    {"url", o.url},
                    {"final_url", img.final_url},
                    {"algorithm", img.algorithm},
                    {"digest", img.hex},
                    {"size_bytes", img.size_bytes},
                    {"cached", img.cached},
                    {"resumed_from", img.resumed_from},
                    {"bytes_received", img.bytes_received},
                    {"seconds", img.seconds},
                    {"bytes_per_second", static_cast<std::uint64_t>(rate)}});
        return 0;
    }
    Table t({"FIELD", "VALUE"});
    t.add({"path", img.path.string()});
    t.add({"size", mib(img.size_bytes)});
    t.add({img.algorithm, img.hex});
    t.add({"cached", img.cached ? "yes" : "no"});
    if (!img.cached) {
        t.add({"received", fmt::format("{} in {:.1f} s ({:.1f} MB/s)", mib(img.bytes_received),
                                       img.seconds, rate / 1e6)});
        t.add({"resumed_from", std::to_string(img.resumed_from)});
    }
    print(t.render() + "\n");
    return 0;
}

} // namespace

Runner register_image(CLI::App& app, Context& ctx) {
    auto* image = app.add_subcommand(
        "image", "Build the Debian cloud image lab VMs boot from, or download one by URL");
    image->require_subcommand(1);
    auto flags = std::make_shared<ImageBuildFlags>();
    auto* build = image->add_subcommand(
        "build", "Build a bootable Debian image with mmdebstrap from the host's mirror (cached)");
    build->add_option("--suite", flags->suite, "Debian suite (default: bookworm)")
        ->type_name("SUITE");
    build
        ->add_option("--out", flags->out,
                     "Also copy disk.qcow2, vmlinuz and initrd.img into this directory")
        ->type_name("DIR");
    build
        ->add_option("--cache-dir", flags->cache_dir,
                     "Image cache (default: /var/cache/labctl/images as root)")
        ->type_name("DIR");
    build
        ->add_option("--mirror", flags->mirror,
                     "Debian mirror URL (default: the host's apt sources)")
        ->type_name("URL");
    build->add_option("--package", flags->packages, "Extra package(s) to install (repeatable)")
        ->type_name("PKG");
    build->add_flag("--force", flags->force, "Rebuild even when a cached image matches");

    auto fetch_flags = std::make_shared<ImageFetchFlags>();
    auto* fetch = image->add_subcommand(
        "fetch", "Download a cloud image into the cache and verify its checksum (resumable; "
                 "without URL: lab.yaml's image.url)");
    fetch->add_option("url", fetch_flags->url, "http(s):// or file:/// URL of the image")
        ->type_name("URL");
    auto* sha256 = fetch->add_option("--sha256", fetch_flags->sha256, "Expected SHA-256 (hex)")
                       ->type_name("HEX");
    auto* sha512 = fetch->add_option("--sha512", fetch_flags->sha512, "Expected SHA-512 (hex)")
                       ->type_name("HEX");
    auto* sums = fetch
                     ->add_option("--checksums", fetch_flags->checksums,
                                  "URL of the SHA256SUMS/SHA512SUMS that lists the image")
                     ->type_name("URL");
    sha256->excludes(sha512)->excludes(sums);
    sha512->excludes(sums);
    fetch->add_option("--format", fetch_flags->format, "qcow2 (default) or raw")
        ->type_name("FORMAT");
    fetch
        ->add_option("--cache-dir", fetch_flags->cache_dir,
                     "Image cache (default: /var/cache/labctl/images as root)")
        ->type_name("DIR");
    fetch
        ->add_option("--stall-timeout", fetch_flags->stall_timeout,
                     "Give up when the server sends nothing for this many seconds (default 60)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 3600));
    return [&ctx, flags, build, fetch_flags, fetch]() -> int {
        if (fetch->parsed())
            return run_image_fetch(ctx, *fetch_flags);
        if (build->parsed())
            return run_image_build(ctx, *flags);
        throw usage_error("no image command given", "run 'labctl image --help'");
    };
}

} // namespace labctl::cli
