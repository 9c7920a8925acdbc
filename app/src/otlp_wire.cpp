#include "otlp_wire.hpp"

#include <Poco/Event.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <opentelemetry/sdk/common/global_log_handler.h>
#include <opentelemetry/sdk/instrumentationscope/instrumentation_scope.h>
#include <opentelemetry/sdk/resource/resource.h>
#include <opentelemetry/sdk/trace/recordable.h>
#include <opentelemetry/sdk/version/version.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace sdktrace = opentelemetry::sdk::trace;
using otel::sdk::common::ExportResult;

namespace {

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/).
enum Wire : std::uint32_t { k_varint = 0, k_fixed64 = 1, k_len = 2, k_fixed32 = 5 };

void put_varint(std::string& out, std::uint64_t v) {
    std::array<char, 10> buf{}; // one append instead of a capacity check per byte
    std::size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out.append(buf.data(), n);
}

std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

void put_tag(std::string& out, std::uint32_t field, Wire wire) {
    put_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire);
}

void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
    put_tag(out, field, k_len);
    put_varint(out, bytes.size());
    out.append(bytes);
}

void put_fixed64(std::string& out, std::uint32_t field, std::uint64_t v) {
    put_tag(out, field, k_fixed64);
    std::array<char, 8> le{}; // little-endian, one append
    for (std::size_t i = 0; i < le.size(); ++i) {
        le[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
    out.append(le.data(), le.size());
}

void put_fixed32(std::string& out, std::uint32_t field, std::uint32_t v) {
    put_tag(out, field, k_fixed32);
    std::array<char, 4> le{};
    for (std::size_t i = 0; i < le.size(); ++i) {
        le[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    }
    out.append(le.data(), le.size());
}

void put_uint(std::string& out, std::uint32_t field, std::uint64_t v) {
    put_tag(out, field, k_varint);
    put_varint(out, v);
}

std::uint64_t double_bits(double d) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    return bits;
}

// AnyValue: string_value = 1, bool_value = 2, int_value = 3, double_value = 4,
// array_value = 5 (ArrayValue { repeated AnyValue values = 1 }), bytes_value = 7.
void any_string(std::string& out, std::string_view s) {
    put_bytes(out, 1, s);
}
void any_bool(std::string& out, bool b) {
    put_uint(out, 2, b ? 1 : 0);
}
void any_int(std::string& out, std::int64_t i) {
    put_uint(out, 3, static_cast<std::uint64_t>(i));
}
void any_double(std::string& out, double d) {
    put_fixed64(out, 4, double_bits(d));
}

/// The AnyValue of an array: each element is an AnyValue in ArrayValue.values.
template <typename Range, typename Encode>
void any_array(std::string& out, const Range& values, Encode encode) {
    std::string array;
    std::string element;
    for (const auto& v : values) {
        element.clear();
        encode(element, v);
        put_bytes(array, 1, element);
    }
    put_bytes(out, 5, array);
}

/// Encodes an API attribute value (what spans get) as an AnyValue, the way the SDK's
/// OtlpPopulateAttributeUtils does: unsigned values as int_value, uint8 spans as bytes_value.
void any_value(std::string& out, const otel::common::AttributeValue& value) {
    namespace nostd = otel::nostd;
    if (const auto* b = nostd::get_if<bool>(&value)) {
        any_bool(out, *b);
    } else if (const auto* i32 = nostd::get_if<std::int32_t>(&value)) {
        any_int(out, *i32);
    } else if (const auto* i64 = nostd::get_if<std::int64_t>(&value)) {
        any_int(out, *i64);
    } else if (const auto* u32 = nostd::get_if<std::uint32_t>(&value)) {
        any_int(out, *u32);
    } else if (const auto* u64 = nostd::get_if<std::uint64_t>(&value)) {
        any_int(out, static_cast<std::int64_t>(*u64));
    } else if (const auto* d = nostd::get_if<double>(&value)) {
        any_double(out, *d);
    } else if (const auto* c = nostd::get_if<const char*>(&value)) {
        any_string(out, *c != nullptr ? std::string_view(*c) : std::string_view());
    } else if (const auto* s = nostd::get_if<nostd::string_view>(&value)) {
        any_string(out, std::string_view(s->data(), s->size()));
    } else if (const auto* bs = nostd::get_if<nostd::span<const bool>>(&value)) {
        any_array(out, *bs, [](std::string& o, bool v) { any_bool(o, v); });
    } else if (const auto* i32s = nostd::get_if<nostd::span<const std::int32_t>>(&value)) {
        any_array(out, *i32s, [](std::string& o, std::int32_t v) { any_int(o, v); });
    } else if (const auto* i64s = nostd::get_if<nostd::span<const std::int64_t>>(&value)) {
        any_array(out, *i64s, [](std::string& o, std::int64_t v) { any_int(o, v); });
    } else if (const auto* u32s = nostd::get_if<nostd::span<const std::uint32_t>>(&value)) {
        any_array(out, *u32s, [](std::string& o, std::uint32_t v) { any_int(o, v); });
    } else if (const auto* u64s = nostd::get_if<nostd::span<const std::uint64_t>>(&value)) {
        any_array(out, *u64s, [](std::string& o, std::uint64_t v) {
            any_int(o, static_cast<std::int64_t>(v));
        });
    } else if (const auto* ds = nostd::get_if<nostd::span<const double>>(&value)) {
        any_array(out, *ds, [](std::string& o, double v) { any_double(o, v); });
    } else if (const auto* ss = nostd::get_if<nostd::span<const nostd::string_view>>(&value)) {
        any_array(out, *ss, [](std::string& o, nostd::string_view v) {
            any_string(o, std::string_view(v.data(), v.size()));
        });
    } else if (const auto* u8s = nostd::get_if<nostd::span<const std::uint8_t>>(&value)) {
        put_bytes(out, 7,
                  std::string_view(reinterpret_cast<const char*>(u8s->data()), u8s->size()));
    }
}

/// The same for the SDK's owned values (resource and scope attributes).
void any_owned(std::string& out, const otel::sdk::common::OwnedAttributeValue& value) {
    namespace nostd = otel::nostd;
    if (const auto* b = nostd::get_if<bool>(&value)) {
        any_bool(out, *b);
    } else if (const auto* i32 = nostd::get_if<std::int32_t>(&value)) {
        any_int(out, *i32);
    } else if (const auto* u32 = nostd::get_if<std::uint32_t>(&value)) {
        any_int(out, *u32);
    } else if (const auto* i64 = nostd::get_if<std::int64_t>(&value)) {
        any_int(out, *i64);
    } else if (const auto* u64 = nostd::get_if<std::uint64_t>(&value)) {
        any_int(out, static_cast<std::int64_t>(*u64));
    } else if (const auto* d = nostd::get_if<double>(&value)) {
        any_double(out, *d);
    } else if (const auto* s = nostd::get_if<std::string>(&value)) {
        any_string(out, *s);
    } else if (const auto* bs = nostd::get_if<std::vector<bool>>(&value)) {
        any_array(out, *bs, [](std::string& o, bool v) { any_bool(o, v); });
    } else if (const auto* i32s = nostd::get_if<std::vector<std::int32_t>>(&value)) {
        any_array(out, *i32s, [](std::string& o, std::int32_t v) { any_int(o, v); });
    } else if (const auto* u32s = nostd::get_if<std::vector<std::uint32_t>>(&value)) {
        any_array(out, *u32s, [](std::string& o, std::uint32_t v) { any_int(o, v); });
    } else if (const auto* i64s = nostd::get_if<std::vector<std::int64_t>>(&value)) {
        any_array(out, *i64s, [](std::string& o, std::int64_t v) { any_int(o, v); });
    } else if (const auto* u64s = nostd::get_if<std::vector<std::uint64_t>>(&value)) {
        any_array(out, *u64s, [](std::string& o, std::uint64_t v) {
            any_int(o, static_cast<std::int64_t>(v));
        });
    } else if (const auto* ds = nostd::get_if<std::vector<double>>(&value)) {
        any_array(out, *ds, [](std::string& o, double v) { any_double(o, v); });
    } else if (const auto* ss = nostd::get_if<std::vector<std::string>>(&value)) {
        any_array(out, *ss, [](std::string& o, const std::string& v) { any_string(o, v); });
    } else if (const auto* u8s = nostd::get_if<std::vector<std::uint8_t>>(&value)) {
        put_bytes(out, 7,
                  std::string_view(reinterpret_cast<const char*>(u8s->data()), u8s->size()));
    }
}

/// A KeyValue { key = 1; AnyValue value = 2 } as field `field` of the enclosing message.
template <typename Value, typename Encode>
void put_key_value(std::string& out, std::uint32_t field, std::string_view key, const Value& value,
                   Encode encode) {
    thread_local std::string t_value; // keeps its capacity: no allocation per attribute
    t_value.clear();
    encode(t_value, value);
    // Both fields of KeyValue have one-byte tags: its length is known without encoding it first.
    const std::size_t kv_size =
        2 + varint_size(key.size()) + key.size() + varint_size(t_value.size()) + t_value.size();
    put_tag(out, field, k_len);
    put_varint(out, kv_size);
    put_bytes(out, 1, key);
    put_bytes(out, 2, t_value);
}

char* write_varint(char* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

char* write_bytes(char* p, std::uint32_t field, std::string_view bytes) {
    p = write_varint(p, (field << 3) | k_len);
    p = write_varint(p, bytes.size());
    std::memcpy(p, bytes.data(), bytes.size());
    return p + bytes.size();
}

void put_attribute(std::string& out, std::uint32_t field, otel::nostd::string_view key_view,
                   const otel::common::AttributeValue& value) {
    namespace nostd = otel::nostd;
    const std::string_view key(key_view.data(), key_view.size());
    // Strings and integers are nearly all a request's attributes: sized first, then written
    // in place with one resize (the general path appends piece by piece).
    std::string_view text;
    bool is_text = false;
    std::int64_t integer = 0;
    bool is_integer = false;
    if (const auto* s = nostd::get_if<nostd::string_view>(&value)) {
        text = std::string_view(s->data(), s->size());
        is_text = true;
    } else if (const auto* c = nostd::get_if<const char*>(&value)) {
        text = *c != nullptr ? std::string_view(*c) : std::string_view();
        is_text = true;
    } else if (const auto* i64 = nostd::get_if<std::int64_t>(&value)) {
        integer = *i64;
        is_integer = true;
    } else if (const auto* i32 = nostd::get_if<std::int32_t>(&value)) {
        integer = *i32;
        is_integer = true;
    }
    if (!is_text && !is_integer) {
        put_key_value(out, field, key, value, any_value);
        return;
    }
    // AnyValue { string_value = 1 } or { int_value = 3 }
    const std::size_t any_size = is_text ? 1 + varint_size(text.size()) + text.size()
                                         : 1 + varint_size(static_cast<std::uint64_t>(integer));
    const std::size_t kv_size =
        2 + varint_size(key.size()) + key.size() + varint_size(any_size) + any_size;
    const std::size_t total = varint_size((field << 3) | k_len) + varint_size(kv_size) + kv_size;
    const std::size_t at = out.size();
    out.resize(at + total);
    char* p = out.data() + at;
    p = write_varint(p, (field << 3) | k_len);
    p = write_varint(p, kv_size);
    p = write_bytes(p, 1, key);
    p = write_varint(p, (2U << 3) | k_len);
    p = write_varint(p, any_size);
    if (is_text) {
        write_bytes(p, 1, text);
    } else {
        p = write_varint(p, (3U << 3) | k_varint);
        write_varint(p, static_cast<std::uint64_t>(integer));
    }
}

std::string_view id_bytes(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// One span, kept as the protobuf encoding of its repeated fields plus a few scalars.
class WireSpan final : public sdktrace::Recordable {
public:
    // One allocation up front instead of a few as the attributes arrive: a SERVER span's dozen
    // attributes take about 400 bytes.
    WireSpan() { m_attributes.reserve(512); }

    void SetIdentity(const otel::trace::SpanContext& context,
                     otel::trace::SpanId parent_span_id) noexcept override {
        std::memcpy(m_trace_id.data(), context.trace_id().Id().data(), m_trace_id.size());
        std::memcpy(m_span_id.data(), context.span_id().Id().data(), m_span_id.size());
        m_has_parent = parent_span_id.IsValid();
        if (m_has_parent) {
            std::memcpy(m_parent_id.data(), parent_span_id.Id().data(), m_parent_id.size());
        }
        m_flags = context.trace_flags().flags();
        try {
            m_trace_state = context.trace_state()->ToHeader();
        } catch (...) {
        }
    }
    void SetAttribute(otel::nostd::string_view key,
                      const otel::common::AttributeValue& value) noexcept override {
        try {
            put_attribute(m_attributes, 9, key, value);
        } catch (...) {
        }
    }
    void AddEvent(otel::nostd::string_view name, otel::common::SystemTimestamp timestamp,
                  const otel::common::KeyValueIterable& attributes) noexcept override {
        try {
            // Event { time_unix_nano = 1; name = 2; attributes = 3 }
            std::string event;
            put_fixed64(event, 1, static_cast<std::uint64_t>(timestamp.time_since_epoch().count()));
            put_bytes(event, 2, std::string_view(name.data(), name.size()));
            attributes.ForEachKeyValue(
                [&](otel::nostd::string_view k, otel::common::AttributeValue v) noexcept {
                    put_attribute(event, 3, k, v);
                    return true;
                });
            put_bytes(m_events, 11, event);
        } catch (...) {
        }
    }
    void AddLink(const otel::trace::SpanContext& context,
                 const otel::common::KeyValueIterable& attributes) noexcept override {
        try {
            // Link { trace_id = 1; span_id = 2; trace_state = 3; attributes = 4 }
            std::string link;
            put_bytes(link, 1, id_bytes(context.trace_id().Id().data(), 16));
            put_bytes(link, 2, id_bytes(context.span_id().Id().data(), 8));
            const std::string state = context.trace_state()->ToHeader();
            if (!state.empty()) {
                put_bytes(link, 3, state);
            }
            attributes.ForEachKeyValue(
                [&](otel::nostd::string_view k, otel::common::AttributeValue v) noexcept {
                    put_attribute(link, 4, k, v);
                    return true;
                });
            put_bytes(m_links, 13, link);
        } catch (...) {
        }
    }
    void SetStatus(otel::trace::StatusCode code,
                   otel::nostd::string_view description) noexcept override {
        m_status = code;
        try {
            // As the SDK's recordable: the description only goes with an error.
            m_status_message = code == otel::trace::StatusCode::kError
                                   ? std::string(description.data(), description.size())
                                   : std::string();
        } catch (...) {
        }
    }
    void SetName(otel::nostd::string_view name) noexcept override {
        try {
            m_name.assign(name.data(), name.size());
        } catch (...) {
        }
    }
    void SetTraceFlags(otel::trace::TraceFlags flags) noexcept override { m_flags = flags.flags(); }
    void SetSpanKind(otel::trace::SpanKind kind) noexcept override { m_kind = kind; }
    void SetResource(const otel::sdk::resource::Resource& resource) noexcept override {
        m_resource = &resource;
    }
    void SetStartTime(otel::common::SystemTimestamp start) noexcept override {
        m_start_ns = static_cast<std::uint64_t>(start.time_since_epoch().count());
    }
    void SetDuration(std::chrono::nanoseconds duration) noexcept override {
        m_duration_ns = static_cast<std::uint64_t>(duration.count());
    }
    void SetInstrumentationScope(
        const otel::sdk::instrumentationscope::InstrumentationScope& scope) noexcept override {
        m_scope = &scope;
    }

    const otel::sdk::resource::Resource* resource() const { return m_resource; }
    const otel::sdk::instrumentationscope::InstrumentationScope* scope() const { return m_scope; }

    /// Appends this span as ScopeSpans.spans (field 2).
    void encode(std::string& out) const {
        thread_local std::string t_span;
        std::string& span = t_span;
        span.clear();
        span.reserve(96 + m_name.size() + m_trace_state.size() + m_attributes.size() +
                     m_events.size() + m_links.size() + m_status_message.size());
        put_bytes(span, 1, std::string_view(m_trace_id.data(), m_trace_id.size()));
        put_bytes(span, 2, std::string_view(m_span_id.data(), m_span_id.size()));
        if (!m_trace_state.empty()) {
            put_bytes(span, 3, m_trace_state);
        }
        if (m_has_parent) {
            put_bytes(span, 4, std::string_view(m_parent_id.data(), m_parent_id.size()));
        }
        put_bytes(span, 5, m_name);
        // SpanKind: the proto enum has UNSPECIFIED = 0 before the API's kInternal.
        put_uint(span, 6, static_cast<std::uint64_t>(m_kind) + 1);
        put_fixed64(span, 7, m_start_ns);
        put_fixed64(span, 8, m_start_ns + m_duration_ns);
        span += m_attributes;
        span += m_events;
        span += m_links;
        if (m_status != otel::trace::StatusCode::kUnset || !m_status_message.empty()) {
            // Status { message = 2; code = 3 } (UNSET 0, OK 1, ERROR 2, as the API's enum)
            std::string status;
            if (!m_status_message.empty()) {
                put_bytes(status, 2, m_status_message);
            }
            put_uint(status, 3, static_cast<std::uint64_t>(m_status));
            put_bytes(span, 15, status);
        }
        put_fixed32(span, 16, m_flags);
        put_bytes(out, 2, span);
    }

private:
    std::array<char, 16> m_trace_id{};
    std::array<char, 8> m_span_id{};
    std::array<char, 8> m_parent_id{};
    bool m_has_parent = false;
    std::uint32_t m_flags = 0;
    std::string m_trace_state;
    std::string m_name;
    otel::trace::SpanKind m_kind = otel::trace::SpanKind::kInternal;
    std::uint64_t m_start_ns = 0;
    std::uint64_t m_duration_ns = 0;
    otel::trace::StatusCode m_status = otel::trace::StatusCode::kUnset;
    std::string m_status_message;
    std::string m_attributes; ///< Span.attributes entries (field 9), encoded
    std::string m_events;     ///< Span.events entries (field 11), encoded
    std::string m_links;      ///< Span.links entries (field 13), encoded
    const otel::sdk::resource::Resource* m_resource = nullptr;
    const otel::sdk::instrumentationscope::InstrumentationScope* m_scope = nullptr;
};

class WireSpanExporter final : public sdktrace::SpanExporter {
public:
    WireSpanExporter(std::string host, std::uint16_t port, std::string path,
                     std::chrono::milliseconds timeout)
        : m_host(std::move(host)), m_port(port), m_path(std::move(path)), m_timeout(timeout) {}

    std::unique_ptr<sdktrace::Recordable> MakeRecordable() noexcept override {
        return std::make_unique<WireSpan>();
    }

    ExportResult Export(
        const otel::nostd::span<std::unique_ptr<sdktrace::Recordable>>& batch) noexcept override {
        if (m_shutdown.load()) {
            return ExportResult::kFailure;
        }
        if (batch.empty()) {
            return ExportResult::kSuccess;
        }
        std::string body;
        try {
            body = encode_request(batch);
        } catch (...) {
            report_failure(batch.size(), "cannot encode the request");
            return ExportResult::kFailure;
        }
        // As configured for the SDK exporter (retry_policy_max_attempts = 2): one retry, after
        // a back-off, for answers that invite one (429, 502, 503, 504) and network errors.
        std::string error;
        for (int attempt = 1;; ++attempt) {
            bool retryable = false;
            if (post(body, error, retryable)) {
                return ExportResult::kSuccess;
            }
            if (attempt >= k_max_attempts || !retryable || m_shutdown.load() ||
                m_abort.tryWait(k_backoff_ms)) {
                break;
            }
        }
        report_failure(batch.size(), error);
        return ExportResult::kFailure;
    }

    bool ForceFlush(std::chrono::microseconds) noexcept override { return true; }

    bool Shutdown(std::chrono::microseconds) noexcept override {
        m_shutdown.store(true);
        m_abort.set();
        // Wake an export waiting on a slow collector (shutting the socket down is safe while
        // another thread is blocked on it; closing it is not).
        const std::lock_guard<std::mutex> lock(m_session_mutex);
        if (m_session) {
            try {
                m_session->socket().shutdown();
            } catch (...) {
            }
        }
        return true;
    }

private:
    static constexpr int k_max_attempts = 2;
    static constexpr long k_backoff_ms = 1000; // the SDK's initial back-off

    static std::string
    encode_request(const otel::nostd::span<std::unique_ptr<sdktrace::Recordable>>& batch) {
        using Resource = otel::sdk::resource::Resource;
        using Scope = otel::sdk::instrumentationscope::InstrumentationScope;
        struct Group {
            const Resource* resource;
            const Scope* scope;
            std::string spans;
        };
        std::vector<Group> groups; // in order of first appearance, as the SDK's exporter
        for (const auto& recordable : batch) {
            // The processor hands back what MakeRecordable() made.
            const auto* span = static_cast<const WireSpan*>(recordable.get());
            if (span == nullptr) {
                continue;
            }
            auto it = groups.begin();
            while (it != groups.end() &&
                   (it->resource != span->resource() || it->scope != span->scope())) {
                ++it;
            }
            if (it == groups.end()) {
                groups.push_back({span->resource(), span->scope(), {}});
                it = groups.end() - 1;
                it->spans.reserve(batch.size() * 512);
            }
            span->encode(it->spans);
        }
        std::string request;
        std::vector<bool> done(groups.size(), false);
        for (std::size_t i = 0; i < groups.size(); ++i) {
            if (done[i]) {
                continue;
            }
            // ResourceSpans { resource = 1; scope_spans = 2; schema_url = 3 }
            std::string resource_spans;
            const Resource* resource = groups[i].resource;
            if (resource != nullptr) {
                std::string res; // Resource { attributes = 1 }
                for (const auto& [key, value] : resource->GetAttributes()) {
                    put_key_value(res, 1, key, value, any_owned);
                }
                put_bytes(resource_spans, 1, res);
            }
            for (std::size_t j = i; j < groups.size(); ++j) {
                if (done[j] || groups[j].resource != resource) {
                    continue;
                }
                done[j] = true;
                // ScopeSpans { scope = 1; spans = 2; schema_url = 3 }
                std::string scope_spans;
                if (const Scope* scope = groups[j].scope) {
                    std::string
                        sc; // InstrumentationScope { name = 1; version = 2; attributes = 3 }
                    put_bytes(sc, 1, scope->GetName());
                    if (!scope->GetVersion().empty()) {
                        put_bytes(sc, 2, scope->GetVersion());
                    }
                    for (const auto& [key, value] : scope->GetAttributes()) {
                        put_key_value(sc, 3, key, value, any_owned);
                    }
                    put_bytes(scope_spans, 1, sc);
                }
                scope_spans += groups[j].spans;
                if (groups[j].scope != nullptr && !groups[j].scope->GetSchemaURL().empty()) {
                    put_bytes(scope_spans, 3, groups[j].scope->GetSchemaURL());
                }
                put_bytes(resource_spans, 2, scope_spans);
            }
            if (resource != nullptr && !resource->GetSchemaURL().empty()) {
                put_bytes(resource_spans, 3, resource->GetSchemaURL());
            }
            put_bytes(request, 1, resource_spans); // ExportTraceServiceRequest.resource_spans
        }
        return request;
    }

    /// One POST; true on a 2xx answer.
    bool post(const std::string& body, std::string& error, bool& retryable) {
        retryable = true;
        try {
            {
                const std::lock_guard<std::mutex> lock(m_session_mutex);
                if (!m_session) {
                    m_session = std::make_unique<Poco::Net::HTTPClientSession>(m_host, m_port);
                    m_session->setTimeout(Poco::Timespan(
                        static_cast<Poco::Timespan::TimeDiff>(m_timeout.count()) * 1000));
                    m_session->setKeepAlive(true);
                }
            }
            Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, m_path,
                                           Poco::Net::HTTPMessage::HTTP_1_1);
            request.setContentType("application/x-protobuf");
            request.setContentLength64(static_cast<Poco::Int64>(body.size()));
            request.set("User-Agent", "OTel-OTLP-Exporter-Cpp/" OPENTELEMETRY_SDK_VERSION);
            request.setKeepAlive(true);
            std::ostream& out = m_session->sendRequest(request);
            out.write(body.data(), static_cast<std::streamsize>(body.size()));
            Poco::Net::HTTPResponse response;
            std::istream& in = m_session->receiveResponse(response);
            Poco::NullOutputStream sink;
            Poco::StreamCopier::copyStream(in, sink); // read it all: the connection is reused
            const int status = static_cast<int>(response.getStatus());
            if (status >= 200 && status < 300) {
                return true;
            }
            error = "HTTP " + std::to_string(status);
            retryable = status == 429 || status == 502 || status == 503 || status == 504;
            if (!response.getKeepAlive()) {
                drop_session();
            }
            return false;
        } catch (const Poco::Exception& e) {
            error = e.displayText();
        } catch (const std::exception& e) {
            error = e.what();
        }
        drop_session(); // a fresh connection next time
        return false;
    }

    void drop_session() {
        const std::lock_guard<std::mutex> lock(m_session_mutex);
        m_session.reset();
    }

    static void report_failure(std::size_t spans, const std::string& error) {
        // The SDK exporter's wording: RateLimitedLogHandler counts failed batches from it.
        OTEL_INTERNAL_LOG_ERROR("[OTLP TRACE HTTP Exporter] ERROR: Export "
                                << spans << " trace span(s) error: " << error);
    }

    std::string m_host;
    std::uint16_t m_port;
    std::string m_path;
    std::chrono::milliseconds m_timeout;
    std::atomic<bool> m_shutdown{false};
    Poco::Event m_abort{Poco::Event::EVENT_MANUALRESET};
    std::mutex m_session_mutex; ///< guards the pointer, not the session's use by Export
    std::unique_ptr<Poco::Net::HTTPClientSession> m_session;
};

bool env_set(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0';
}

} // namespace

std::unique_ptr<sdktrace::SpanExporter> make_wire_span_exporter(const Config& config) {
    // Settings only the SDK's exporter implements.
    for (const char* name :
         {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
          "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
          "OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
          "OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
          "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
          "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
          "LABCTL_TASKAPI_SDK_SPAN_EXPORTER"}) {
        if (env_set(name)) {
            return nullptr;
        }
    }
    try {
        const Poco::URI uri(config.otlp_traces_endpoint);
        if (uri.getScheme() != "http" || uri.getHost().empty() || !uri.getUserInfo().empty()) {
            return nullptr;
        }
        std::string path = uri.getPathEtc();
        if (path.empty()) {
            path = "/";
        }
        return std::make_unique<WireSpanExporter>(uri.getHost(), uri.getPort(), path,
                                                  config.otlp_timeout);
    } catch (const Poco::Exception&) {
        return nullptr;
    }
}

} // namespace labctl::taskapi
