#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/deploy/saved_archive.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::deploy {

using Clock = std::chrono::steady_clock;

namespace {

/// "a, b, c": the images' names for messages.
std::string image_names(const std::vector<PreloadedImage>& images) {
    std::vector<std::string> names;
    for (const auto& i : images)
        names.push_back(i.image);
    return fmt::format("{}", fmt::join(names, ", "));
}

/// The target's ids of `images` in one round trip and one Docker CLI start ("" for an image it
/// lacks).
std::vector<std::string> remote_image_ids(remote::Session& session,
                                          const std::vector<std::string>& images, bool sudo) {
    if (images.empty())
        return {};
    const auto r =
        session.exec("docker image ls --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'",
                     {.timeout = std::chrono::seconds(60), .sudo = sudo});
    if (!r.ok())
        return std::vector<std::string>(images.size()); // all count as absent: they are sent
    return parse_image_list(r.out, images);
}

std::vector<std::string> images_from_compose(remote::Session& session, const ComposeFacts& facts,
                                             const PreloadOptions& options) {
    // `config` prints the resolved file, secrets included: its output is parsed, never logged.
    const auto cmd = compose_command(facts.command(), options.remote_dir, options.project,
                                     options.env, "config");
    const auto r = session.exec(
        cmd.command,
        {.timeout = std::chrono::seconds(120), .stdin_data = cmd.stdin_data, .sudo = options.sudo});
    if (!r.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("'{} config' failed on {}: {}", facts.command(),
                                session.endpoint().host, trim(r.err)),
                    "fix the compose file, or list deploy.preload_images yourself");
    return parse_compose_images(r.out);
}

/// The layer chains the target's engine holds, in one round trip; empty when it holds none or
/// cannot say (then every layer is sent).
std::set<std::string> remote_chains(remote::Session& session, bool sudo) {
    const auto r = session.exec(
        "ids=$(docker image ls -aq --no-trunc | sort -u); [ -z \"$ids\" ] || docker image inspect "
        "--format '{{range .RootFS.Layers}}{{.}} {{end}}' $ids",
        {.timeout = std::chrono::seconds(60), .phase = "docker image inspect", .sudo = sudo});
    if (!r.ok()) {
        log::debug("preload {}: the target's layers are unknown ({}); every layer is sent",
                   session.endpoint().host, trim(r.err));
        return {};
    }
    return parse_engine_chains(r.out);
}

/// The images' archive as `docker load` on the target gets it: streamed from `docker save` by a
/// thread (nothing on disk), or, when the target holds some of their layers, saved to a file
/// first and read back without those layer files.
class ArchiveSource {
public:
    ArchiveSource(const std::vector<std::string>& argv, const std::set<std::string>& chains,
                  const PreloadOptions& options, const std::string& host) {
        if (chains.empty()) {
            auto write_end = std::make_shared<Fd>(); // the saver closes it when docker save ends
            make_pipe(m_read_end, *write_end);
            m_saver = std::thread([this, write_end, argv] {
                try {
                    m_saved = run_process(argv, {.stdout_fd = write_end->fd});
                } catch (...) {
                    m_save_error = std::current_exception();
                }
                write_end->reset(); // the reader sees the end of the stream
            });
            return;
        }
        const std::filesystem::path dir = options.work_dir.empty()
                                              ? std::filesystem::temp_directory_path()
                                              : std::filesystem::path(options.work_dir);
        std::filesystem::create_directories(dir);
        m_file.path = (dir / fmt::format("labctl-save-{}.tar", random_token(8))).string();
        auto save = argv;
        save.insert(save.begin() + 2, {"-o", m_file.path});
        m_saved = run_process(save, {.timeout = options.load_timeout});
        if (!m_saved.ok())
            throw save_failed(argv);
        m_archive.emplace(m_file.path);
        const auto n = m_archive->omit_layers(chains);
        m_skipped = m_archive->omitted();
        if (n > 0)
            log::info("preload {}: {} layer file{} the target already has left out ({})", host, n,
                      n == 1 ? "" : "s", format_bytes(m_skipped));
        else
            log::info("preload {}: the target has none of these layers", host);
    }
    ArchiveSource(const ArchiveSource&) = delete;
    ArchiveSource& operator=(const ArchiveSource&) = delete;
    ~ArchiveSource() {
        m_read_end.reset(); // a `docker save` still writing gets EPIPE and ends
        if (m_saver.joinable())
            m_saver.join();
    }

