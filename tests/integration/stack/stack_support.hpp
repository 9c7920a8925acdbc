#pragma once
// Test support for the lab stack (stacks/lab): child processes (nginx, Prometheus, the task API,
// node), the shipped nginx config rendered for loopback, and an OTLP/HTTP sink that decodes both
// protobuf (the task API) and JSON (the browser SDK). Only 127.0.0.1 is ever contacted.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace labctl::test::stack {

std::filesystem::path source_dir(); ///< the repository root
std::filesystem::path stack_dir();  ///< stacks/lab
std::string slurp(const std::filesystem::path& p);
void spit(const std::filesystem::path& p, const std::string& content);
/// Replaces every occurrence of `from` (which must occur at least once) in `text`.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

/// A program run in the background (own process group, stdout/stderr to `log`); SIGTERM then
/// SIGKILL on destruction.
class Child {
public:
    Child(std::vector<std::string> argv, std::filesystem::path log,
          std::map<std::string, std::string> env = {});
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    pid_t pid() const { return m_pid; }
    bool running();
    /// SIGTERM, wait up to `limit`, then SIGKILL. Returns the exit code (128+signal if killed).
    int stop(std::chrono::milliseconds limit = std::chrono::seconds(10));
    std::string log_text() const;

private:
    pid_t m_pid = -1;
    int m_status = -1;
    std::filesystem::path m_log;
};

/// Polls GET http://127.0.0.1:port<path> until it answers `status`; false at the deadline.
bool wait_http(std::uint16_t port, const std::string& path, int status,
               std::chrono::milliseconds deadline);

/// The shipped stacks/lab/nginx/default.conf with only the Docker-specific names replaced:
/// `listen 80` -> 127.0.0.1:<listen_port>, the backend and collector upstreams -> 127.0.0.1
/// ports, the document root -> `html_root`. Everything else (resolver, timeouts, headers, error
/// pages, gzip) is the shipped text.
std::string render_nginx_server(std::uint16_t listen_port, std::uint16_t api_port,
                                std::uint16_t otlp_port, const std::filesystem::path& html_root);
/// A complete nginx.conf for `nginx -p <dir> -c <dir>/nginx.conf` that includes `server_conf`
/// inside http {} with all runtime files (pid, logs, temp paths) under `dir`.
std::string nginx_main_conf(const std::filesystem::path& dir,
                            const std::filesystem::path& server_conf);

/// nginx running the given server config from `dir` (waits until it accepts connections).
class Nginx {
public:
    Nginx(const std::filesystem::path& dir, const std::string& server_conf_text,
          std::uint16_t port);
    std::uint16_t port() const { return m_port; }
    std::string error_log() const;

private:
    std::filesystem::path m_dir;
    std::uint16_t m_port;
    std::unique_ptr<Child> m_child;
};

/// prometheus with the given config on 127.0.0.1:<port> (waits for /-/ready).
class Prometheus {
public:
    Prometheus(const std::filesystem::path& dir, const std::string& config_text);
    std::uint16_t port() const { return m_port; }
    nlohmann::json get(const std::string& path_and_query) const; ///< status 200 + JSON or throws
    /// GET /api/v1/query; returns the HTTP status and the JSON answer.
    std::pair<int, nlohmann::json> query(const std::string& promql) const;

private:
    std::uint16_t m_port = 0;
    std::unique_ptr<Child> m_child;
};

std::string url_encode(const std::string& s);

struct SpanRecord {
    std::string service;   ///< resource service.name
    std::string trace_id;  ///< 32 lower-case hex
    std::string span_id;   ///< 16 lower-case hex
    std::string parent_id; ///< empty for a root span
    std::string name;
    int kind = 0; ///< OTLP SpanKind number (2 = SERVER, 3 = CLIENT)
    std::map<std::string, std::string> attributes; ///< string/int/bool values as text
    std::string encoding;                          ///< "protobuf" or "json"
};

/// An OTLP/HTTP receiver on 127.0.0.1: POST /v1/traces (protobuf or JSON) is decoded and kept,
/// POST /v1/logs is accepted and counted.
class OtlpSink {
public:
    OtlpSink();
    ~OtlpSink();
    OtlpSink(const OtlpSink&) = delete;
    OtlpSink& operator=(const OtlpSink&) = delete;
    std::uint16_t port() const;
    std::string endpoint() const; ///< http://127.0.0.1:<port>
    std::vector<SpanRecord> spans() const;
    int requests() const;
    int bad_requests() const;
    /// Waits until `pred(spans())` holds; false at the deadline.
    bool wait_for(const std::function<bool(const std::vector<SpanRecord>&)>& pred,
                  std::chrono::milliseconds deadline) const;

    struct Impl;

private:
    std::unique_ptr<Impl> m_impl;
};

} // namespace labctl::test::stack
