#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>
#include <fmt/format.h>

#include <algorithm>
#include <istream>
#include <ostream>

#include <labctl/core/text.hpp>
#include <labctl/verify/http.hpp>

namespace labctl::verify {

namespace {
using Clock = std::chrono::steady_clock;

Poco::Timespan timespan(std::chrono::milliseconds ms) {
    const auto clamped = std::max<std::chrono::milliseconds::rep>(ms.count(), 1);
    return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(clamped) * 1000);
}
} // namespace

HttpResponse http_request(const HttpRequest& request) {
    HttpResponse out;
    const auto start = Clock::now();
    try {
        const Poco::URI uri(request.url);
        if (uri.getScheme() != "http")
            throw Poco::InvalidArgumentException("only http:// URLs are supported", request.url);
        Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
        // Connect, send and every receive are bounded by the request's timeout; the body read
        // below also checks the total.
        session.setTimeout(timespan(request.timeout), timespan(request.timeout),
                           timespan(request.timeout));
        std::string target = uri.getPathAndQuery();
        if (target.empty())
            target = "/";
        Poco::Net::HTTPRequest req(request.method, target, Poco::Net::HTTPMessage::HTTP_1_1);
        req.set("User-Agent", "labctl-verify");
        req.set("Connection", "close");
        for (const auto& [k, v] : request.headers)
            req.set(k, v);
        if (!request.content_type.empty())
            req.setContentType(request.content_type);
        if (!request.body.empty() || request.method == "POST" || request.method == "PUT")
            req.setContentLength(static_cast<std::streamsize>(request.body.size()));
        session.sendRequest(req) << request.body;
        Poco::Net::HTTPResponse resp;
        std::istream& in = session.receiveResponse(resp);
        out.status = static_cast<int>(resp.getStatus());
        for (const auto& [k, v] : resp)
            out.headers[lower(k)] = v;
        char buf[8192];
        while (in) {
            in.read(buf, sizeof buf);
            out.body.append(buf, static_cast<std::size_t>(in.gcount()));
            if (Clock::now() - start > request.timeout)
                throw Poco::TimeoutException("body not complete within the timeout");
            if (out.body.size() > (64U << 20))
                throw Poco::DataFormatException("response body over 64 MiB");
        }
    } catch (const Poco::TimeoutException& e) {
        out.status = 0;
        out.error = fmt::format("timed out after {} ms", request.timeout.count());
    } catch (const Poco::Exception& e) {
        out.status = 0;
        out.error = e.displayText();
    } catch (const std::exception& e) {
        out.status = 0;
        out.error = e.what();
    }
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return out;
}

HttpResponse http_get(const std::string& url, std::chrono::milliseconds timeout) {
    HttpRequest r;
    r.url = url;
    r.timeout = timeout;
    return http_request(r);
}

std::string url_encode(const std::string& value) {
    std::string out;
    Poco::URI::encode(value, "!#$&'()*+,/:;=?@[]\"{}<>|\\^`% ", out);
    return out;
}

std::string excerpt(const std::string& body, std::size_t limit) {
    std::string out;
    for (const char c : body) {
        if (out.size() >= limit) {
            out += "…";
            break;
        }
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    return out;
}

} // namespace labctl::verify
