// The HTTP server side of App (server.hpp): writing replies, Poco's session, request and
// connection classes adapted (one poll per keep-alive wait, the request head read and checked by
// our HeadReader with JSON bodies for the heads it refuses, keep-alive ended by stopping), and
// the listening TCPServer.

#include <Poco/Exception.h>
#include <Poco/Net/HTTPChunkedStream.h>
#include <Poco/Net/HTTPFixedLengthStream.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketDefs.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <poll.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "json_log.hpp"
#include "json_text.hpp"
#include "linger.hpp"
#include "request_head.hpp"
#include "server.hpp"

namespace labctl::taskapi {

using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

/// The Date header value (RFC 9110 IMF-fixdate), formatted once per second per thread.
std::string_view http_date() {
    thread_local std::time_t t_second = -1;
    thread_local std::array<char, 40> t_text{};
    thread_local std::size_t t_size = 0;
    const std::time_t now = std::time(nullptr);
    if (now != t_second) {
        static constexpr std::array<const char*, 7> k_days = {"Sun", "Mon", "Tue", "Wed",
                                                              "Thu", "Fri", "Sat"};
        static constexpr std::array<const char*, 12> k_months = {
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm tm{};
        gmtime_r(&now, &tm);
        const int n =
            std::snprintf(t_text.data(), t_text.size(), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                          k_days.at(static_cast<std::size_t>(tm.tm_wday)), tm.tm_mday,
                          k_months.at(static_cast<std::size_t>(tm.tm_mon)), tm.tm_year + 1900,
                          tm.tm_hour, tm.tm_min, tm.tm_sec);
        t_size = n > 0 ? static_cast<std::size_t>(n) : 0;
        t_second = now;
    }
    return {t_text.data(), t_size};
}

} // namespace

void send_reply(const HTTPServerRequest& request, HTTPServerResponse& response,
                Poco::Net::StreamSocket& socket, const Reply& reply) {
    if (reply.close) {
        response.setKeepAlive(false);
    }
    const std::string& body = reply.shared_body ? *reply.shared_body : reply.body;
    const auto status = static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status);
    // The same bytes Poco's sendBuffer() writes, header order included.
    std::string head;
    head.reserve(192);
    head += response.getVersion();
    head += ' ';
    head += std::to_string(reply.status);
    head += ' ';
    head += Poco::Net::HTTPResponse::getReasonForStatus(status);
    head += "\r\nDate: ";
    head += http_date();
    head += response.getKeepAlive() ? "\r\nConnection: Keep-Alive" : "\r\nConnection: Close";
    head += "\r\nContent-Type: ";
    head += reply.content_type;
    if (!reply.allow.empty()) {
        head += "\r\nAllow: ";
        head += reply.allow;
    }
    head += "\r\nContent-Length: ";
    head += std::to_string(body.size());
    head += "\r\n\r\n";
    response.setStatus(status); // for whoever reads the response object afterwards
    const bool with_body = !body.empty() && request.getMethod() != "HEAD";
    Poco::Net::SocketBufVec parts = {
        {head.data(), head.size()},
        {const_cast<char*>(body.data()), with_body ? body.size() : 0}}; // iovec wants non-const
    std::size_t left = head.size() + parts[1].iov_len;
    while (left > 0) {
        const int sent = socket.sendBytes(parts);
        if (sent <= 0) {
            throw Poco::Net::NetException("connection closed while sending the response");
        }
        // A short write (peer slow, send timeout): continue after what went out.
        auto done = static_cast<std::size_t>(sent);
        left -= done;
        for (auto& part : parts) {
            const std::size_t n = std::min(done, part.iov_len);
            part.iov_base = static_cast<char*>(part.iov_base) + n;
            part.iov_len -= n;
            done -= n;
        }
    }
}

namespace {

/// Poco's HTTPServerSession, except that waiting for the next request is one poll(2): Poco's
/// hasMoreRequests() goes through Socket::poll, which creates, fills, waits on and closes an
/// epoll instance: four system calls per request on a keep-alive connection.
class Session final : public Poco::Net::HTTPServerSession {
public:
    Session(const Poco::Net::StreamSocket& socket, const Poco::Net::HTTPServerParams::Ptr& params)
        : Poco::Net::HTTPServerSession(socket, params), m_params(params) {}

