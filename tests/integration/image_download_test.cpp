// image.url downloads against real servers on loopback: Debian's nginx serving a real qcow2 (plain
// and TLS with a CA of the test's own, redirects, a rate limit), and a raw TCP server for what
// nginx never does (a body cut short, a server that stops sending).

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/image/download.hpp>

#include "background.hpp"
#include "interrupt_support.hpp"
#include "skip.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace labctl;
using namespace std::chrono_literals;

namespace {

std::string file_digest(const fs::path& p, const char* algorithm) {
    Digest d(algorithm);
    d.update(test::read_file(p));
    return d.finish_hex();
}

void run_ok(const std::vector<std::string>& argv, const fs::path& cwd) {
    ProcessOptions o;
    o.cwd = cwd.string();
    o.timeout = 60s;
    const auto r = run_process(argv, o);
    INFO(argv[0] << ": " << r.err);
    REQUIRE(r.ok());
}

/// Debian's nginx on two loopback ports (plain and TLS) serving www/disk.qcow2 — a real qcow2
/// made by qemu-img from 16 MiB of random data — with its SHA256SUMS and SHA512SUMS as
/// sha256sum/sha512sum write them, redirect chains, a loop, an https→http redirect and a
/// rate-limited copy.
class Mirror {
public:
    Mirror() {
        test::require_program("nginx");
        test::require_program("qemu-img");
        test::require_program("openssl");
        const auto d = m_dir.path();
        fs::create_directories(d / "www");
        fs::create_directories(d / "tmp");
        {
            std::ofstream raw(d / "disk.raw", std::ios::binary);
            raw << random_bytes(16 << 20);
        }
        run_ok({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", "disk.raw", "www/disk.qcow2"},
               d);
        fs::remove(d / "disk.raw");
        sha256 = file_digest(d / "www/disk.qcow2", "sha256");
        sha512 = file_digest(d / "www/disk.qcow2", "sha512");
        size = fs::file_size(d / "www/disk.qcow2");
        // sha256sum -b writes "HEX *NAME" (Ubuntu's SHA256SUMS); sha512sum "HEX  NAME" (Debian's).
        m_dir.write("www/SHA256SUMS",
                    fmt::format("{} *other.img\n{} *disk.qcow2\n", std::string(64, 'a'), sha256));
        m_dir.write("www/SHA512SUMS", fmt::format("{}  disk.qcow2\n", sha512));
        make_tls(d);
        port = test::free_port();
        tls_port = test::free_port();
        m_dir.write("nginx.conf", config());
        m_nginx = std::make_unique<test::BackgroundProcess>(
            std::vector<std::string>{"nginx", "-p", d.string() + "/", "-c",
                                     (d / "nginx.conf").string()},
            d / "nginx.out");
        REQUIRE(test::wait_for_port(port, 10s));
        REQUIRE(test::wait_for_port(tls_port, 10s));
    }

    std::string url(const std::string& path) const {
        return fmt::format("http://127.0.0.1:{}{}", port, path);
    }
    std::string tls_url(const std::string& path, const std::string& host = "127.0.0.1") const {
        return fmt::format("https://{}:{}{}", host, tls_port, path);
    }
    fs::path ca() const { return m_dir.path() / "ca.pem"; }
    /// Access log lines "GET <path> ... <status>" so far.
    int requests(const std::string& path, int status) const {
        std::ifstream in(m_dir.path() / "access.log");
        int n = 0;
        for (std::string line; std::getline(in, line);)
            if (test::contains(line, fmt::format("\"GET {} HTTP/1.1\" {} ", path, status)))
                ++n;
        return n;
    }
    /// Bytes nginx sent for `path` with `status`, summed over the log.
    std::uint64_t bytes_sent(const std::string& path, int status) const {
        std::ifstream in(m_dir.path() / "access.log");
        std::uint64_t n = 0;
        const auto key = fmt::format("\"GET {} HTTP/1.1\" {} ", path, status);
        for (std::string line; std::getline(in, line);)
            if (const auto at = line.find(key); at != std::string::npos)
                n += std::stoull(line.substr(at + key.size()));
        return n;
    }

    std::string sha256, sha512;
    std::uint64_t size = 0;
    int port = 0, tls_port = 0;

private:
    static std::string random_bytes(std::size_t n) {
        std::string out = random_token(n);
        out.resize(n);
        return out;
    }
    static void make_tls(const fs::path& d) {
        run_ok({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=labctl test CA"},
               d);
        run_ok({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"},
               d);
        std::ofstream(d / "san.ext") << "subjectAltName=IP:127.0.0.1\n";
        run_ok({"openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"},
               d);
    }
    std::string config() const {
        const auto d = m_dir.path().string();
        return fmt::format(R"(daemon off;
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        root {d}/www;
        location /slow/ {{ alias {d}/www/; limit_rate 4m; }}
        location = /a {{ return 302 /b; }}
        location = /b {{ return 301 http://127.0.0.1:{port}/c; }}
        location = /c {{ return 307 /disk.qcow2; }}
        location = /loop1 {{ return 302 /loop2; }}
        location = /loop2 {{ return 302 /loop1; }}
        location = /to-http {{ return 302 http://127.0.0.1:{port}/disk.qcow2; }}
    }}
}}
)",
                           fmt::arg("user", ::geteuid() == 0 ? "user root;\n" : ""),
                           fmt::arg("d", d), fmt::arg("port", port), fmt::arg("tls", tls_port));
    }

    test::TempDir m_dir;
    std::unique_ptr<test::BackgroundProcess> m_nginx;
};

/// One-connection-at-a-time HTTP server on a loopback port for what nginx does not do: `cut`
/// ends the first response after half its body (later ones honour Range); `stall` sends half the
/// body and then nothing, holding the connection until the test ends. Its 206 answers are
/// written as nginx's range filter writes them, "Content-Range: bytes FIRST-LAST/TOTAL" with the
/// length of the rest (nginx/nginx@release-1.22.1:src/http/modules/ngx_http_range_filter_module.c).
class RawServer {
public:
    enum class Mode { cut, stall };
    RawServer(std::string body, Mode mode) : m_body(std::move(body)), m_mode(mode) {
        m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(m_fd >= 0);
        const int one = 1;
        ::setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(m_fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
        REQUIRE(::listen(m_fd, 4) == 0);
        m_thread = std::thread([this] { serve(); });
    }
    ~RawServer() {
        m_stop = true;
        ::shutdown(m_fd, SHUT_RDWR);
        m_thread.join();
        ::close(m_fd);
    }
    std::string url() const { return fmt::format("http://127.0.0.1:{}/disk.qcow2", port); }
    int port = 0;
    std::atomic<int> served{0};

private:
    void serve() {
        while (!m_stop) {
            const int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0)
                return;
            std::string req;
            char buf[4096];
            while (req.find("\r\n\r\n") == std::string::npos) {
                const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0)
                    break;
                req.append(buf, static_cast<std::size_t>(n));
            }
            std::size_t from = 0;
            if (const auto r = req.find("Range: bytes="); r != std::string::npos)
                from = std::stoull(req.substr(r + 13));
            const bool first = served++ == 0;
            const std::string head =
                from == 0
                    ? fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: "
                                  "\"v1\"\r\nConnection: close\r\n\r\n",
                                  m_body.size())
                    : fmt::format("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes "
                                  "{}-{}/{}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n"
                                  "Connection: close\r\n\r\n",
                                  from, m_body.size() - 1, m_body.size(), m_body.size() - from);
            std::string out = head + m_body.substr(from);
            if (first)
                out.resize(head.size() + m_body.size() / 2);
            send_all(c, out);
            if (first && m_mode == Mode::stall)
                while (!m_stop)
                    std::this_thread::sleep_for(20ms);
            ::close(c);
        }
    }
    static void send_all(int c, const std::string& s) {
        std::size_t off = 0;
        while (off < s.size()) {
            const ssize_t n = ::send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
            if (n <= 0)
                return;
            off += static_cast<std::size_t>(n);
        }
    }
    std::string m_body;
    Mode m_mode;
    int m_fd = -1;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

image::DownloadOptions options(const std::string& url, const fs::path& cache) {
    image::DownloadOptions o;
    o.url = url;
    o.cache_dir = cache;
    o.connect_timeout = 5s;
    o.stall_timeout = 5s;
    return o;
}

/// Files under the cache's downloads/ other than the partial directory: verified images only.
std::vector<std::string> cached_files(const fs::path& cache) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache / "downloads", ec))
        if (e.path().filename() != "partial")
            out.push_back(e.path().filename().string());
    return out;
}

} // namespace

