// libFuzzer: traceparent handling. valid_traceparent() decides whether a header is honoured; what
// it accepts must be extracted by opentelemetry-cpp's W3C propagator into exactly that trace and
// parent, and nothing (valid or not) may crash the propagator.

#include <opentelemetry/context/context.h>
#include <opentelemetry/context/propagation/text_map_propagator.h>
#include <opentelemetry/trace/context.h>
#include <opentelemetry/trace/propagation/http_trace_context.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "task_input.hpp"

namespace {

class Carrier final : public opentelemetry::context::propagation::TextMapCarrier {
public:
    Carrier(std::string traceparent, std::string tracestate)
        : m_traceparent(std::move(traceparent)), m_tracestate(std::move(tracestate)) {}
    opentelemetry::nostd::string_view
    Get(opentelemetry::nostd::string_view key) const noexcept override {
        if (key == "traceparent") {
            return m_traceparent;
        }
        if (key == "tracestate") {
            return m_tracestate;
        }
        return "";
    }
    void Set(opentelemetry::nostd::string_view,
             opentelemetry::nostd::string_view) noexcept override {}

private:
    std::string m_traceparent;
    std::string m_tracestate;
};

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string all(reinterpret_cast<const char*>(data), size);
    // First line: traceparent; the rest: tracestate.
    const auto nl = all.find('\n');
    const std::string traceparent = all.substr(0, nl);
    const std::string tracestate = nl == std::string::npos ? std::string() : all.substr(nl + 1);

    const bool valid = labctl::taskapi::valid_traceparent(traceparent);
    Carrier carrier(traceparent, tracestate);
    opentelemetry::trace::propagation::HttpTraceContext propagator;
    opentelemetry::context::Context empty;
    const auto ctx = propagator.Extract(carrier, empty);
    const auto span_ctx = opentelemetry::trace::GetSpan(ctx)->GetContext();
    if (valid) {
        check(span_ctx.IsValid());
        check(span_ctx.IsRemote());
        std::array<char, 32> trace_hex{};
        std::array<char, 16> span_hex{};
        span_ctx.trace_id().ToLowerBase16(trace_hex);
        span_ctx.span_id().ToLowerBase16(span_hex);
        check(std::string_view(trace_hex.data(), 32) ==
              std::string_view(traceparent).substr(3, 32));
        check(std::string_view(span_hex.data(), 16) ==
              std::string_view(traceparent).substr(36, 16));
    }
    return 0;
}
