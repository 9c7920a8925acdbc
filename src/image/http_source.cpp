#include "http_source.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/URI.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <istream>
#include <mutex>
#include <set>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/version.hpp>

namespace labctl::image {

namespace {

using namespace std::chrono_literals;

Poco::Timespan timespan(std::chrono::milliseconds d) {
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(d.count()) * 1000);
}

std::string seconds(std::chrono::milliseconds d) {
    return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

/// One TLS context for every HTTPS download: peer verification against the system CA store
/// (OpenSSL's default paths, so SSL_CERT_FILE / SSL_CERT_DIR point it elsewhere), TLS 1.2 at least.
/// A certificate that fails is rejected, never asked about.
Poco::Net::Context::Ptr tls_context() {
    static Poco::Net::Context::Ptr context = [] {
        Poco::Net::initializeSSL();
        Poco::Net::Context::Params params;
        params.verificationMode = Poco::Net::Context::VERIFY_RELAXED;
        params.loadDefaultCAs = true;
        params.cipherList = "DEFAULT";
        Poco::Net::Context::Ptr c =
            new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
        c->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        Poco::SharedPtr<Poco::Net::InvalidCertificateHandler> reject =
            new Poco::Net::RejectCertificateHandler(false);
        Poco::Net::SSLManager::instance().initializeClient(nullptr, reject, c);
        return c;
    }();
    return context;
}

/// Ends a blocked read or connect when Ctrl-C arrives: shutting the socket down wakes the thread
/// reading it (a plain syscall on the descriptor; the socket object itself stays with its owner).
class InterruptWatch {
public:
    InterruptWatch()
        : m_thread([this](std::stop_token stop) {
              while (!stop.stop_requested()) {
                  if (signals::interrupted()) {
                      std::lock_guard lock(m_mutex);
                      if (m_fd >= 0)
                          ::shutdown(m_fd, SHUT_RDWR);
                  }
                  std::this_thread::sleep_for(100ms);
              }
          }) {}
    void watch(int fd) {
        std::lock_guard lock(m_mutex);
        m_fd = fd;
    }

private:
    std::mutex m_mutex;
    int m_fd = -1;
    std::jthread m_thread; // last: stopped and joined before the members it uses go
};

[[noreturn]] void fail_network(const Poco::Exception& e, const Poco::URI& uri,
                               const SourceOptions& o, bool connecting) {
    signals::check();
    const std::string where = fmt::format("{}:{}", uri.getHost(), uri.getPort());
    if (dynamic_cast<const Poco::TimeoutException*>(&e) != nullptr)
        throw Error(ExitCode::timeout,
                    connecting ? fmt::format("no connection to {} within {} ({})", where,
                                             seconds(o.connect_timeout), uri.toString())
                               : fmt::format("{} sent nothing for {} ({})", where,
                                             seconds(o.stall_timeout), uri.toString()),
                    "check the network path to the server; run again to resume the download");
    if (dynamic_cast<const Poco::Net::SSLException*>(&e) != nullptr)
        throw Error(ExitCode::preflight,
                    fmt::format("TLS with {} failed: {}", where, e.displayText()),
                    "the server's certificate must be valid for its name and signed by a CA in the "
                    "system store (/etc/ssl/certs; SSL_CERT_FILE names another bundle)");
    if (dynamic_cast<const Poco::Net::HostNotFoundException*>(&e) != nullptr ||
        dynamic_cast<const Poco::Net::NoAddressFoundException*>(&e) != nullptr)
        throw Error(ExitCode::preflight, fmt::format("cannot resolve {}", uri.getHost()),
                    "check the host name in the URL and this machine's DNS");
    throw Error(ExitCode::preflight,
                fmt::format("downloading {} failed: {}", uri.toString(), e.displayText()),
                connecting ? "check that the server is up and reachable from this machine"
                           : "run again: the download resumes where it stopped");
}

/// The peer's certificate must name the URL's host exactly (RFC 6125, through OpenSSL). Poco's
/// own check also accepts any name that resolves to the same address — "localhost" for a
/// certificate of 127.0.0.1 — which a name check must not.
void check_peer_name(Poco::Net::HTTPClientSession& session, const Poco::URI& uri) {
    auto* tls = dynamic_cast<Poco::Net::HTTPSClientSession*>(&session);
    if (tls == nullptr)
        return;
    const auto cert = tls->serverCertificate();
    auto* x509 = const_cast<X509*>(cert.certificate());
    const std::string& host = uri.getHost();
    const bool ip = X509_check_ip_asc(x509, host.c_str(), 0) == 1;
    const bool name = !ip && X509_check_host(x509, host.c_str(), host.size(),
                                             X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
    if (!ip && !name)
        throw Error(ExitCode::preflight,
                    fmt::format("TLS with {}:{} failed: its certificate ({}) is not valid for "
                                "the name '{}'",
                                host, uri.getPort(), cert.subjectName(), host),
                    "use the host name the server's certificate names");
}

std::string status_hint(int status) {
    if (status == 404 || status == 410)
        return "check the URL: a 'latest' directory moves when a newer image is published "
               "(image.checksums follows it; a dated directory does not move)";
    if (status == 401 || status == 403)
        return "the server refuses this download: check the URL and its access rules";
    if (status >= 500)
        return "the server failed: try again later";
    return "check the URL";
}

class HttpSource final : public BodySource {
public:
    HttpSource(const std::string& url, std::uint64_t offset, const std::string& if_range,
               const SourceOptions& o)
        : m_options(o) {
        Poco::URI uri;
        try {
            uri = Poco::URI(url);
        } catch (const Poco::Exception& e) {
            throw usage_error(fmt::format("'{}' is not a URL: {}", url, e.displayText()),
                              "e.g. https://cloud.debian.org/images/cloud/bookworm/latest/"
                              "debian-12-genericcloud-amd64.qcow2");
        }
        std::vector<std::string> chain{uri.toString()};
        std::set<std::string> seen{uri.toString()};
        for (;;) {
            const int status = request(uri, offset, if_range);
            if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
                uri = follow(uri, chain, seen);
                continue;
            }
            accept(uri, status, offset);
            final_url = uri.toString();
            return;
        }
    }

    std::size_t read(char* buf, std::size_t n) override {
        if (m_length && m_got >= *m_length)
            return 0;
        if (m_length)
            n = static_cast<std::size_t>(std::min<std::uint64_t>(n, *m_length - m_got));
        std::streamsize got = 0;
        try {
            m_body->read(buf, static_cast<std::streamsize>(n));
            got = m_body->gcount();
        } catch (const Poco::Exception& e) {
            fail_network(e, m_uri, m_options, false);
        } catch (const std::ios_base::failure&) {
            signals::check();
            if (const Poco::Exception* e = m_session->networkException())
                fail_network(*e, m_uri, m_options, false);
            throw Error(ExitCode::preflight,
                        fmt::format("reading {} failed after {} bytes", final_url, m_got),
                        "run again: the download resumes where it stopped");
        }
        signals::check();
        m_got += static_cast<std::uint64_t>(got);
        if (got == 0 && m_length && m_got < *m_length)
            throw Error(ExitCode::preflight,
                        fmt::format("{} closed the connection after {} of {} bytes", final_url,
                                    m_got, *m_length),
                        "run again: the download resumes where it stopped");
        return static_cast<std::size_t>(got);
    }

private:
    /// Sends the GET on a new session; the status of its answer.
    int request(const Poco::URI& uri, std::uint64_t offset, const std::string& if_range) {
        m_uri = uri;
        m_body = nullptr;
        std::unique_ptr<Poco::Net::HTTPClientSession> session;
        if (uri.getScheme() == "https")
            session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(),
                                                                      tls_context());
        else
            session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
        session->setTimeout(timespan(m_options.connect_timeout), timespan(m_options.stall_timeout),
                            timespan(m_options.stall_timeout));
        session->setKeepAlive(false);
        Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET,
                                   uri.getPathEtc().empty() ? "/" : uri.getPathEtc(),
                                   Poco::Net::HTTPMessage::HTTP_1_1);
        req.set("User-Agent", fmt::format("labctl/{}", version()));
        req.set("Accept-Encoding", "identity"); // the digest is of the file, not of a gzip of it
        if (offset > 0) {
            req.set("Range", fmt::format("bytes={}-", offset));
            if (!if_range.empty())
                req.set("If-Range", if_range);
        }
        m_watch.watch(-1); // the old session's descriptor is closed below: never shut it down
        m_session.reset();
        m_session = std::move(session);
        try {
            m_session->sendRequest(req);
            m_watch.watch(m_session->socket().impl()->sockfd());
            // After the request went out (Poco completes the handshake inside sendRequest), but
            // before a byte of the answer is read.
            check_peer_name(*m_session, uri);
            m_response = Poco::Net::HTTPResponse();
            m_body = &m_session->receiveResponse(m_response);
        } catch (const Poco::Exception& e) {
            fail_network(e, uri, m_options, true);
        }
        m_body->exceptions(std::ios::badbit);
        return static_cast<int>(m_response.getStatus());
    }