TEST_CASE("an image behind a redirect chain is downloaded, verified and cached under its digest, "
          "and the next download is a cache hit without a request") {
    Mirror m;
    test::TempDir cache;
    auto o = options(m.url("/a"), cache.path());
    o.sha256 = m.sha256;
    const auto img = image::download(o);
    CHECK_FALSE(img.cached);
    CHECK(img.final_url == m.url("/disk.qcow2"));
    CHECK(img.path == cache.path() / "downloads" / ("sha256-" + m.sha256 + ".qcow2"));
    CHECK(img.size_bytes == m.size);
    CHECK(file_digest(img.path, "sha256") == m.sha256);
    const auto info = run_process({"qemu-img", "info", "--output=json", img.path.string()});
    REQUIRE(info.ok());
    CHECK(nlohmann::json::parse(info.out).at("format") == "qcow2");
    CHECK(m.requests("/disk.qcow2", 200) == 1);
    std::printf("download over loopback: %llu bytes in %.3f s (%.1f MB/s)\n",
                static_cast<unsigned long long>(img.bytes_received), img.seconds,
                static_cast<double>(img.bytes_received) / img.seconds / 1e6);

    const auto again = image::download(o);
    CHECK(again.cached);
    CHECK(again.path == img.path);
    CHECK(m.requests("/disk.qcow2", 200) == 1);
    CHECK(image::find_downloaded(o).has_value());
}

