// The HTTP server side of App (server.hpp): writing replies, Poco's session and connection
// classes adapted (one poll per keep-alive wait, JSON bodies for requests Poco cannot parse,
// keep-alive ended by stopping), and the listening TCPServer.

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
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
#include <string>
#include <thread>

#include "json_log.hpp"
#include "json_text.hpp"
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

/// Poco's HTTPServerConnection, except that requests Poco cannot parse (oversized headers, bad
/// request lines) get a JSON error body, and that stopping ends keep-alive at once.
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
                Poco::Net::HTTPServerResponseImpl response(session);
                Poco::Net::HTTPServerRequestImpl request(response, session, m_params);
                response.setVersion(request.getVersion());
                response.setKeepAlive(m_params->getKeepAlive() && request.getKeepAlive() &&
                                      session.canKeepAlive() && !m_app.stopping());
                m_app.handle(request, response, session.socket(), peer);
                session.setKeepAlive(m_params->getKeepAlive() && response.getKeepAlive() &&
                                     session.canKeepAlive() && !m_app.stopping());
            } catch (const Poco::Net::NoMessageException&) {
                break;
            } catch (const Poco::Net::MessageException& e) {
                send_error(session, e.message());
                break;
            } catch (const Poco::Exception&) {
                break; // network trouble: drop the connection
            } catch (const std::exception&) {
                break;
            }
        }
    }

private:
    void send_error(Poco::Net::HTTPServerSession& session, const std::string& what) {
        // Poco's messages: "Field name too long/no colon found", "Field value too long/no CRLF
        // found", "Too many header fields", "HTTP request URI invalid or too long", ...
        const bool header_fields = what.find("Field") != std::string::npos ||
                                   what.find("header fields") != std::string::npos;
        const bool uri = what.find("URI") != std::string::npos;
        Reply reply;
        reply.status = header_fields ? 431 : uri ? 414 : 400;
        reply.body =
            error_body(header_fields ? "request header fields too large or malformed: " + what
                       : uri         ? std::string("request URI too long or invalid")
                                     : "malformed HTTP request: " + what);
        reply.close = true;
        m_app.log().log(
            LogLevel::warn, "rejected malformed request",
            {{"status_code", std::int64_t{reply.status}}, {"reason", std::string_view(what)}});
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
        } catch (...) {
        }
    }

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