    Poco::URI follow(const Poco::URI& from, std::vector<std::string>& chain,
                     std::set<std::string>& seen) {
        if (!m_response.has("Location"))
            throw Error(ExitCode::preflight,
                        fmt::format("{} answered {} without a Location", from.toString(),
                                    static_cast<int>(m_response.getStatus())),
                        "the server's redirect is broken: use the final URL");
        Poco::URI next(from);
        try {
            next.resolve(m_response.get("Location"));
        } catch (const Poco::Exception& e) {
            throw Error(ExitCode::preflight,
                        fmt::format("{} redirects to an invalid URL '{}': {}", from.toString(),
                                    m_response.get("Location"), e.displayText()),
                        "the server's redirect is broken: use the final URL");
        }
        const auto text = next.toString();
        chain.push_back(text);
        const auto path = [&chain] {
            std::string out;
            for (const auto& u : chain)
                out += (out.empty() ? "" : " -> ") + u;
            return out;
        };
        if (next.getScheme() != "http" && next.getScheme() != "https")
            throw Error(ExitCode::preflight,
                        fmt::format("redirect to a URL that is not http(s): {}", path()),
                        "use the final URL in lab.yaml");
        if (from.getScheme() == "https" && next.getScheme() == "http")
            throw Error(ExitCode::preflight,
                        fmt::format("refusing a redirect from https to http: {}", path()),
                        "a download that starts on https stays on it: use an https mirror");
        if (!seen.insert(text).second)
            throw Error(ExitCode::preflight, fmt::format("redirect loop: {}", path()),
                        "the server redirects in a circle: report it to its operator, or use "
                        "another mirror");
        if (static_cast<int>(chain.size()) - 1 > m_options.max_redirects)
            throw Error(ExitCode::preflight,
                        fmt::format("more than {} redirects: {}", m_options.max_redirects, path()),
                        "use the final URL in lab.yaml");
        return next;
    }