    /// The next bytes (0 at the end); blocks on the pipe while `docker save` produces them.
    std::size_t read(char* buf, std::size_t size) {
        if (m_archive)
            return m_archive->read(buf, size);
        while (true) {
            const auto n = ::read(m_read_end.fd, buf, size);
            if (n < 0 && errno == EINTR)
                continue;
            return n <= 0 ? 0 : static_cast<std::size_t>(n);
        }
    }
    /// Waits for `docker save`; throws when it failed.
    void finish(const std::string& names) {
        m_read_end.reset();
        if (m_saver.joinable())
            m_saver.join();
        if (m_save_error)
            std::rethrow_exception(m_save_error);
        if (!m_saved.ok())
            throw save_failed(names);
    }
    std::uint64_t skipped() const { return m_skipped; }

private:
    /// Removes the saved archive however the preload ends (also when the constructor throws).
    struct RemovedFile {
        std::string path;
        RemovedFile() = default;
        RemovedFile(const RemovedFile&) = delete;
        RemovedFile& operator=(const RemovedFile&) = delete;
        ~RemovedFile() {
            std::error_code ec;
            if (!path.empty() && !std::filesystem::remove(path, ec) && ec)
                log::warn("cannot remove {}: {}", path, ec.message());
        }
    };
    Error save_failed(const std::string& names) const {
        return Error(ExitCode::deploy,
                     fmt::format("'docker save {}' failed here: {}", names, trim(m_saved.err)),
                     "is the local Docker engine running, and is there room for the archive in "
                     "the lab's state directory? (docker info, df -h)");
    }
    Error save_failed(const std::vector<std::string>& argv) const {
        return save_failed(fmt::format("{}", fmt::join(argv.begin() + 2, argv.end(), " ")));
    }
    Fd m_read_end;
    std::thread m_saver;
    ProcessResult m_saved;
    std::exception_ptr m_save_error;
    RemovedFile m_file; // declared before the archive: removed after it is closed
    std::optional<SavedArchive> m_archive;
    std::uint64_t m_skipped = 0;
};

/// Sends the images in one `docker save` archive into `docker load` on the target, without the
/// layer files the target holds. Returns the bytes sent; adds the bytes left out to `skipped`.
std::uint64_t send_images(remote::Session& session, const std::vector<PreloadedImage>& images,
                          const PreloadOptions& options, std::uint64_t& skipped) {
    if (options.load_timeout.count() <= 0)
        throw Error(ExitCode::usage, "the docker load deadline must be positive",
                    "set deploy.preload_timeout to e.g. 30m");
    std::vector<std::string> argv{"docker", "save"};
    for (const auto& i : images)
        argv.push_back(i.image);
    const std::string names = image_names(images);
    ArchiveSource source(argv, remote_chains(session, options.sudo), options,
                         session.endpoint().host);
    skipped += source.skipped();

    std::uint64_t bytes = 0;
    Progress progress(fmt::format("preload {}", session.endpoint().host));
    const auto report = [&](bool end) {
        const auto rate = progress.rate(bytes);
        const auto text = fmt::format("{} sent, {}/s{}", format_bytes(bytes), format_bytes(rate),
                                      end ? "; docker load is finishing on the target" : "");
        const std::vector<log::Field> fields{{"bytes", std::to_string(bytes)},
                                             {"rate_bps", std::to_string(rate)}};
        if (end)
            progress.event(text, fields);
        else
            progress.update(text, fields);
    };
    progress.event(fmt::format("streaming {}", names));
    remote::ExecOptions load;
    load.sudo = options.sudo;
    // Generous by default (a few GB over a slow link), but a stalled target must not hang the
    // deploy; at the deadline the remote `docker load` is ended with its process group.
    load.timeout = options.load_timeout;
    load.phase = "docker load";
    load.stdin_source = [&](char* buf, std::size_t size) -> std::size_t {
        const auto n = source.read(buf, size);
        bytes += n;
        report(n == 0);
        return n;
    };
    load.on_stdout_line = [&](const std::string& line) {
        log::debug("{}{}", options.log_prefix, line);
    };
    const auto loaded = session.exec("docker load", load);
    source.finish(names);
    if (loaded.timed_out)
        throw Error(ExitCode::timeout,
                    fmt::format("'docker load' of {} on {} timed out after {} (phase docker "
                                "load; {} bytes sent)",
                                names, session.endpoint().host,
                                format_duration(options.load_timeout), bytes),
                    "is the target's disk or network stalled? (docker info, df -h) A larger "
                    "image set may need a longer deploy.preload_timeout");
    if (!loaded.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("'docker load' of {} failed on {}: {}", names,
                                session.endpoint().host,
                                trim(loaded.err.empty() ? loaded.out : loaded.err)),
                    "is there enough disk space for Docker on the target? (df -h /var/lib/docker)");
    // What arrived must be what was sent: the ids are content hashes.
    std::vector<std::string> sent;
    for (const auto& i : images)
        sent.push_back(i.image);
    const auto arrived_ids = remote_image_ids(session, sent, options.sudo);
    for (std::size_t n = 0; n < images.size(); ++n) {
        const auto& i = images[n];
        const auto& arrived = arrived_ids[n];
        if (arrived != i.id)
            throw Error(ExitCode::deploy,
                        fmt::format("{} on {} has id {} after loading, expected {}", i.image,
                                    session.endpoint().host, arrived.empty() ? "none" : arrived,
                                    i.id));
    }
    return bytes;
}

} // namespace