TEST_CASE("image.checksums finds the image's line in SHA512SUMS and in Ubuntu-style SHA256SUMS") {
    Mirror m;
    test::TempDir cache;
    auto o = options(m.url("/disk.qcow2"), cache.path());
    o.checksums_url = m.url("/SHA512SUMS");
    const auto img = image::download(o);
    CHECK(img.algorithm == "sha512");
    CHECK(img.hex == m.sha512);
    o.checksums_url = m.url("/SHA256SUMS");
    const auto img256 = image::download(o);
    CHECK(img256.algorithm == "sha256");
    CHECK(img256.hex == m.sha256);
    // A file the checksum file does not list.
    o.url = m.url("/slow/missing.qcow2");
    std::string message;
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, "has no line for 'missing.qcow2'"));
    CHECK(test::contains(message, "disk.qcow2"));
}

TEST_CASE("a wrong checksum is exit 3 naming both digests, and leaves nothing in the cache") {
    Mirror m;
    test::TempDir cache;
    auto o = options(m.url("/disk.qcow2"), cache.path());
    o.sha256 = std::string(64, 'b');
    std::string message;
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, m.sha256));
    CHECK(test::contains(message, std::string(64, 'b')));
    CHECK(cached_files(cache.path()).empty());
    for (const auto& e : fs::directory_iterator(cache.path() / "downloads" / "partial"))
        CHECK(e.path().extension() == ".lock"); // no .part, no .json
}

TEST_CASE("a 404, a redirect loop and a redirect from https to http are exit 3 errors that name "
          "the URL, and create nothing") {
    Mirror m;
    test::TempDir cache;
    std::string message;
    auto o = options(m.url("/nothing.qcow2"), cache.path());
    o.sha256 = m.sha256;
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, m.url("/nothing.qcow2") + " answered HTTP 404 Not Found"));
    o.url = m.url("/loop1");
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, fmt::format("redirect loop: {} -> {} -> {}", m.url("/loop1"),
                                              m.url("/loop2"), m.url("/loop1"))));
    o.url = m.tls_url("/to-http");
    ::setenv("SSL_CERT_FILE", m.ca().c_str(), 1); // read once, when the TLS context is made
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, "refusing a redirect from https to http"));
    CHECK(cached_files(cache.path()).empty());
    CHECK(m.requests("/disk.qcow2", 200) == 0);
}

