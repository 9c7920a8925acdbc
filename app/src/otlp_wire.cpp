// Where the wire pipeline applies (plain http://, no setting only the SDK's exporters
// implement) and how WireTracer::create and WireLogger::create build a pipeline for it.
#include "otlp_wire.hpp"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "otlp_encode.hpp"
#include "otlp_http.hpp"
#include "wire_pipeline.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;

namespace {

bool env_set(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0';
}

/// Settings only the SDK's exporters implement, for all signals and for `signal` ("TRACES" or
/// "LOGS"): when one is set, the SDK's pipeline is used for that signal.
bool sdk_only_settings(const char* signal) {
    for (const char* setting : {"HEADERS", "COMPRESSION", "CERTIFICATE", "CLIENT_KEY",
                                "CLIENT_CERTIFICATE", "PROTOCOL"}) {
        if (env_set(("OTEL_EXPORTER_OTLP_" + std::string(setting)).c_str()) ||
            env_set(("OTEL_EXPORTER_OTLP_" + std::string(signal) + "_" + setting).c_str())) {
            return true;
        }
    }
    return env_set("LABCTL_TASKAPI_SDK_EXPORTERS");
}

/// The pipeline for `endpoint`, or null when it is not plain http:// (TLS and user info are
/// the SDK exporters' job).
std::shared_ptr<WirePipeline> make_pipeline(WirePipeline::Signal signal,
                                            const std::string& endpoint, const Config& config,
                                            const otel::sdk::resource::Resource& resource,
                                            Metrics& metrics) {
    std::unique_ptr<OtlpHttpClient> client;
    try {
        const Poco::URI uri(endpoint);
        if (uri.getScheme() != "http" || uri.getHost().empty() || !uri.getUserInfo().empty()) {
            return nullptr;
        }
        std::string path = uri.getPathEtc();
        if (path.empty()) {
            path = "/";
        }
        client = std::make_unique<OtlpHttpClient>(uri.getHost(), uri.getPort(), path,
                                                  config.otlp_timeout);
    } catch (const Poco::Exception&) {
        return nullptr;
    }
    // Resource and InstrumentationScope are the same in every request: encoded once.
    return std::make_shared<WirePipeline>(
        signal, std::move(client), wire::resource_field(resource),
        wire::scope_field("labctl-taskapi", config.service_version), config, metrics);
}

} // namespace

std::shared_ptr<WireTracer> WireTracer::create(const Config& config,
                                               const otel::sdk::resource::Resource& resource,
                                               Metrics& metrics) {
    if (sdk_only_settings("TRACES")) {
        return nullptr;
    }
    auto pipeline = make_pipeline(WirePipeline::Signal::traces, config.otlp_traces_endpoint, config,
                                  resource, metrics);
    if (!pipeline) {
        return nullptr;
    }
    return std::shared_ptr<WireTracer>(new WireTracer(std::move(pipeline)));
}

std::shared_ptr<WireLogger> WireLogger::create(const Config& config,
                                               const otel::sdk::resource::Resource& resource,
                                               Metrics& metrics) {
    if (sdk_only_settings("LOGS")) {
        return nullptr;
    }
    auto pipeline = make_pipeline(WirePipeline::Signal::logs, config.otlp_logs_endpoint, config,
                                  resource, metrics);
    if (!pipeline) {
        return nullptr;
    }
    return std::shared_ptr<WireLogger>(new WireLogger(std::move(pipeline)));
}

} // namespace labctl::taskapi