std::vector<std::string> parse_compose_images(const std::string& config_yaml) {
    // `compose config` prints normalised YAML: top-level keys at column 0, service names indented
    // by 2, their keys by 4. Only services' own `image:` keys count (not e.g. a label's value).
    std::vector<std::string> images;
    std::istringstream in(config_yaml);
    bool in_services = false;
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.front() == '#')
            continue;
        if (line.front() != ' ') {
            in_services = trim(line) == "services:";
            continue;
        }
        if (!in_services || line.size() < 5 || line.compare(0, 4, "    ") != 0 || line[4] == ' ')
            continue;
        const auto rest = line.substr(4);
        if (rest.rfind("image:", 0) != 0)
            continue;
        std::string value(trim(std::string_view(rest).substr(6)));
        if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') &&
            value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        if (!value.empty() && std::find(images.begin(), images.end(), value) == images.end())
            images.push_back(value);
    }
    return images;
}

std::string local_image_id(const std::string& image) {
    const auto r = run_process({"docker", "image", "inspect", "--format", "{{.Id}}", image},
                               {.timeout = std::chrono::seconds(60)});
    return r.ok() ? std::string(trim(r.out)) : std::string();
}

std::string normal_image_name(const std::string& name) {
    std::string n = name;
    for (const std::string_view prefix : {"docker.io/library/", "docker.io/"})
        if (n.rfind(prefix, 0) == 0) {
            n = n.substr(prefix.size());
            break;
        }
    const auto slash = n.rfind('/');
    if (n.find(':', slash == std::string::npos ? 0 : slash) == std::string::npos)
        n += ":latest";
    return n;
}

std::vector<std::string> parse_image_list(const std::string& out,
                                          const std::vector<std::string>& images) {
    std::map<std::string, std::string> ids;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        const auto sp = line.rfind(' ');
        if (sp != std::string::npos && line.compare(sp + 1, 7, "sha256:") == 0)
            ids.emplace(normal_image_name(line.substr(0, sp)), line.substr(sp + 1));
    }
    std::vector<std::string> result;
    for (const auto& image : images) {
        const auto it = ids.find(normal_image_name(image));
        result.push_back(it == ids.end() ? std::string() : it->second);
    }
    return result;
}

std::string to_string(PreloadAction action) {
    switch (action) {
    case PreloadAction::sent:
        return "sent";
    case PreloadAction::present:
        return "present";
    case PreloadAction::missing_locally:
        return "missing locally";
    }
    return "?";
}

PreloadReport preload_images(remote::Session& session, const ComposeFacts& facts,
                             const PreloadOptions& options) {
    PreloadReport report;
    const auto started = Clock::now();
    if (options.images.empty())
        return report;
    if (!find_program("docker"))
        throw Error(ExitCode::deploy,
                    "deploy.preload_images needs Docker on this machine to read the images from",
                    "install docker.io (scripts/install-deps) and start dockerd, or remove "
                    "deploy.preload_images");
    const bool automatic = options.images.size() == 1 && options.images.front() == "auto";
    const auto images = !automatic              ? options.images
                        : options.auto_resolved ? *options.auto_resolved
                                                : images_from_compose(session, facts, options);
    const auto& host = session.endpoint().host;
    if (automatic && options.auto_resolved)
        log::info("preload {}: the images the last deploy's compose config named (same compose "
                  "inputs): {}",
                  host, fmt::join(images, ", "));
    std::vector<PreloadedImage> missing;
    std::vector<std::string> local_ids;
    std::vector<std::string> known; // the images this machine has: their ids there, in one trip
    for (const auto& image : images) {
        local_ids.push_back(local_image_id(image));
        if (!local_ids.back().empty())
            known.push_back(image);
    }
    const auto remote_ids = remote_image_ids(session, known, options.sudo);
    for (std::size_t n = 0, k = 0; n < images.size(); ++n) {
        const auto& image = images[n];
        const auto& id = local_ids[n];
        if (id.empty()) {
            if (!automatic)
                throw Error(ExitCode::deploy,
                            fmt::format("deploy.preload_images lists {}, which this machine's "
                                        "Docker does not have",
                                        image),
                            fmt::format("build or pull it here first (docker image ls {})", image));
            log::warn("preload {}: {} is not in this machine's Docker; the target has to pull or "
                      "build it",
                      host, image);
            report.images.push_back({image, "", PreloadAction::missing_locally});
        } else if (remote_ids[k++] == id) {
            log::info("preload {}: {} already present ({})", host, image, id.substr(0, 19));
            report.images.push_back({image, id, PreloadAction::present});
        } else {
            missing.push_back({image, id, PreloadAction::sent});
            report.images.push_back(missing.back()); // in the compose file's order
        }
    }
    if (!missing.empty()) {
        const auto t = Clock::now();
        log::info("preload {}: sending {}", host, image_names(missing));
        report.bytes_sent = send_images(session, missing, options, report.bytes_skipped);
        log::info("preload {}: {} image{} loaded, {} bytes in {}", host, missing.size(),
                  missing.size() == 1 ? "" : "s", report.bytes_sent, format_duration(since(t)));
    }
    report.elapsed = since(started);
    return report;
}

} // namespace labctl::deploy