TEST_CASE("https is verified against the CA store: a trusted certificate downloads, an untrusted "
          "one or a wrong host name is exit 3") {
    Mirror m;
    test::TempDir cache;
    const auto fetch = [&](const std::string& url, const std::map<std::string, std::string>& env) {
        ProcessOptions p;
        p.env = env;
        p.timeout = 60s;
        return test::run_labctl({"--output", "json", "image", "fetch", url, "--sha256", m.sha256,
                                 "--cache-dir", cache.path().string()},
                                p);
    };
    // The system store does not hold the test's CA.
    const auto untrusted = fetch(m.tls_url("/disk.qcow2"), {{"SSL_CERT_FILE", "/nonexistent"}});
    CHECK(untrusted.exit_code == 3);
    CHECK(test::contains(untrusted.err, "certificate verify failed"));
    // The certificate names 127.0.0.1, not localhost.
    const auto wrong_name =
        fetch(m.tls_url("/disk.qcow2", "localhost"), {{"SSL_CERT_FILE", m.ca().string()}});
    CHECK(wrong_name.exit_code == 3);
    INFO(wrong_name.err);
    CHECK(test::contains(wrong_name.err, "TLS with localhost:"));
    CHECK(cached_files(cache.path()).empty());
    const auto ok = fetch(m.tls_url("/disk.qcow2"), {{"SSL_CERT_FILE", m.ca().string()}});
    INFO(ok.err);
    REQUIRE(ok.exit_code == 0);
    CHECK(nlohmann::json::parse(ok.out).at("digest") == m.sha256);
}

TEST_CASE("Ctrl-C during a download keeps the partial file, and the next run resumes it with a "
          "Range request and sends only the rest") {
    Mirror m;
    test::TempDir cache;
    const auto part =
        cache.path() / "downloads" / "partial" / ("sha256-" + m.sha256 + ".qcow2.part");
    const std::vector<std::string> args{
        "image",  "fetch",       m.url("/slow/disk.qcow2"), "--sha256",
        m.sha256, "--cache-dir", cache.path().string()};
    {
        test::LabctlJob job(args);
        REQUIRE(job.wait_for(
            [&] {
                std::error_code ec;
                return fs::file_size(part, ec) >= 3u << 20 && !ec;
            },
            30s));
        job.ctrl_c();
        test::check_interrupted_cleanly(job, 3s, "labctl-no-remote-command");
        CHECK(test::contains(job.err(), "the next run resumes it"));
    }
    const auto kept = fs::file_size(part);
    CHECK(cached_files(cache.path()).empty());

    auto o = options(m.url("/slow/disk.qcow2"), cache.path());
    o.sha256 = m.sha256;
    const auto img = image::download(o);
    std::printf("resume: %llu bytes kept, %llu received on resuming (of %llu) in %.2f s\n",
                static_cast<unsigned long long>(img.resumed_from),
                static_cast<unsigned long long>(img.bytes_received),
                static_cast<unsigned long long>(m.size), img.seconds);
    CHECK(img.resumed_from == kept);
    CHECK(img.bytes_received == m.size - kept);
    CHECK(m.requests("/slow/disk.qcow2", 206) == 1);
    CHECK(m.bytes_sent("/slow/disk.qcow2", 206) == m.size - kept);
    CHECK(file_digest(img.path, "sha256") == m.sha256);
    CHECK_FALSE(fs::exists(part));
}

TEST_CASE("a slow body that keeps coming completes, however long it takes, within the stall "
          "bound of each read") {
    Mirror m;
    test::TempDir cache;
    auto o = options(m.url("/slow/disk.qcow2"), cache.path());
    o.sha512 = m.sha512;
    o.stall_timeout = 2s; // nginx sends 4 MB/s in bursts: far more than a byte every 2 s
    const auto img = image::download(o);
    CHECK(img.seconds > 2.5); // 17 MB at 4 MB/s
    CHECK(img.hex == m.sha512);
}

