#include "harness.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace labctl::test::taskapi {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

} // namespace

std::filesystem::path taskapi_binary() {
    // An override to run the tests against another build (say, the one before a fix).
    if (const char* other = std::getenv("LABCTL_TASKAPI_TEST_BINARY"); other != nullptr && *other) {
        return other;
    }
    return TASKAPI_BINARY;
}

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "labctl-taskapi-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("cannot create a temporary directory");
    }
    m_path = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

std::uint16_t free_port() {
    Poco::Net::ServerSocket s(Poco::Net::SocketAddress(k_loopback, 0));
    return s.address().port();
}

nlohmann::json HttpResult::json() const {
    return nlohmann::json::parse(body);
}

std::string HttpResult::header(const std::string& lower_name) const {
    const auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
}

HttpResult http(std::uint16_t port, const std::string& method, const std::string& target,
                const std::string& body, const std::string& content_type,
                const std::map<std::string, std::string>& headers,
                std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    Poco::Net::HTTPClientSession session(k_loopback, port);
    session.setTimeout(Poco::Timespan(static_cast<long>(timeout.count() / 1000),
                                      static_cast<long>((timeout.count() % 1000) * 1000)));
    Poco::Net::HTTPRequest request(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!content_type.empty()) {
        request.setContentType(content_type);
    }
    for (const auto& [k, v] : headers) {
        request.set(k, v);
    }
    if (!body.empty() || method == "POST" || method == "PUT") {
        request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    }
    std::ostream& out = session.sendRequest(request);
    out << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    HttpResult r;
    r.status = static_cast<int>(response.getStatus());
    Poco::StreamCopier::copyToString(in, r.body);
    for (const auto& [k, v] : response) {
        r.headers[lower(k)] = v;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

HttpResult raw_http(std::uint16_t port, const std::string& raw, std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    HttpResult r;
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(k_loopback, port), Poco::Timespan(5, 0));
    socket.setReceiveTimeout(Poco::Timespan(static_cast<long>(timeout.count() / 1000), 0));
    socket.setSendTimeout(Poco::Timespan(5, 0));
    try {
        std::size_t sent = 0;
        while (sent < raw.size()) {
            const int n = socket.sendBytes(
                raw.data() + sent,
                static_cast<int>(std::min<std::size_t>(raw.size() - sent, 64 * 1024)));
            if (n <= 0) {
                break;
            }
            sent += static_cast<std::size_t>(n);
        }
    } catch (const Poco::Exception&) {
        // The server may answer (and close) before everything is sent: read what it said.
    }
    std::string data;
    std::vector<char> buf(16 * 1024);
    std::size_t header_end = std::string::npos;
    std::optional<std::size_t> content_length;
    for (;;) {
        if (header_end == std::string::npos) {
            header_end = data.find("\r\n\r\n");
            if (header_end != std::string::npos) {
                std::istringstream lines(data.substr(0, header_end));
                std::string line;
                std::getline(lines, line);
                if (line.size() >= 12) {
                    r.status = std::atoi(line.substr(9, 3).c_str());
                }
                while (std::getline(lines, line)) {
                    if (!line.empty() && line.back() == '\r') {
                        line.pop_back();
                    }
                    const auto colon = line.find(':');
                    if (colon == std::string::npos) {
                        continue;
                    }
                    std::string value = line.substr(colon + 1);
                    value.erase(0, value.find_first_not_of(' '));
                    r.headers[lower(line.substr(0, colon))] = value;
                }
                if (r.headers.count("content-length") != 0) {
                    content_length = std::stoul(r.headers["content-length"]);
                }
            }
        }
        if (header_end != std::string::npos && content_length &&
            data.size() >= header_end + 4 + *content_length) {
            break;
        }
        int n = 0;
        try {
            n = socket.receiveBytes(buf.data(), static_cast<int>(buf.size()));
        } catch (const Poco::Exception&) {
            break;
        }
        if (n <= 0) {
            break;
        }
        data.append(buf.data(), static_cast<std::size_t>(n));
    }
    if (header_end != std::string::npos) {
        r.body = data.substr(header_end + 4);
        if (content_length) {
            r.body.resize(std::min(r.body.size(), *content_length));
        }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

ApiProcess::ApiProcess(std::filesystem::path db, std::filesystem::path log,
                       std::map<std::string, std::string> env, std::vector<std::string> args)
    : m_log(std::move(log)) {
    env.emplace("HOST", k_loopback);
    env.emplace("DB_PATH", db.string());
    env.emplace("OTEL_SDK_DISABLED", "true");
    env.emplace("LOG_LEVEL", "info");
    // Never let a test export to anything but loopback.
    env.emplace("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9");
    for (int attempt = 0; attempt < 5; ++attempt) {
        m_port = free_port();
        env["PORT"] = std::to_string(m_port);
        const std::string binary = taskapi_binary().string();
        // Everything the child needs is prepared before fork (only async-signal-safe calls after).
        std::map<std::string, std::string> merged;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string kv = *e;
            const auto eq = kv.find('=');
            if (eq != std::string::npos) {
                merged[kv.substr(0, eq)] = kv.substr(eq + 1);
            }
        }
        for (const auto& [k, v] : env) {
            merged[k] = v;
        }
        std::vector<std::string> env_strings;
        for (const auto& [k, v] : merged) {
            env_strings.push_back(k + "=" + v);
        }
        std::vector<char*> envp;
        for (auto& kv : env_strings) {
            envp.push_back(kv.data());
        }
        envp.push_back(nullptr);
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(binary.c_str()));
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const std::string log_path = m_log.string();
        m_pid = fork();
        if (m_pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (m_pid == 0) {
            const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            execve(binary.c_str(), argv.data(), envp.data());
            _exit(127);
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        while (std::chrono::steady_clock::now() < deadline) {
            if (!running()) {
                break; // exited (port taken by someone else?) → retry with another port
            }
            try {
                if (http(m_port, "GET", "/health", {}, {}, {}, std::chrono::seconds(2)).status ==
                    200) {
                    return;
                }
            } catch (const Poco::Exception&) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (running()) {
            kill9();
            throw std::runtime_error("labctl-taskapi did not become healthy; log:\n" + log_text());
        }
    }
    throw std::runtime_error("labctl-taskapi failed to start; log:\n" + log_text());
}

ApiProcess::~ApiProcess() {
    if (m_pid > 0 && running()) {
        if (!terminate(std::chrono::seconds(12))) {
            kill9();
        }
    }
}

bool ApiProcess::running() {
    if (m_pid <= 0) {
        return false;
    }
    int status = 0;
    const pid_t r = waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
        m_pid = -1;
        return false;
    }
    return r == 0;
}

std::optional<int> ApiProcess::terminate(std::chrono::milliseconds limit) {
    if (m_pid <= 0) {
        return std::nullopt;
    }
    ::kill(m_pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        const pid_t r = waitpid(m_pid, &status, WNOHANG);
        if (r == m_pid) {
            m_pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
}

void ApiProcess::kill9() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        int status = 0;
        waitpid(m_pid, &status, 0);
        m_pid = -1;
    }
}

std::string ApiProcess::log_text() const {
    std::ifstream in(m_log, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

namespace {

template <typename F>
void for_series(const std::string& exposition, const std::string& name,
                const std::vector<std::string>& label_matchers, F&& on_line) {
    std::istringstream lines(exposition);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) {
            continue;
        }
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next != '{' && next != ' ') {
            continue;
        }
        const bool all =
            std::all_of(label_matchers.begin(), label_matchers.end(),
                        [&](const std::string& m) { return line.find(m) != std::string::npos; });
        if (!all) {
            continue;
        }
        on_line(line);
    }
}

} // namespace

double metric_sum(const std::string& exposition, const std::string& name,
                  const std::vector<std::string>& label_matchers) {
    double sum = 0;
    for_series(exposition, name, label_matchers, [&](const std::string& line) {
        sum += std::stod(line.substr(line.rfind(' ') + 1));
    });
    return sum;
}

std::size_t series_count(const std::string& exposition, const std::string& name,
                         const std::vector<std::string>& label_matchers) {
    std::size_t n = 0;
    for_series(exposition, name, label_matchers, [&](const std::string&) { ++n; });
    return n;
}

} // namespace labctl::test::taskapi
