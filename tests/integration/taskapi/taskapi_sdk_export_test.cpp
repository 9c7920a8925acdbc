// The SDK pipeline's exporters (app/src/sdk_export.hpp) in process: a failed export is returned
// as a failure and counted, where opentelemetry-cpp's own OtlpHttpExporter reports success.
// Its own binary: it links the SDK's OTLP exporters, whose protobuf classes would clash with the
// sink's in taskapi_otlp_test.

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_log_record_exporter_factory.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "harness.hpp"
#include "metrics.hpp"
#include "sdk_export.hpp"

using namespace labctl::test::taskapi;
namespace otel = opentelemetry;
namespace otlp = opentelemetry::exporter::otlp;
using otel::sdk::common::ExportResult;

namespace {

/// Answers every POST with 503 (on 127.0.0.1).
class RefusingCollector {
public:
    RefusingCollector() : m_socket(Poco::Net::SocketAddress(k_loopback, 0)) {
        m_server = std::make_unique<Poco::Net::HTTPServer>(new Factory(m_requests), m_socket,
                                                           new Poco::Net::HTTPServerParams);
        m_server->start();
    }
    ~RefusingCollector() { m_server->stopAll(true); }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(m_socket.address().port()) + path;
    }
    int requests() const { return m_requests.load(); }

private:
    class Handler final : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(std::atomic<int>& n) : m_n(n) {}
        void handleRequest(Poco::Net::HTTPServerRequest& req,
                           Poco::Net::HTTPServerResponse& resp) override {
            Poco::NullOutputStream sink;
            Poco::StreamCopier::copyStream(req.stream(), sink);
            m_n.fetch_add(1);
            resp.setStatus(Poco::Net::HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
            resp.sendBuffer("", 0);
        }

    private:
        std::atomic<int>& m_n;
    };
    class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(std::atomic<int>& n) : m_n(n) {}
        Poco::Net::HTTPRequestHandler*
        createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(m_n);
        }

    private:
        std::atomic<int>& m_n;
    };
    std::atomic<int> m_requests{0};
    Poco::Net::ServerSocket m_socket;
    std::unique_ptr<Poco::Net::HTTPServer> m_server;
};

template <typename Options>
Options options_for(const std::string& url) {
    Options o;
    o.url = url;
    o.content_type = otlp::HttpRequestContentType::kBinary;
    o.timeout = std::chrono::seconds(3);
    o.retry_policy_max_attempts = 1; // no retry: one request per export
    return o;
}

template <typename Exporter>
ExportResult export_one_span(Exporter& exporter) {
    auto span = exporter.MakeRecordable();
    span->SetName("refused");
    std::unique_ptr<otel::sdk::trace::Recordable> batch[] = {std::move(span)};
    return exporter.Export(
        otel::nostd::span<std::unique_ptr<otel::sdk::trace::Recordable>>(batch, 1));
}

template <typename Exporter>
ExportResult export_one_log(Exporter& exporter) {
    auto record = exporter.MakeRecordable();
    record->SetBody(otel::nostd::string_view("refused"));
    std::unique_ptr<otel::sdk::logs::Recordable> batch[] = {std::move(record)};
    return exporter.Export(
        otel::nostd::span<std::unique_ptr<otel::sdk::logs::Recordable>>(batch, 1));
}

double failed(const labctl::taskapi::Metrics& metrics, const std::string& signal) {
    return metric_sum(metrics.serialize(), "otel_export_failed_batches_total",
                      {"signal=\"" + signal + "\""});
}

} // namespace

TEST_CASE("taskapi sdk export: a refused span batch is a failure and counted (the SDK's exporter "
          "says success)",
          "[taskapi][otlp]") {
    RefusingCollector collector;
    const auto options = options_for<otlp::OtlpHttpExporterOptions>(collector.url("/v1/traces"));
    // Why: opentelemetry-cpp 1.19's exporter hides the failure from its caller.
    auto plain = otlp::OtlpHttpExporterFactory::Create(options);
    CHECK(export_one_span(*plain) == ExportResult::kSuccess);
    CHECK(collector.requests() == 1); // it was refused all the same
    plain->Shutdown(std::chrono::seconds(1));

    labctl::taskapi::Metrics metrics;
    auto counting = labctl::taskapi::make_counting_span_exporter(options, metrics);
    CHECK(export_one_span(*counting) == ExportResult::kFailure);
    CHECK(collector.requests() == 2);
    CHECK(failed(metrics, "traces") == 1);
    CHECK(failed(metrics, "logs") == 0);
    counting->Shutdown(std::chrono::seconds(1));
}

TEST_CASE("taskapi sdk export: a refused log batch is a failure and counted", "[taskapi][otlp]") {
    RefusingCollector collector;
    labctl::taskapi::Metrics metrics;
    auto counting = labctl::taskapi::make_counting_log_exporter(
        options_for<otlp::OtlpHttpLogRecordExporterOptions>(collector.url("/v1/logs")), metrics);
    CHECK(export_one_log(*counting) == ExportResult::kFailure);
    CHECK(collector.requests() == 1);
    CHECK(failed(metrics, "logs") == 1);
    counting->Shutdown(std::chrono::seconds(1));
}

TEST_CASE("taskapi sdk export: a collector that is down is a failure and counted",
          "[taskapi][otlp]") {
    labctl::taskapi::Metrics metrics;
    const std::string closed = "http://127.0.0.1:" + std::to_string(free_port()) + "/v1/traces";
    auto counting = labctl::taskapi::make_counting_span_exporter(
        options_for<otlp::OtlpHttpExporterOptions>(closed), metrics);
    CHECK(export_one_span(*counting) == ExportResult::kFailure);
    CHECK(failed(metrics, "traces") == 1);
    counting->Shutdown(std::chrono::seconds(1));
}