    /// As hasMoreRequests() with unlimited keep-alive requests (setMaxKeepAliveRequests(0)):
    /// the next request may take the keep-alive timeout to arrive.
    bool has_more_requests() {
        if (!socket().impl()->initialized()) {
            return false;
        }
        if (m_first) {
            // Poco's own for the first: it also arms canKeepAlive() (a private counter).
            m_first = false;
            return hasMoreRequests();
        }
        return getKeepAlive() && (buffered() > 0 || readable(m_params->getKeepAliveTimeout()));
    }

    /// The next byte of the connection (0-255, through the session's buffer), or -1 when the
    /// client closed its side. Throws Poco's exceptions on errors and on the receive timeout.
    int next_byte() {
        if (buffered() == 0) {
            refill();
            if (buffered() == 0) {
                return -1;
            }
        }
        // get() returns the byte as a plain char widened to int: take its 8 bits back.
        return static_cast<unsigned char>(get());
    }

private:
    bool readable(const Poco::Timespan& timeout) {
        pollfd pfd{};
        pfd.fd = socket().impl()->sockfd();
        pfd.events = POLLIN;
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::microseconds(timeout.totalMicroseconds());
        for (;;) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            const int rc = ::poll(&pfd, 1, static_cast<int>(std::max<long>(0, left.count())));
            if (rc >= 0 || errno != EINTR) {
                // Readable, or hung up / in error: the read that follows tells which.
                return rc > 0;
            }
        }
    }

    Poco::Net::HTTPServerParams::Ptr m_params;
    bool m_first = true;
};

/// Poco's HTTPServerRequestImpl, except that the head comes from our HeadReader (its limits
/// and statuses are ours) rather than from Poco's parser. A request without Content-Length or
/// Transfer-Encoding has no body (RFC 9112 §6.3), whatever its method.
class Request final : public Poco::Net::HTTPServerRequest {
public:
    Request(RequestHead& head, Session& session, Poco::Net::HTTPServerResponse& response,
            const Poco::Net::HTTPServerParams& params)
        : m_session(session), m_response(response), m_params(params) {
        setMethod(head.method);
        setURI(head.target);
        setVersion(head.version);
        for (auto& [name, value] : head.fields) {
            add(name, value);
        }
        if (head.chunked) {
            m_stream = std::make_unique<Poco::Net::HTTPChunkedInputStream>(session);
        } else {
            // At most 18 digits (HeadReader): fits.
            m_stream = std::make_unique<Poco::Net::HTTPFixedLengthInputStream>(
                session, static_cast<Poco::Int64>(head.content_length.value_or(0)));
        }
    }

    std::istream& stream() override { return *m_stream; }
    const Poco::Net::SocketAddress& clientAddress() const override {
        if (!m_client) {
            m_client = m_session.clientAddress();
        }
        return *m_client;
    }
    const Poco::Net::SocketAddress& serverAddress() const override {
        if (!m_server) {
            m_server = m_session.serverAddress();
        }
        return *m_server;
    }
    const Poco::Net::HTTPServerParams& serverParams() const override { return m_params; }
    Poco::Net::HTTPServerResponse& response() const override { return m_response; }
    bool secure() const override { return false; }

private:
    Session& m_session;
    Poco::Net::HTTPServerResponse& m_response;
    const Poco::Net::HTTPServerParams& m_params;
    std::unique_ptr<std::istream> m_stream;
    // Looked up when asked for (two system calls Poco makes for every request).
    mutable std::optional<Poco::Net::SocketAddress> m_client;
    mutable std::optional<Poco::Net::SocketAddress> m_server;
};

