#pragma once
// The HTTP side: routing, handlers, per-request telemetry, and a Poco TCPServer whose connection
// class reads request heads itself and answers the ones it refuses with a JSON error body.

#include <Poco/Event.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "config.hpp"

namespace Poco::Net {
class HTTPServerRequest;
class HTTPServerResponse;
class StreamSocket;
} // namespace Poco::Net

namespace labctl::taskapi {

class Metrics;
class Telemetry;
class JsonLog;
class TaskStore;

/// A response before it is written.
struct Reply {
    int status = 200;
    std::string body;
    std::shared_ptr<const std::string> shared_body; ///< used instead of `body` when set
    const char* content_type = "application/json";
    std::string allow;  ///< Allow header for 405
    bool close = false; ///< close the connection afterwards (unread body, framing trouble)
};

/// Span attributes that stay the same for every request on one connection, worked out on its
/// first request (formatting the peer address costs about 900 instructions).
struct ConnectionPeer {
    bool known = false;
    std::string client_address;
    std::int64_t server_port = 0;
};

class App {
public:
    App(const Config& config, Metrics& metrics, Telemetry& telemetry, JsonLog& log,
        TaskStore* store);

    /// Handles one parsed request completely; the answer goes to `socket` (see send_reply).
    /// `peer` belongs to the request's connection.
    void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                Poco::Net::StreamSocket& socket, ConnectionPeer& peer);

    bool stopping() const { return m_stopping.load(std::memory_order_relaxed); }
    /// The flag stopping() reads, for waits that poll it (lingering_close).
    const std::atomic<bool>& stop_flag() const { return m_stopping; }
    /// Stop keeping connections alive and cut simulated delays short.
    void begin_stop();
    JsonLog& log() { return m_log; }

private:
    struct Route;
    Reply dispatch(const Route& route, Poco::Net::HTTPServerRequest& request,
                   const std::string& query);
    Reply read_json_body(Poco::Net::HTTPServerRequest& request, std::string& body, bool& ok);

    Config m_config;
    Metrics& m_metrics;
    Telemetry& m_telemetry;
    JsonLog& m_log;
    TaskStore* m_store; ///< null in --trivial mode
    std::atomic<bool> m_stopping{false};
    Poco::Event m_wake{Poco::Event::EVENT_MANUALRESET};
};

/// The listening server: a TCPServer with our own connection class and thread pool.
class Server {
public:
    Server(const Config& config, App& app);
    ~Server();
    std::uint16_t port() const;
    void start();
    /// Stops accepting, lets in-flight requests finish (up to `grace`), returns whether all did.
    bool stop(std::chrono::milliseconds grace);

private:
    App& m_app;
    Poco::ThreadPool m_pool;
    std::unique_ptr<Poco::Net::TCPServer> m_server;
};

/// Writes `reply` (Content-Length framing) to `socket` with one writev: status line, Date,
/// Connection (from `response`'s keep-alive), Content-Type, Allow, Content-Length, then the body
/// unless the request is HEAD. Poco's sendBuffer() costs two iostreams, a header map and a send
/// per 4 KiB of body.
void send_reply(const Poco::Net::HTTPServerRequest& request,
                Poco::Net::HTTPServerResponse& response, Poco::Net::StreamSocket& socket,
                const Reply& reply);

} // namespace labctl::taskapi
