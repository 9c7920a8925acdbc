// The wire tracer's recording span: each field is appended to the OTLP Span message as it is set,
// End() adds end time, status and flags and submits the bytes to the span's pipeline.
#include "wire_span.hpp"

#include <algorithm>

#include "otlp_encode.hpp"
#include "wire_pipeline.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;
using namespace wire;

namespace {

// Span.flags (OTLP 1.5): the W3C trace flags in bits 0-7; bit 8: whether bit 9 is known;
// bit 9: the parent span context is remote.
constexpr std::uint32_t k_flags_has_is_remote = 0x100;
constexpr std::uint32_t k_flags_is_remote = 0x200;

} // namespace

WireSpan::WireSpan(std::shared_ptr<WirePipeline> pipeline, const trace::SpanContext& context,
                   const trace::SpanContext& parent, nostd::string_view name,
                   const otel::common::KeyValueIterable& attributes,
                   const trace::SpanContextKeyValueIterable& links,
                   const trace::StartSpanOptions& options)
    : m_pipeline(std::move(pipeline)), m_context(context) {
    m_flags = context.trace_flags().flags() | k_flags_has_is_remote |
              (parent.IsValid() && parent.IsRemote() ? k_flags_is_remote : 0);
    const auto& now_system = options.start_system_time;
    m_start_ns = now_system.time_since_epoch().count() != 0
                     ? unix_nanos(now_system)
                     : unix_nanos(otel::common::SystemTimestamp(std::chrono::system_clock::now()));
    m_start_steady = options.start_steady_time.time_since_epoch().count() != 0
                         ? options.start_steady_time.time_since_epoch()
                         : std::chrono::steady_clock::now().time_since_epoch();
    put_bytes(m_buf, 1, id_bytes(context.trace_id().Id().data(), 16));
    put_bytes(m_buf, 2, id_bytes(context.span_id().Id().data(), 8));
    if (!context.trace_state()->Empty()) {
        put_bytes(m_buf, 3, context.trace_state()->ToHeader());
    }
    if (parent.IsValid()) {
        put_bytes(m_buf, 4, id_bytes(parent.span_id().Id().data(), 8));
    }
    put_bytes(m_buf, 5, std::string_view(name.data(), name.size()));
    // SpanKind: the proto enum has UNSPECIFIED = 0 before the API's kInternal.
    put_uint(m_buf, 6, static_cast<std::uint64_t>(options.kind) + 1);
    put_fixed64(m_buf, 7, m_start_ns);
    attributes.ForEachKeyValue(
        [this](nostd::string_view key, otel::common::AttributeValue value) noexcept {
            // The iteration is noexcept: an exception must not leave this callback.
            try {
                put_attribute(m_buf, 9, key, value);
                return true;
            } catch (...) {
                m_incomplete = true;
                return false;
            }
        });
    links.ForEachKeyValue(
        [this](trace::SpanContext link, const otel::common::KeyValueIterable& attrs) noexcept {
            add_link(link, attrs); // noexcept
            return !m_incomplete;
        });
}

WireSpan::~WireSpan() {
    End();
}

void WireSpan::SetAttribute(nostd::string_view key,
                            const otel::common::AttributeValue& value) noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_ended) {
        try {
            put_attribute(m_buf, 9, key, value);
        } catch (...) {
            m_incomplete = true; // possibly half written: the span is not sent
        }
    }
}

void WireSpan::AddEvent(nostd::string_view name) noexcept {
    AddEvent(name, std::chrono::system_clock::now(), otel::common::NoopKeyValueIterable());
}

void WireSpan::AddEvent(nostd::string_view name, otel::common::SystemTimestamp timestamp) noexcept {
    AddEvent(name, timestamp, otel::common::NoopKeyValueIterable());
}

void WireSpan::AddEvent(nostd::string_view name,
                        const otel::common::KeyValueIterable& attributes) noexcept {
    AddEvent(name, std::chrono::system_clock::now(), attributes);
}