/// Poco's HTTPServerConnection, except that the request head is read and checked by HeadReader
/// (a head it refuses gets a JSON error body with the status it chose), and that stopping ends
/// keep-alive at once.
class Connection final : public Poco::Net::TCPServerConnection {
public:
    Connection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
               App& app)
        : Poco::Net::TCPServerConnection(socket), m_params(std::move(params)), m_app(app) {}

    void run() override {
        Session session(socket(), m_params);
        ConnectionPeer peer;
        while (!m_app.stopping() && session.has_more_requests()) {
            try {
                HeadReader reader;
                HeadReader::Step step = HeadReader::Step::more;
                for (int c = session.next_byte(); c >= 0; c = session.next_byte()) {
                    step = reader.feed(static_cast<char>(c));
                    if (step != HeadReader::Step::more) {
                        break;
                    }
                }
                if (step == HeadReader::Step::more) {
                    // The input ended: between requests that is the client closing its side.
                    if (reader.started()) {
                        send_error(session, {400, "the input ended inside the request head"});
                    }
                    break;
                }
                if (step == HeadReader::Step::refused) {
                    send_error(session, reader.refusal());
                    break;
                }
                Poco::Net::HTTPServerResponseImpl response(session);
                Request request(reader.head(), session, response, *m_params);
                response.setVersion(request.getVersion());
                response.setKeepAlive(m_params->getKeepAlive() && request.getKeepAlive() &&
                                      session.canKeepAlive() && !m_app.stopping());
                m_app.handle(request, response, session.socket(), peer);
                session.setKeepAlive(m_params->getKeepAlive() && response.getKeepAlive() &&
                                     session.canKeepAlive() && !m_app.stopping());
            } catch (const Poco::Exception&) {
                break; // network trouble (or a timeout): drop the connection
            } catch (const std::exception&) {
                break;
            }
        }
    }

private:
    void send_error(Session& session, const HeadRefusal& refusal) {
        Reply reply;
        reply.status = refusal.status;
        reply.body = error_body(refusal.reason);
        reply.close = true;
        m_app.log().log(LogLevel::warn, "rejected malformed request",
                        {{"status_code", std::int64_t{reply.status}},
                         {"reason", std::string_view(refusal.reason)}});
        try {
            // No request object exists, so sendBuffer() would skip the body: stream it.
            Poco::Net::HTTPServerResponseImpl response(session);
            response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
            response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
            response.setContentType(reply.content_type);
            response.setKeepAlive(false);
            response.setContentLength64(static_cast<Poco::Int64>(reply.body.size()));
            std::ostream& out = response.send();
            out << reply.body;
            out.flush();
            // What the client still sends (the rest of a long head, a body) is unread: close
            // the way a refused body is closed, so the client reads this answer, not a reset.
            lingering_close(session.socket(), k_refused_head_drain, std::chrono::seconds(5),
                            m_app.stop_flag());
        } catch (...) {
        }
    }

    /// Bytes read and discarded after refusing a head.
    static constexpr std::uint64_t k_refused_head_drain = 1024 * 1024;

    Poco::Net::HTTPServerParams::Ptr m_params;
    App& m_app;
};

class ConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
public:
    ConnectionFactory(Poco::Net::HTTPServerParams::Ptr params, App& app)
        : m_params(std::move(params)), m_app(app) {}
    Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& s) override {
        return new Connection(s, m_params, m_app);
    }

private:
    Poco::Net::HTTPServerParams::Ptr m_params;
    App& m_app;
};

} // namespace

Server::Server(const Config& config, App& app) : m_app(app), m_pool(4, config.max_threads + 4, 60) {
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(config.max_threads);
    params->setMaxQueued(1024);
    params->setKeepAlive(true);
    params->setKeepAliveTimeout(Poco::Timespan(2, 0));
    params->setMaxKeepAliveRequests(0); // unlimited
    params->setTimeout(Poco::Timespan(15, 0));
    params->setServerName(config.host);
    // A dispatcher thread that was between two waits when stop() woke the queue sleeps out its
    // idle time before it sees the stop, and the pool's destructor waits for it: with Poco's
    // 10 s default a shutdown under load outlived its 9.5 s watchdog (exit 3 in 3 of 6 runs of
    // taskapi_group_commit_test's SIGTERM case). 1 s bounds that wait.
    params->setThreadIdleTime(Poco::Timespan(1, 0));
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(config.host, config.port), 1024);
    m_server = std::make_unique<Poco::Net::TCPServer>(new ConnectionFactory(params, app), m_pool,
                                                      socket, params);
}

Server::~Server() = default;

std::uint16_t Server::port() const {
    return m_server->port();
}

void Server::start() {
    m_server->start();
}

bool Server::stop(std::chrono::milliseconds grace) {
    m_server->stop(); // no new connections; connections being served continue
    m_app.begin_stop();
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (m_server->currentConnections() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return m_server->currentConnections() == 0;
}

} // namespace labctl::taskapi