TEST_CASE("a body cut short is exit 3 that keeps what came, and the next run resumes it") {
    const std::string body = random_token(3 << 20);
    RawServer server(body, RawServer::Mode::cut);
    test::TempDir cache;
    auto o = options(server.url(), cache.path());
    Digest d("sha256");
    d.update(body);
    o.sha256 = d.finish_hex();
    std::string message;
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 3);
    CHECK(test::contains(message, fmt::format("closed the connection after {} of {} bytes",
                                              body.size() / 2, body.size())));
    CHECK(test::contains(message, "resumes"));
    CHECK(cached_files(cache.path()).empty());
    const auto img = image::download(o);
    CHECK(img.resumed_from == body.size() / 2);
    CHECK(test::read_file(img.path) == body);
}

TEST_CASE("a server that stops sending is exit 4 after the stall bound, not a hang") {
    const std::string body = random_token(1 << 20);
    RawServer server(body, RawServer::Mode::stall);
    test::TempDir cache;
    auto o = options(server.url(), cache.path());
    o.sha256 = std::string(64, 'c');
    o.stall_timeout = 1500ms;
    const auto started = std::chrono::steady_clock::now();
    std::string message;
    CHECK(test::exit_code_of([&] { image::download(o); }, &message) == 4);
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 10s);
    CHECK(test::contains(message, "sent nothing for 1.5 s"));
    CHECK(cached_files(cache.path()).empty());
}

TEST_CASE("two runs downloading the same image at once take turns: one download, both get the "
          "verified file") {
    Mirror m;
    test::TempDir cache;
    const std::vector<std::string> args{"--output",
                                        "json",
                                        "image",
                                        "fetch",
                                        m.url("/slow/disk.qcow2"),
                                        "--sha256",
                                        m.sha256,
                                        "--cache-dir",
                                        cache.path().string()};
    test::LabctlJob first(args);
    test::LabctlJob second(args);
    REQUIRE(first.finish(120s) == 0);
    REQUIRE(second.finish(120s) == 0);
    const auto a = nlohmann::json::parse(first.out());
    const auto b = nlohmann::json::parse(second.out());
    CHECK(a.at("path") == b.at("path"));
    CHECK(a.at("cached") != b.at("cached")); // one downloaded, the other found its file
    CHECK(test::contains(first.err() + second.err(),
                         "waiting for another labctl downloading the same image"));
    CHECK(m.requests("/slow/disk.qcow2", 200) == 1);
    CHECK(file_digest(a.at("path").get<std::string>(), "sha256") == m.sha256);
}

TEST_CASE("labctl image fetch without a URL downloads the lab file's image.url with its checksum "
          "(file:/// here), and a second run is a cache hit") {
    test::TempDir lab;
    const std::string body = random_token(256 << 10);
    const auto image = lab.write("mirror/base.qcow2", body);
    Digest d("sha512");
    d.update(body);
    const auto sha512 = d.finish_hex();
    lab.write("mirror/SHA512SUMS", fmt::format("{}  base.qcow2\n", sha512));
    const auto file = lab.write(
        "lab.yaml", fmt::format("version: 1\nproject: fetch\nimage:\n  url: file://{}\n"
                                "  checksums: file://{}\nvms:\n  - name: vm1\n",
                                image.string(), (lab.path() / "mirror/SHA512SUMS").string()));
    const auto fetch = [&] {
        return test::run_labctl({"--output", "json", "image", "fetch", "-f", file.string(),
                                 "--cache-dir", (lab.path() / "cache").string()});
    };
    const auto first = fetch();
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto j = nlohmann::json::parse(first.out);
    CHECK(j.at("digest") == sha512);
    CHECK(j.at("cached") == false);
    CHECK(test::read_file(j.at("path").get<std::string>()) == body);
    const auto second = fetch();
    REQUIRE(second.exit_code == 0);
    CHECK(nlohmann::json::parse(second.out).at("cached") == true);
}
