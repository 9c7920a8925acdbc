#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <sstream>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/preload.hpp>
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

/// Streams the images in one `docker save` here, its stdout read by the SSH channel feeding
/// `docker load` there. A thread runs the local side so neither side needs the stream in memory.
/// Returns the bytes sent.
std::uint64_t send_images(remote::Session& session, const std::vector<PreloadedImage>& images,
                          const PreloadOptions& options) {
    std::vector<std::string> argv{"docker", "save"};
    for (const auto& i : images)
        argv.push_back(i.image);
    const std::string names = image_names(images);
    Fd read_end;
    auto write_end = std::make_shared<Fd>(); // the saver thread closes it when docker save ends
    make_pipe(read_end, *write_end);

    ProcessResult saved;
    std::exception_ptr save_error;
    std::thread saver([&saved, &save_error, write_end, argv] {
        try {
            saved = run_process(argv, {.stdout_fd = write_end->fd});
        } catch (...) {
            save_error = std::current_exception();
        }
        write_end->reset(); // the reader sees the end of the stream
    });

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
    if (options.load_timeout.count() <= 0)
        throw Error(ExitCode::usage, "the docker load deadline must be positive",
                    "set deploy.preload_timeout to e.g. 30m");
    load.timeout = options.load_timeout;
    load.phase = "docker load";
    load.stdin_source = [&](char* buf, std::size_t size) -> std::size_t {
        while (true) {
            const auto n = ::read(read_end.fd, buf, size);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                report(true);
                return 0;
            }
            bytes += static_cast<std::uint64_t>(n);
            report(false);
            return static_cast<std::size_t>(n);
        }
    };
    load.on_stdout_line = [&](const std::string& line) {
        log::debug("{}{}", options.log_prefix, line);
    };
    remote::ExecResult loaded;
    try {
        loaded = session.exec("docker load", load);
    } catch (...) {
        read_end.reset(); // a `docker save` still writing gets EPIPE and ends
        saver.join();
        throw;
    }
    read_end.reset();
    saver.join();
    if (save_error)
        std::rethrow_exception(save_error);
    if (!saved.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("'docker save {}' failed here: {}", names, trim(saved.err)),
                    "is the local Docker engine running? (docker info)");
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
        report.bytes_sent = send_images(session, missing, options);
        log::info("preload {}: {} image{} loaded, {} bytes in {}", host, missing.size(),
                  missing.size() == 1 ? "" : "s", report.bytes_sent, format_duration(since(t)));
    }
    report.elapsed = since(started);
    return report;
}

} // namespace labctl::deploy