void WireSpan::AddEvent(nostd::string_view name, otel::common::SystemTimestamp timestamp,
                        const otel::common::KeyValueIterable& attributes) noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (m_ended) {
        return;
    }
    try {
        // Event { time_unix_nano = 1; name = 2; attributes = 3 }
        WireBuffer event;
        put_fixed64(event, 1, unix_nanos(timestamp));
        put_bytes(event, 2, std::string_view(name.data(), name.size()));
        bool complete = true;
        attributes.ForEachKeyValue(
            [&](nostd::string_view k, otel::common::AttributeValue v) noexcept {
                try {
                    put_attribute(event, 3, k, v);
                    return true;
                } catch (...) {
                    complete = false;
                    return false;
                }
            });
        if (complete) {
            put_bytes(m_buf, 11, event.view());
        } else {
            m_incomplete = true;
        }
    } catch (...) {
        m_incomplete = true;
    }
}

void WireSpan::SetStatus(trace::StatusCode code, nostd::string_view description) noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (m_ended) {
        return;
    }
    m_status = code;
    try {
        // As the SDK: the description only goes with an error.
        m_status_message = code == trace::StatusCode::kError
                               ? std::string(description.data(), description.size())
                               : std::string();
    } catch (...) {
    }
}

void WireSpan::UpdateName(nostd::string_view name) noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (!m_ended) {
        try {
            // A later occurrence of a singular field replaces the earlier one when parsed.
            put_bytes(m_buf, 5, std::string_view(name.data(), name.size()));
        } catch (...) {
            m_incomplete = true;
        }
    }
}

void WireSpan::End(const trace::EndSpanOptions& options) noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    if (m_ended) {
        return;
    }
    m_ended = true;
    if (m_incomplete) {
        m_pipeline->drop();
        return;
    }
    try {
        const auto end_steady = options.end_steady_time.time_since_epoch().count() != 0
                                    ? options.end_steady_time.time_since_epoch()
                                    : std::chrono::steady_clock::now().time_since_epoch();
        const auto duration = std::max<std::chrono::nanoseconds>(
            std::chrono::nanoseconds(0),
            std::chrono::duration_cast<std::chrono::nanoseconds>(end_steady - m_start_steady));
        put_fixed64(m_buf, 8, m_start_ns + static_cast<std::uint64_t>(duration.count()));
        if (m_status != trace::StatusCode::kUnset) {
            // Status { message = 2; code = 3 } (UNSET 0, OK 1, ERROR 2, as the API's enum)
            WireBuffer status;
            if (!m_status_message.empty()) {
                put_bytes(status, 2, m_status_message);
            }
            put_uint(status, 3, static_cast<std::uint64_t>(m_status));
            put_bytes(m_buf, 15, status.view());
        }
        put_fixed32(m_buf, 16, m_flags);
    } catch (...) {
        m_pipeline->drop(); // not a complete span: not sent
        return;
    }
    m_pipeline->submit(m_buf.view());
}

trace::SpanContext WireSpan::GetContext() const noexcept {
    return m_context;
}

bool WireSpan::IsRecording() const noexcept {
    const std::lock_guard<std::mutex> lock(m_mutex);
    return !m_ended;
}

void WireSpan::add_link(const trace::SpanContext& context,
                        const otel::common::KeyValueIterable& attributes) noexcept {
    try {
        // Link { trace_id = 1; span_id = 2; trace_state = 3; attributes = 4; flags = 6 }
        WireBuffer link;
        put_bytes(link, 1, id_bytes(context.trace_id().Id().data(), 16));
        put_bytes(link, 2, id_bytes(context.span_id().Id().data(), 8));
        if (!context.trace_state()->Empty()) {
            put_bytes(link, 3, context.trace_state()->ToHeader());
        }
        bool complete = true;
        attributes.ForEachKeyValue(
            [&](nostd::string_view k, otel::common::AttributeValue v) noexcept {
                try {
                    put_attribute(link, 4, k, v);
                    return true;
                } catch (...) {
                    complete = false;
                    return false;
                }
            });
        if (!complete) {
            m_incomplete = true;
            return;
        }
        put_fixed32(link, 6,
                    context.trace_flags().flags() | k_flags_has_is_remote |
                        (context.IsRemote() ? k_flags_is_remote : 0));
        put_bytes(m_buf, 13, link.view());
    } catch (...) {
        m_incomplete = true;
    }
}

} // namespace labctl::taskapi
