#include "stack_support.hpp"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <labctl/core/process.hpp>

#include "harness.hpp"

extern char** environ;

namespace labctl::test::stack {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path source_dir() {
    return fs::path(LABCTL_STACK_SOURCE_DIR);
}
fs::path stack_dir() {
    return source_dir() / "stacks" / "lab";
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + p.string());
    }
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void spit(const fs::path& p, const std::string& content) {
    if (p.has_parent_path()) {
        fs::create_directories(p.parent_path());
    }
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) {
        throw std::runtime_error("cannot write " + p.string());
    }
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    std::size_t pos = text.find(from);
    if (pos == std::string::npos) {
        throw std::runtime_error("'" + from + "' not found");
    }
    while (pos != std::string::npos) {
        text.replace(pos, from.size(), to);
        pos = text.find(from, pos + to.size());
    }
    return text;
}

// --- Child ------------------------------------------------------------------------------------

Child::Child(std::vector<std::string> argv, fs::path log, std::map<std::string, std::string> env)
    : m_log(std::move(log)) {
    if (argv.empty()) {
        throw std::invalid_argument("Child: empty argv");
    }
    if (argv[0].find('/') == std::string::npos) {
        const auto found = labctl::find_program(argv[0]);
        if (!found) {
            throw std::runtime_error(argv[0] + " not found in PATH");
        }
        argv[0] = *found;
    }
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
    env_strings.reserve(merged.size());
    for (const auto& [k, v] : merged) {
        env_strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& kv : env_strings) {
        envp.push_back(kv.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const std::string log_path = m_log.string();
    m_pid = fork();
    if (m_pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (m_pid == 0) {
        setpgid(0, 0);
        const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        execve(args[0], args.data(), envp.data());
        _exit(127);
    }
    setpgid(m_pid, m_pid);
}

Child::~Child() {
    if (m_status < 0) {
        stop(5s);
    }
}

bool Child::running() {
    if (m_status >= 0) {
        return false;
    }
    int status = 0;
    const pid_t r = waitpid(m_pid, &status, WNOHANG);
    if (r == m_pid) {
        m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return true;
}

int Child::stop(std::chrono::milliseconds limit) {
    if (!running()) {
        return m_status;
    }
    ::kill(m_pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!running()) {
            ::kill(-m_pid, SIGKILL); // leftovers of its process group (nginx workers)
            return m_status;
        }
        std::this_thread::sleep_for(20ms);
    }
    ::kill(-m_pid, SIGKILL);
    int status = 0;
    waitpid(m_pid, &status, 0);
    m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return m_status;
}

std::string Child::log_text() const {
    try {
        return slurp(m_log);
    } catch (...) {
        return {};
    }
}

bool wait_http(std::uint16_t port, const std::string& path, int status,
               std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
        try {
            if (taskapi::http(port, "GET", path, {}, {}, {}, 2s).status == status) {
                return true;
            }
        } catch (...) {
        }
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

// --- nginx ------------------------------------------------------------------------------------

std::string render_nginx_server(std::uint16_t listen_port, std::uint16_t api_port,
                                std::uint16_t otlp_port, const fs::path& html_root) {
    std::string conf = slurp(stack_dir() / "nginx" / "default.conf");
    conf = replace_all(conf, "listen 80;", "listen 127.0.0.1:" + std::to_string(listen_port) + ";");
    conf = replace_all(conf, "http://backend:5000", "http://127.0.0.1:" + std::to_string(api_port));
    conf = replace_all(conf, "http://otel-collector:4318",
                       "http://127.0.0.1:" + std::to_string(otlp_port));
    conf = replace_all(conf, "root /usr/share/nginx/html;", "root " + html_root.string() + ";");
    return conf;
}

std::string nginx_main_conf(const fs::path& dir, const fs::path& server_conf) {
    const std::string d = dir.string();
    std::ostringstream c;
    if (geteuid() == 0) {
        c << "user root;\n"; // workers must read the test's private temp directory
    }
    c << "worker_processes 1;\n"
      << "pid " << d << "/nginx.pid;\n"
      << "error_log " << d << "/error.log info;\n"
      << "events { worker_connections 256; }\n"
      << "http {\n"
      << "    include /etc/nginx/mime.types;\n"
      << "    default_type application/octet-stream;\n"
      << "    access_log " << d << "/access.log;\n"
      << "    client_body_temp_path " << d << "/tmp/body;\n"
      << "    proxy_temp_path " << d << "/tmp/proxy;\n"
      << "    fastcgi_temp_path " << d << "/tmp/fastcgi;\n"
      << "    uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
      << "    scgi_temp_path " << d << "/tmp/scgi;\n"
      << "    include " << server_conf.string() << ";\n"
      << "}\n";
    return c.str();
}

Nginx::Nginx(const fs::path& dir, const std::string& server_conf_text, std::uint16_t port)
    : m_dir(dir), m_port(port) {
    fs::create_directories(dir / "tmp");
    spit(dir / "server.conf", server_conf_text);
    spit(dir / "nginx.conf", nginx_main_conf(dir, dir / "server.conf"));
    m_child = std::make_unique<Child>(std::vector<std::string>{"nginx", "-p", dir.string() + "/",
                                                               "-c", (dir / "nginx.conf").string(),
                                                               "-g", "daemon off;"},
                                      dir / "nginx.stdout");
    if (!wait_http(port, "/healthz", 200, 15s)) {
        throw std::runtime_error("nginx did not start: " + error_log() + m_child->log_text());
    }
}

std::string Nginx::error_log() const {
    try {
        return slurp(m_dir / "error.log");
    } catch (...) {
        return {};
    }
}

// --- Prometheus -------------------------------------------------------------------------------

std::string url_encode(const std::string& s) {
    std::string out;
    for (const unsigned char c : s) {
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

Prometheus::Prometheus(const fs::path& dir, const std::string& config_text) {
    fs::create_directories(dir);
    spit(dir / "prometheus.yml", config_text);
    m_port = taskapi::free_port();
    m_child = std::make_unique<Child>(
        std::vector<std::string>{"prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(m_port),
                                 "--log.level=warn"},
        dir / "prometheus.log");
    if (!wait_http(m_port, "/-/ready", 200, 30s)) {
        throw std::runtime_error("prometheus did not become ready: " + m_child->log_text());
    }
}

nlohmann::json Prometheus::get(const std::string& path_and_query) const {
    const auto r = taskapi::http(m_port, "GET", path_and_query);
    if (r.status != 200) {
        throw std::runtime_error(path_and_query + " -> " + std::to_string(r.status) + " " + r.body);
    }
    return r.json();
}

std::pair<int, nlohmann::json> Prometheus::query(const std::string& promql) const {
    const auto r = taskapi::http(m_port, "GET", "/api/v1/query?query=" + url_encode(promql));
    nlohmann::json j;
    try {
        j = r.json();
    } catch (...) {
        j = {{"raw", r.body}};
    }
    return {r.status, j};
}

// --- OTLP sink --------------------------------------------------------------------------------

namespace {

std::string to_hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

namespace otlp = opentelemetry::proto;

std::string any_value_text(const otlp::common::v1::AnyValue& v) {
    switch (v.value_case()) {
    case otlp::common::v1::AnyValue::kStringValue:
        return v.string_value();
    case otlp::common::v1::AnyValue::kIntValue:
        return std::to_string(v.int_value());
    case otlp::common::v1::AnyValue::kBoolValue:
        return v.bool_value() ? "true" : "false";
    case otlp::common::v1::AnyValue::kDoubleValue:
        return std::to_string(v.double_value());
    default:
        return {};
    }
}

std::string json_value_text(const nlohmann::json& v) {
    if (v.contains("stringValue")) {
        return v["stringValue"].get<std::string>();
    }
    if (v.contains("intValue")) {
        const auto& i = v["intValue"];
        return i.is_string() ? i.get<std::string>() : std::to_string(i.get<long long>());
    }
    if (v.contains("boolValue")) {
        return v["boolValue"].get<bool>() ? "true" : "false";
    }
    if (v.contains("doubleValue")) {
        return std::to_string(v["doubleValue"].get<double>());
    }
    return {};
}

std::vector<SpanRecord> decode_protobuf(const std::string& body) {
    otlp::collector::trace::v1::ExportTraceServiceRequest req;
    if (!req.ParseFromString(body)) {
        throw std::runtime_error("invalid OTLP protobuf");
    }
    std::vector<SpanRecord> out;
    for (const auto& rs : req.resource_spans()) {
        std::string service;
        for (const auto& a : rs.resource().attributes()) {
            if (a.key() == "service.name") {
                service = any_value_text(a.value());
            }
        }
        for (const auto& ss : rs.scope_spans()) {
            for (const auto& s : ss.spans()) {
                SpanRecord r;
                r.service = service;
                r.trace_id = to_hex(s.trace_id());
                r.span_id = to_hex(s.span_id());
                r.parent_id = to_hex(s.parent_span_id());
                r.name = s.name();
                r.kind = static_cast<int>(s.kind());
                for (const auto& a : s.attributes()) {
                    r.attributes[a.key()] = any_value_text(a.value());
                }
                r.encoding = "protobuf";
                out.push_back(std::move(r));
            }
        }
    }
    return out;
}

// OTLP/JSON: trace and span ids are hex strings (not base64), enums are numbers.
std::vector<SpanRecord> decode_json(const std::string& body) {
    const auto j = nlohmann::json::parse(body);
    std::vector<SpanRecord> out;
    for (const auto& rs : j.value("resourceSpans", nlohmann::json::array())) {
        std::string service;
        if (rs.contains("resource")) {
            for (const auto& a : rs["resource"].value("attributes", nlohmann::json::array())) {
                if (a.value("key", "") == "service.name") {
                    service = json_value_text(a["value"]);
                }
            }
        }
        for (const auto& ss : rs.value("scopeSpans", nlohmann::json::array())) {
            for (const auto& s : ss.value("spans", nlohmann::json::array())) {
                SpanRecord r;
                r.service = service;
                r.trace_id = lower(s.value("traceId", ""));
                r.span_id = lower(s.value("spanId", ""));
                r.parent_id = lower(s.value("parentSpanId", ""));
                r.name = s.value("name", "");
                r.kind = s.value("kind", 0);
                for (const auto& a : s.value("attributes", nlohmann::json::array())) {
                    r.attributes[a.value("key", "")] = json_value_text(a["value"]);
                }
                r.encoding = "json";
                out.push_back(std::move(r));
            }
        }
    }
    return out;
}

} // namespace

struct OtlpSink::Impl {
    mutable std::mutex mutex;
    std::vector<SpanRecord> spans;
    std::atomic<int> requests{0};
    std::atomic<int> bad{0};
    std::unique_ptr<Poco::Net::HTTPServer> server;
    std::uint16_t port = 0;

    class Handler final : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(Impl& impl) : m_impl(impl) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request,
                           Poco::Net::HTTPServerResponse& response) override {
            m_impl.requests.fetch_add(1);
            std::string body;
            Poco::StreamCopier::copyToString(request.stream(), body);
            const std::string type = lower(request.getContentType());
            const bool json = type.find("json") != std::string::npos;
            const std::string& uri = request.getURI();
            try {
                if (request.getMethod() != "POST") {
                    throw std::runtime_error("method");
                }
                if (uri == "/v1/traces") {
                    auto decoded = json ? decode_json(body) : decode_protobuf(body);
                    const std::lock_guard lock(m_impl.mutex);
                    for (auto& s : decoded) {
                        m_impl.spans.push_back(std::move(s));
                    }
                } else if (uri != "/v1/logs" && uri != "/v1/metrics") {
                    throw std::runtime_error("path");
                }
            } catch (const std::exception&) {
                m_impl.bad.fetch_add(1);
                response.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
                response.setContentType("application/json");
                response.send() << R"({"error":"bad request"})";
                return;
            }
            response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
            if (json) {
                response.setContentType("application/json");
                response.send() << "{}";
            } else {
                // An empty Export*ServiceResponse is zero bytes of protobuf.
                response.setContentType("application/x-protobuf");
                response.setContentLength(0);
                response.send();
            }
        }

    private:
        Impl& m_impl;
    };

    class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(Impl& impl) : m_impl(impl) {}
        Poco::Net::HTTPRequestHandler*
        createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(m_impl);
        }

    private:
        Impl& m_impl;
    };
};

OtlpSink::OtlpSink() : m_impl(std::make_unique<Impl>()) {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    m_impl->port = socket.address().port();
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(8);
    params->setKeepAlive(true);
    m_impl->server =
        std::make_unique<Poco::Net::HTTPServer>(new Impl::Factory(*m_impl), socket, params);
    m_impl->server->start();
}

OtlpSink::~OtlpSink() {
    m_impl->server->stopAll(true);
}

std::uint16_t OtlpSink::port() const {
    return m_impl->port;
}
std::string OtlpSink::endpoint() const {
    return "http://127.0.0.1:" + std::to_string(m_impl->port);
}
std::vector<SpanRecord> OtlpSink::spans() const {
    const std::lock_guard lock(m_impl->mutex);
    return m_impl->spans;
}
int OtlpSink::requests() const {
    return m_impl->requests.load();
}
int OtlpSink::bad_requests() const {
    return m_impl->bad.load();
}

bool OtlpSink::wait_for(const std::function<bool(const std::vector<SpanRecord>&)>& pred,
                        std::chrono::milliseconds deadline) const {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
        if (pred(spans())) {
            return true;
        }
        std::this_thread::sleep_for(100ms);
    }
    return pred(spans());
}

} // namespace labctl::test::stack