    /// Checks the final answer and reads where its body starts and how long it is.
    void accept(const Poco::URI& uri, int status, std::uint64_t offset) {
        const auto& r = m_response;
        if (status == 416 && offset > 0)
            throw RangeNotSatisfiable{};
        if (status != 200 && status != 206)
            throw Error(
                ExitCode::preflight,
                fmt::format("{} answered HTTP {} {}", uri.toString(), status, r.getReason()),
                status_hint(status));
        if (r.has("ETag") && !r.get("ETag").starts_with("W/"))
            validator = r.get("ETag"); // If-Range takes only a strong validator
        else if (r.has("Last-Modified"))
            validator = r.get("Last-Modified");
        if (status == 200) {
            start = 0;
            if (r.hasContentLength())
                total = m_length = static_cast<std::uint64_t>(r.getContentLength64());
            return;
        }
        // 206: "Content-Range: bytes FIRST-LAST/TOTAL" (TOTAL may be "*").
        const std::string range = r.get("Content-Range", "");
        unsigned long long first = 0, last = 0;
        char whole[32] = {0};
        if (std::sscanf(range.c_str(), "bytes %llu-%llu/%31s", &first, &last, whole) != 3 ||
            last < first || first != offset)
            throw Error(ExitCode::preflight,
                        fmt::format("{} answered a range request with Content-Range '{}'",
                                    uri.toString(), range),
                        "the server's range support is broken: delete the partial download "
                        "under the image cache's downloads/partial and run again");
        start = first;
        m_length = last - first + 1;
        if (std::string(whole) != "*")
            total = std::stoull(whole);
    }

    SourceOptions m_options;
    Poco::URI m_uri;
    Poco::Net::HTTPResponse m_response;
    std::unique_ptr<Poco::Net::HTTPClientSession> m_session;
    std::istream* m_body = nullptr;
    std::optional<std::uint64_t> m_length; ///< body bytes to expect, when known
    std::uint64_t m_got = 0;
    InterruptWatch m_watch; // last: stops watching before the session goes
};

/// file:///: the same contract over a local file (a mirror on a mounted share, tests).
class FileSource final : public BodySource {
public:
    FileSource(const std::string& url, std::uint64_t offset) {
        const std::string path = Poco::URI(url).getPath();
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot read {}: {}", path, std::strerror(errno)),
                        "check the file:/// URL");
        m_fd.fd = fd;
        struct stat st {};
        if (::fstat(fd, &st) != 0)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot stat {}: {}", path, std::strerror(errno)));
        total = static_cast<std::uint64_t>(st.st_size);
        if (offset > *total)
            throw RangeNotSatisfiable{};
        if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot seek in {}: {}", path, std::strerror(errno)));
        start = offset;
        final_url = url;
        m_path = path;
    }
    std::size_t read(char* buf, std::size_t n) override {
        signals::check();
        for (;;) {
            const ssize_t got = ::read(m_fd.fd, buf, n);
            if (got >= 0)
                return static_cast<std::size_t>(got);
            if (errno != EINTR)
                throw Error(ExitCode::preflight, fmt::format("error while reading {}: {}", m_path,
                                                             std::strerror(errno)));
        }
    }

private:
    Fd m_fd;
    std::string m_path;
};

} // namespace

std::unique_ptr<BodySource> open_source(const std::string& url, std::uint64_t offset,
                                        const std::string& if_range, const SourceOptions& options) {
    if (url.starts_with("file://"))
        return std::make_unique<FileSource>(url, offset);
    if (!url.starts_with("http://") && !url.starts_with("https://"))
        throw usage_error(fmt::format("'{}' is not an http, https or file URL", url),
                          "e.g. https://cloud.debian.org/images/cloud/bookworm/latest/"
                          "debian-12-genericcloud-amd64.qcow2");
    return std::make_unique<HttpSource>(url, offset, if_range, options);
}

} // namespace labctl::image
