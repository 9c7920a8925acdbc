#pragma once
// Test harness for the task API: starts labctl-taskapi on a free loopback port with its own
// database, talks HTTP to it (Poco client and raw sockets for malformed requests), and stops it.
// Only 127.0.0.1 is ever contacted.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace labctl::test::taskapi {

inline constexpr const char* k_loopback = "127.0.0.1";

/// A fresh directory under $TMPDIR, removed recursively on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }

private:
    std::filesystem::path m_path;
};

/// A currently free TCP port on 127.0.0.1.
std::uint16_t free_port();

struct HttpResult {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers; ///< lower-case names
    double seconds = 0;
    nlohmann::json json() const; ///< body parsed (throws on invalid JSON)
    std::string header(const std::string& lower_name) const;
};

/// One HTTP/1.1 request to 127.0.0.1:port (a fresh connection). `content_type` empty: none sent.
HttpResult http(std::uint16_t port, const std::string& method, const std::string& target,
                const std::string& body = {}, const std::string& content_type = {},
                const std::map<std::string, std::string>& headers = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(15));

/// Sends `raw` bytes on a fresh connection and parses one HTTP response (Content-Length framing
/// or until close). status 0 when no response arrived.
HttpResult raw_http(std::uint16_t port, const std::string& raw,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// A running labctl-taskapi process.
class ApiProcess {
public:
    /// Starts the service with HOST=127.0.0.1, a free PORT, DB_PATH=<db>, OTEL disabled unless
    /// `env` says otherwise, stdout/stderr to <log>. Waits until /health answers 200.
    ApiProcess(std::filesystem::path db, std::filesystem::path log,
               std::map<std::string, std::string> env = {}, std::vector<std::string> args = {});
    ~ApiProcess();
    ApiProcess(const ApiProcess&) = delete;
    ApiProcess& operator=(const ApiProcess&) = delete;

    std::uint16_t port() const { return m_port; }
    pid_t pid() const { return m_pid; }
    bool running();
    /// SIGTERM and wait up to `limit`; returns the exit code (or -signal), nullopt on timeout.
    std::optional<int> terminate(std::chrono::milliseconds limit = std::chrono::seconds(15));
    void kill9();
    std::string log_text() const;

private:
    std::filesystem::path m_log;
    std::uint16_t m_port = 0;
    pid_t m_pid = -1;
};

std::filesystem::path taskapi_binary();

/// Values of one metric series in Prometheus text (`name{labels} value` lines); labels matched
/// as substrings, e.g. {"endpoint=\"/api/tasks\"", "status_code=\"201\""}.
double metric_sum(const std::string& exposition, const std::string& name,
                  const std::vector<std::string>& label_matchers = {});
/// Number of series lines of `name` matching all `label_matchers`.
std::size_t series_count(const std::string& exposition, const std::string& name,
                         const std::vector<std::string>& label_matchers = {});

} // namespace labctl::test::taskapi
