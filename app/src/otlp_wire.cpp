#include "otlp_wire.hpp"

#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <opentelemetry/context/runtime_context.h>
#include <opentelemetry/logs/log_record.h>
#include <opentelemetry/logs/severity.h>
#include <opentelemetry/sdk/common/global_log_handler.h>
#include <opentelemetry/trace/context.h>
#include <opentelemetry/trace/default_span.h>

#include <array>
#include <bit>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "metrics.hpp"
#include "otlp_http.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;

namespace {

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/).
enum Wire : std::uint32_t { k_varint = 0, k_fixed64 = 1, k_len = 2, k_fixed32 = 5 };

/// A growable byte buffer whose first 640 bytes live inside the object: a span's whole encoding
/// (a SERVER span with a dozen attributes takes about 450 bytes) then costs no allocation of
/// its own, and appends are a bounds check and a memcpy.
class WireBuffer {
public:
    WireBuffer() = default;
    WireBuffer(const WireBuffer&) = delete;
    WireBuffer& operator=(const WireBuffer&) = delete;

    /// Room for at least `n` more bytes at the end: write there, then commit() the new end.
    char* tail(std::size_t n) {
        if (m_size + n > m_capacity) {
            expand(m_size + n);
        }
        return m_data + m_size;
    }
    void commit(const char* end) { m_size = static_cast<std::size_t>(end - m_data); }
    void append(const char* data, std::size_t n) {
        if (n > 0) {
            char* p = tail(n);
            std::memcpy(p, data, n);
            commit(p + n);
        }
    }
    void append(std::string_view s) { append(s.data(), s.size()); }
    WireBuffer& operator+=(std::string_view s) {
        append(s);
        return *this;
    }
    std::size_t size() const { return m_size; }
    void clear() { m_size = 0; }
    std::string_view view() const { return {m_data, m_size}; }
    std::string str() const { return std::string(view()); }

private:
    void expand(std::size_t need) {
        const std::size_t capacity = std::max(need, 2 * m_capacity);
        auto bigger = std::make_unique<char[]>(capacity);
        std::memcpy(bigger.get(), m_data, m_size);
        m_heap = std::move(bigger);
        m_data = m_heap.get();
        m_capacity = capacity;
    }

    std::array<char, 640> m_inline; // not zeroed: only bytes below m_size are read
    char* m_data = m_inline.data();
    std::size_t m_size = 0;
    std::size_t m_capacity = m_inline.size();
    std::unique_ptr<char[]> m_heap;
};

char* write_varint(char* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

char* write_tag(char* p, std::uint32_t field, Wire wire) {
    return write_varint(p, (static_cast<std::uint64_t>(field) << 3) | wire);
}

char* write_bytes(char* p, std::uint32_t field, std::string_view bytes) {
    p = write_tag(p, field, k_len);
    p = write_varint(p, bytes.size());
    std::memcpy(p, bytes.data(), bytes.size());
    return p + bytes.size();
}

char* write_le(char* p, std::uint64_t v, std::size_t bytes) {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, bytes); // the low bytes first, as the wire wants
    } else {
        for (std::size_t i = 0; i < bytes; ++i) {
            p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
        }
    }
    return p + bytes;
}

// A tag and a length take at most 5 and 10 bytes.
constexpr std::size_t k_max_head = 15;

void put_varint(WireBuffer& out, std::uint64_t v) {
    out.commit(write_varint(out.tail(10), v));
}

std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

void put_tag(WireBuffer& out, std::uint32_t field, Wire wire) {
    out.commit(write_tag(out.tail(5), field, wire));
}

void put_bytes(WireBuffer& out, std::uint32_t field, std::string_view bytes) {
    out.commit(write_bytes(out.tail(k_max_head + bytes.size()), field, bytes));
}

void put_fixed64(WireBuffer& out, std::uint32_t field, std::uint64_t v) {
    out.commit(write_le(write_tag(out.tail(5 + 8), field, k_fixed64), v, 8));
}

void put_fixed32(WireBuffer& out, std::uint32_t field, std::uint32_t v) {
    out.commit(write_le(write_tag(out.tail(5 + 4), field, k_fixed32), v, 4));
}

void put_uint(WireBuffer& out, std::uint32_t field, std::uint64_t v) {
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
void any_string(WireBuffer& out, std::string_view s) {
    put_bytes(out, 1, s);
}
void any_bool(WireBuffer& out, bool b) {
    put_uint(out, 2, b ? 1 : 0);
}
void any_int(WireBuffer& out, std::int64_t i) {
    put_uint(out, 3, static_cast<std::uint64_t>(i));
}
void any_double(WireBuffer& out, double d) {
    put_fixed64(out, 4, double_bits(d));
}

/// The AnyValue of an array: each element is an AnyValue in ArrayValue.values.
template <typename Range, typename Encode>
void any_array(WireBuffer& out, const Range& values, Encode encode) {
    WireBuffer array;
    WireBuffer element;
    for (const auto& v : values) {
        element.clear();
        encode(element, v);
        put_bytes(array, 1, element.view());
    }
    put_bytes(out, 5, array.view());
}

/// Encodes an API attribute value (what spans get) as an AnyValue, the way the SDK's
/// OtlpPopulateAttributeUtils does: unsigned values as int_value, uint8 spans as bytes_value.
void any_value(WireBuffer& out, const otel::common::AttributeValue& value) {
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
        any_array(out, *bs, [](WireBuffer& o, bool v) { any_bool(o, v); });
    } else if (const auto* i32s = nostd::get_if<nostd::span<const std::int32_t>>(&value)) {
        any_array(out, *i32s, [](WireBuffer& o, std::int32_t v) { any_int(o, v); });
    } else if (const auto* i64s = nostd::get_if<nostd::span<const std::int64_t>>(&value)) {
        any_array(out, *i64s, [](WireBuffer& o, std::int64_t v) { any_int(o, v); });
    } else if (const auto* u32s = nostd::get_if<nostd::span<const std::uint32_t>>(&value)) {
        any_array(out, *u32s, [](WireBuffer& o, std::uint32_t v) { any_int(o, v); });
    } else if (const auto* u64s = nostd::get_if<nostd::span<const std::uint64_t>>(&value)) {
        any_array(out, *u64s,
                  [](WireBuffer& o, std::uint64_t v) { any_int(o, static_cast<std::int64_t>(v)); });
    } else if (const auto* ds = nostd::get_if<nostd::span<const double>>(&value)) {
        any_array(out, *ds, [](WireBuffer& o, double v) { any_double(o, v); });
    } else if (const auto* ss = nostd::get_if<nostd::span<const nostd::string_view>>(&value)) {
        any_array(out, *ss, [](WireBuffer& o, nostd::string_view v) {
            any_string(o, std::string_view(v.data(), v.size()));
        });
    } else if (const auto* u8s = nostd::get_if<nostd::span<const std::uint8_t>>(&value)) {
        put_bytes(out, 7,
                  std::string_view(reinterpret_cast<const char*>(u8s->data()), u8s->size()));
    }
}

/// The same for the SDK's owned values (resource and scope attributes).
void any_owned(WireBuffer& out, const otel::sdk::common::OwnedAttributeValue& value) {
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
        any_array(out, *bs, [](WireBuffer& o, bool v) { any_bool(o, v); });
    } else if (const auto* i32s = nostd::get_if<std::vector<std::int32_t>>(&value)) {
        any_array(out, *i32s, [](WireBuffer& o, std::int32_t v) { any_int(o, v); });
    } else if (const auto* u32s = nostd::get_if<std::vector<std::uint32_t>>(&value)) {
        any_array(out, *u32s, [](WireBuffer& o, std::uint32_t v) { any_int(o, v); });
    } else if (const auto* i64s = nostd::get_if<std::vector<std::int64_t>>(&value)) {
        any_array(out, *i64s, [](WireBuffer& o, std::int64_t v) { any_int(o, v); });
    } else if (const auto* u64s = nostd::get_if<std::vector<std::uint64_t>>(&value)) {
        any_array(out, *u64s,
                  [](WireBuffer& o, std::uint64_t v) { any_int(o, static_cast<std::int64_t>(v)); });
    } else if (const auto* ds = nostd::get_if<std::vector<double>>(&value)) {
        any_array(out, *ds, [](WireBuffer& o, double v) { any_double(o, v); });
    } else if (const auto* ss = nostd::get_if<std::vector<std::string>>(&value)) {
        any_array(out, *ss, [](WireBuffer& o, const std::string& v) { any_string(o, v); });
    } else if (const auto* u8s = nostd::get_if<std::vector<std::uint8_t>>(&value)) {
        put_bytes(out, 7,
                  std::string_view(reinterpret_cast<const char*>(u8s->data()), u8s->size()));
    }
}

/// A KeyValue { key = 1; AnyValue value = 2 } as field `field` of the enclosing message.
template <typename Value, typename Encode>
void put_key_value(WireBuffer& out, std::uint32_t field, std::string_view key, const Value& value,
                   Encode encode) {
    thread_local WireBuffer t_value; // keeps its capacity: no allocation per attribute
    t_value.clear();
    encode(t_value, value);
    // Both fields of KeyValue have one-byte tags: its length is known without encoding it first.
    const std::size_t kv_size =
        2 + varint_size(key.size()) + key.size() + varint_size(t_value.size()) + t_value.size();
    put_tag(out, field, k_len);
    put_varint(out, kv_size);
    put_bytes(out, 1, key);
    put_bytes(out, 2, t_value.view());
}

void put_attribute(WireBuffer& out, std::uint32_t field, otel::nostd::string_view key_view,
                   const otel::common::AttributeValue& value) {
    namespace nostd = otel::nostd;
    const std::string_view key(key_view.data(), key_view.size());
    // Strings and integers are nearly all a request's attributes: sized first, then written
    // in place (the general path appends piece by piece).
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
    char* p = out.tail(k_max_head + kv_size);
    p = write_tag(p, field, k_len);
    p = write_varint(p, kv_size);
    p = write_bytes(p, 1, key);
    p = write_tag(p, 2, k_len);
    p = write_varint(p, any_size);
    if (is_text) {
        p = write_bytes(p, 1, text);
    } else {
        p = write_tag(p, 3, k_varint);
        p = write_varint(p, static_cast<std::uint64_t>(integer));
    }
    out.commit(p);
}

std::string_view id_bytes(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

/// Random ids from a per-thread splitmix64 generator seeded from std::random_device (the SDK
/// also draws its ids from a per-thread generator); never zero, which would be an invalid id.
std::uint64_t random_id64() {
    thread_local std::uint64_t t_state = [] {
        std::random_device device;
        return (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }();
    for (;;) {
        std::uint64_t z = (t_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        if (z != 0) {
            return z;
        }
    }
}

void put_id64(std::uint8_t* out, std::uint64_t v) {
    std::memcpy(out, &v, sizeof v);
}

// Span.flags (OTLP 1.5): the W3C trace flags in bits 0-7; bit 8: whether bit 9 is known;
// bit 9: the parent span context is remote.
constexpr std::uint32_t k_flags_has_is_remote = 0x100;
constexpr std::uint32_t k_flags_is_remote = 0x200;

std::uint64_t unix_nanos(otel::common::SystemTimestamp t) {
    return static_cast<std::uint64_t>(t.time_since_epoch().count());
}

/// One ExportTraceServiceRequest's worth of encoded spans (each as ScopeSpans.spans entries).
struct Batch {
    std::string spans;
    std::size_t count = 0;
};

bool env_set(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0';
}

} // namespace

/// The bounded queue of ended spans (or emitted log records) and the thread that exports them.
/// ExportTraceServiceRequest and ExportLogsServiceRequest have the same framing (resource_spans
/// = 1 { resource = 1; scope_spans = 2 { scope = 1; spans = 2 } }, and resource_logs, scope_logs,
/// log_records with the same numbers), so one pipeline serves both. Shared by its tracer or
/// logger and every recording span (a span that outlives its tracer still holds the queue it
/// ends into: after stop() it is dropped and counted, never written to freed memory).
class WirePipeline {
public:
    enum class Signal { traces, logs };

    WirePipeline(Signal signal, std::unique_ptr<OtlpHttpClient> client, std::string resource_field,
                 std::string scope_field, const Config& config, Metrics& metrics)
        : m_signal(signal), m_signal_name(signal == Signal::traces ? "traces" : "logs"),
          m_client(std::move(client)), m_resource_field(std::move(resource_field)),
          m_scope_field(std::move(scope_field)), m_capacity(config.export_queue_size),
          m_batch_size(std::min<std::size_t>(k_export_batch, config.export_queue_size)),
          m_delay(config.export_delay), m_metrics(metrics) {
        m_open.spans.reserve(m_batch_size * 512);
        m_thread = std::thread([this] { run(); });
    }
    ~WirePipeline() { stop(std::chrono::microseconds(0)); }

    /// Queues one span (its Span message) or log record (its LogRecord message); drops and
    /// counts it when the queue is full.
    void submit(std::string_view item) noexcept {
        try {
            std::array<char, 16>
                head; // the tag of ScopeSpans.spans (ScopeLogs.log_records), length
            char* p = head.data();
            p = write_varint(p, (2U << 3) | k_len);
            p = write_varint(p, item.size());
            std::unique_lock<std::mutex> lock(m_mutex);
            if (m_stopped || m_queued >= m_capacity) {
                lock.unlock();
                m_metrics.count_export_dropped(m_signal_name);
                return;
            }
            m_open.spans.append(head.data(), static_cast<std::size_t>(p - head.data()));
            m_open.spans.append(item);
            ++m_open.count;
            ++m_queued;
            if (m_open.count >= m_batch_size) {
                rotate();
                lock.unlock();
                m_wake.notify_one(); // only for a full batch: not a wake-up per span
            }
        } catch (...) {
            m_metrics.count_export_dropped(m_signal_name);
        }
    }

    /// Counts an item that could not be encoded completely (out of memory) as dropped.
    void drop() noexcept { m_metrics.count_export_dropped(m_signal_name); }

    bool flush(std::chrono::microseconds timeout) noexcept {
        std::unique_lock<std::mutex> lock(m_mutex);
        ++m_flush_requests;
        m_wake.notify_one();
        const bool done = m_drained.wait_for(lock, timeout, [&] { return m_queued == 0; });
        --m_flush_requests;
        return done;
    }

    void stop(std::chrono::microseconds timeout) noexcept {
        if (timeout.count() > 0) {
            flush(timeout);
        }
        {
            const std::lock_guard<std::mutex> lock(m_mutex);
            if (m_stopped) {
                return;
            }
            m_stopped = true;
        }
        m_client->abort();
        m_wake.notify_one();
        try {
            if (m_thread.joinable() && m_thread.get_id() != std::this_thread::get_id()) {
                m_thread.join();
            }
        } catch (const std::system_error&) {
        }
    }

private:
    /// Spans per OTLP request, the SDK's default: a batch of encoded spans is about 230 KB,
    /// and each POST costs about 60k instructions, so fewer of them count.
    static constexpr std::size_t k_export_batch = 512;
    static constexpr std::size_t k_spare_buffers = 2;

    void run() {
        std::unique_lock<std::mutex> lock(m_mutex);
        for (;;) {
            m_wake.wait_for(lock, m_delay, [&] {
                return m_stopped || !m_ready.empty() || (m_flush_requests > 0 && m_queued > 0);
            });
            if (m_stopped) {
                return; // what is left was given the flush before stop()
            }
            // Full batches first; a partial one when the delay passed or a flush waits.
            if (m_ready.empty() && m_open.count > 0) {
                rotate();
            }
            while (!m_ready.empty() && !m_stopped) {
                Batch batch = std::move(m_ready.front());
                m_ready.pop_front();
                lock.unlock();
                export_batch(batch); // noexcept: a failure is counted, the thread goes on
                lock.lock();
                m_queued -= batch.count;
                if (m_spare.size() < k_spare_buffers) {
                    batch.spans.clear(); // keeps its capacity for a later batch
                    m_spare.push_back(std::move(batch.spans));
                }
            }
            if (m_queued == 0) {
                m_drained.notify_all();
            }
        }
    }

    /// Moves the open batch to the ready ones and opens a new one in a spare buffer (growing a
    /// fresh string to a batch's size would copy it several times, under the lock). Needs
    /// m_mutex.
    void rotate() {
        m_ready.push_back(std::move(m_open));
        m_open = Batch{};
        if (!m_spare.empty()) {
            m_open.spans = std::move(m_spare.back());
            m_spare.pop_back();
        }
    }

    void export_batch(const Batch& batch) noexcept {
        try {
            if (send_batch(batch)) {
                return;
            }
        } catch (...) {
        }
        m_metrics.count_export_failed(m_signal_name); // counted here, where it failed
    }

    /// POSTs one batch; false (after logging why) when it did not arrive.
    bool send_batch(const Batch& batch) {
        // ExportTraceServiceRequest { resource_spans = 1 { resource = 1; scope_spans = 2 {
        // scope = 1; spans = 2 ... } } }: the framing before the spans, which are sent as they
        // were queued.
        const std::size_t scope_spans = m_scope_field.size() + batch.spans.size();
        const std::size_t resource_spans =
            m_resource_field.size() + 1 + varint_size(scope_spans) + scope_spans;
        WireBuffer head;
        put_tag(head, 1, k_len);
        put_varint(head, resource_spans);
        head += m_resource_field;
        put_tag(head, 2, k_len);
        put_varint(head, scope_spans);
        head += m_scope_field;
        std::string error;
        if (m_client->send(head.view(), batch.spans, error)) {
            return true;
        }
        // Reported in the SDK exporters' wording, for the log only (not counted from it).
        if (m_signal == Signal::traces) {
            OTEL_INTERNAL_LOG_ERROR("[OTLP TRACE HTTP Exporter] ERROR: Export "
                                    << batch.count << " trace span(s) error: " << error);
        } else {
            OTEL_INTERNAL_LOG_ERROR("[OTLP LOG HTTP Exporter] ERROR: Export "
                                    << batch.count << " log(s) error: " << error);
        }
        return false;
    }

    const Signal m_signal;
    const std::string m_signal_name; ///< the `signal` label of the export metrics
    std::unique_ptr<OtlpHttpClient> m_client;
    const std::string m_resource_field; ///< ResourceSpans.resource, encoded once
    const std::string m_scope_field;    ///< ScopeSpans.scope, encoded once
    const std::size_t m_capacity;       ///< spans queued or in flight, at most
    const std::size_t m_batch_size;
    const std::chrono::milliseconds m_delay;
    Metrics& m_metrics;

    std::mutex m_mutex;
    std::condition_variable m_wake;    ///< a full batch, a flush or stop
    std::condition_variable m_drained; ///< m_queued reached 0
    Batch m_open;                      ///< filling
    std::deque<Batch> m_ready;         ///< full, not yet taken by the exporter thread
    std::vector<std::string> m_spare;  ///< emptied batch buffers, capacity kept
    std::size_t m_queued = 0;          ///< spans in m_open, m_ready and in flight
    int m_flush_requests = 0;
    bool m_stopped = false;
    std::thread m_thread;
};

namespace {

/// A recording span: the Span message is encoded as the span goes (protobuf lets fields come in
/// any order), so End() only adds the end time, status and flags and hands the bytes over.
class WireSpan final : public trace::Span {
public:
    WireSpan(std::shared_ptr<WirePipeline> pipeline, const trace::SpanContext& context,
             const trace::SpanContext& parent, nostd::string_view name,
             const otel::common::KeyValueIterable& attributes,
             const trace::SpanContextKeyValueIterable& links,
             const trace::StartSpanOptions& options)
        : m_pipeline(std::move(pipeline)), m_context(context) {
        m_flags = context.trace_flags().flags() | k_flags_has_is_remote |
                  (parent.IsValid() && parent.IsRemote() ? k_flags_is_remote : 0);
        const auto& now_system = options.start_system_time;
        m_start_ns =
            now_system.time_since_epoch().count() != 0
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

    ~WireSpan() override { End(); }
    WireSpan(const WireSpan&) = delete;
    WireSpan& operator=(const WireSpan&) = delete;

    void SetAttribute(nostd::string_view key,
                      const otel::common::AttributeValue& value) noexcept override {
        const std::lock_guard<std::mutex> lock(m_mutex);
        if (!m_ended) {
            try {
                put_attribute(m_buf, 9, key, value);
            } catch (...) {
                m_incomplete = true; // possibly half written: the span is not sent
            }
        }
    }
    void AddEvent(nostd::string_view name) noexcept override {
        AddEvent(name, std::chrono::system_clock::now(), otel::common::NoopKeyValueIterable());
    }
    void AddEvent(nostd::string_view name,
                  otel::common::SystemTimestamp timestamp) noexcept override {
        AddEvent(name, timestamp, otel::common::NoopKeyValueIterable());
    }
    void AddEvent(nostd::string_view name,
                  const otel::common::KeyValueIterable& attributes) noexcept override {
        AddEvent(name, std::chrono::system_clock::now(), attributes);
    }
    void AddEvent(nostd::string_view name, otel::common::SystemTimestamp timestamp,
                  const otel::common::KeyValueIterable& attributes) noexcept override {
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
    void SetStatus(trace::StatusCode code, nostd::string_view description) noexcept override {
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
    void UpdateName(nostd::string_view name) noexcept override {
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
    void End(const trace::EndSpanOptions& options = {}) noexcept override {
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
    trace::SpanContext GetContext() const noexcept override { return m_context; }
    bool IsRecording() const noexcept override {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return !m_ended;
    }

private:
    void add_link(const trace::SpanContext& context,
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

    const std::shared_ptr<WirePipeline> m_pipeline; ///< the span keeps its queue alive
    const trace::SpanContext m_context;
    std::uint32_t m_flags = 0;
    std::uint64_t m_start_ns = 0;
    std::chrono::steady_clock::duration m_start_steady{};
    mutable std::mutex m_mutex; ///< the API lets several threads use one span
    bool m_ended = false;
    bool m_incomplete = false; ///< an append ran out of memory: dropped (and counted) at End
    trace::StatusCode m_status = trace::StatusCode::kUnset;
    std::string m_status_message;
    WireBuffer m_buf; ///< the Span message so far
};

/// The span context held by `context`, or an invalid one (trace::GetSpan would allocate a
/// DefaultSpan to say "none").
trace::SpanContext span_context_of(const otel::context::Context& context) {
    const auto value = context.GetValue(trace::kSpanKey);
    if (const auto* span = nostd::get_if<nostd::shared_ptr<trace::Span>>(&value)) {
        if (*span) {
            return (*span)->GetContext();
        }
    }
    return trace::SpanContext::GetInvalid();
}

/// The parent a span starts under, as the SDK's tracer chooses it: an explicit valid
/// SpanContext, else the span of an explicit Context, else the active span.
trace::SpanContext parent_of(const trace::StartSpanOptions& options) {
    if (const auto* context = nostd::get_if<trace::SpanContext>(&options.parent)) {
        if (context->IsValid()) {
            return *context;
        }
        return span_context_of(otel::context::RuntimeContext::GetCurrent());
    }
    return span_context_of(nostd::get<otel::context::Context>(options.parent));
}

} // namespace

WireTracer::WireTracer(std::shared_ptr<WirePipeline> pipeline) : m_pipeline(std::move(pipeline)) {}

WireTracer::~WireTracer() {
    shutdown(std::chrono::microseconds(0));
}

nostd::shared_ptr<trace::Span>
WireTracer::StartSpan(nostd::string_view name, const otel::common::KeyValueIterable& attributes,
                      const trace::SpanContextKeyValueIterable& links,
                      const trace::StartSpanOptions& options) noexcept {
    try {
        const trace::SpanContext parent = parent_of(options);
        std::array<std::uint8_t, 16> trace_id{};
        if (parent.IsValid()) {
            std::memcpy(trace_id.data(), parent.trace_id().Id().data(), trace_id.size());
        } else {
            put_id64(trace_id.data(), random_id64());
            put_id64(trace_id.data() + 8, random_id64());
        }
        std::array<std::uint8_t, 8> span_id{};
        put_id64(span_id.data(), random_id64());
        const trace::TraceId tid(nostd::span<const std::uint8_t, 16>(trace_id.data(), 16));
        const trace::SpanId sid(nostd::span<const std::uint8_t, 8>(span_id.data(), 8));
        const auto state =
            parent.IsValid() ? parent.trace_state() : trace::TraceState::GetDefault();
        // Parent-based always-on: a caller that did not sample this trace gets no span from us
        // either, and the children inherit the decision through the (unsampled) context.
        if (parent.IsValid() && !parent.IsSampled()) {
            return nostd::shared_ptr<trace::Span>(std::make_shared<trace::DefaultSpan>(
                trace::SpanContext(tid, sid, trace::TraceFlags(0), false, state)));
        }
        const trace::SpanContext context(tid, sid, trace::TraceFlags(trace::TraceFlags::kIsSampled),
                                         false, state);
        return nostd::shared_ptr<trace::Span>(std::make_shared<WireSpan>(
            m_pipeline, context, parent, name, attributes, links, options));
    } catch (...) {
        return nostd::shared_ptr<trace::Span>(
            std::make_shared<trace::DefaultSpan>(trace::SpanContext::GetInvalid()));
    }
}

void WireTracer::ForceFlushWithMicroseconds(uint64_t timeout) noexcept {
    flush(std::chrono::microseconds(static_cast<std::int64_t>(timeout)));
}

void WireTracer::CloseWithMicroseconds(uint64_t timeout) noexcept {
    shutdown(std::chrono::microseconds(static_cast<std::int64_t>(timeout)));
}

bool WireTracer::flush(std::chrono::microseconds timeout) noexcept {
    return m_pipeline->flush(timeout);
}

void WireTracer::shutdown(std::chrono::microseconds timeout) noexcept {
    m_pipeline->stop(timeout);
}

namespace {

/// One log record: the LogRecord message, encoded as its fields are set.
class WireLogRecord final : public otel::logs::LogRecord {
public:
    // The API's setters are noexcept and appending can allocate: each one goes through
    // guarded(), and a record that missed a field (out of memory) is dropped and counted.
    void SetTimestamp(otel::common::SystemTimestamp timestamp) noexcept override {
        guarded([&] { put_fixed64(m_buf, 1, unix_nanos(timestamp)); });
    }
    void SetObservedTimestamp(otel::common::SystemTimestamp timestamp) noexcept override {
        guarded([&] { put_fixed64(m_buf, 11, unix_nanos(timestamp)); });
    }
    void SetSeverity(otel::logs::Severity severity) noexcept override {
        guarded([&] {
            // severity_number = 2 and, as the SDK's recordable, its name as severity_text = 3.
            put_uint(m_buf, 2, static_cast<std::uint64_t>(severity));
            const auto index = static_cast<std::size_t>(severity);
            if (index < std::size(otel::logs::SeverityNumToText)) {
                const auto text = otel::logs::SeverityNumToText[index];
                put_bytes(m_buf, 3, std::string_view(text.data(), text.size()));
            }
        });
    }
    void SetBody(const otel::common::AttributeValue& message) noexcept override {
        guarded([&] {
            WireBuffer body; // AnyValue
            any_value(body, message);
            put_bytes(m_buf, 5, body.view());
        });
    }
    void SetAttribute(nostd::string_view key,
                      const otel::common::AttributeValue& value) noexcept override {
        guarded([&] { put_attribute(m_buf, 6, key, value); });
    }
    void SetEventId(int64_t, nostd::string_view name) noexcept override {
        if (!name.empty()) {
            guarded([&] { put_bytes(m_buf, 12, std::string_view(name.data(), name.size())); });
        }
    }
    void SetTraceId(const trace::TraceId& id) noexcept override {
        guarded([&] { put_bytes(m_buf, 9, id_bytes(id.Id().data(), 16)); });
    }
    void SetSpanId(const trace::SpanId& id) noexcept override {
        guarded([&] { put_bytes(m_buf, 10, id_bytes(id.Id().data(), 8)); });
    }
    void SetTraceFlags(const trace::TraceFlags& flags) noexcept override {
        guarded([&] { put_fixed32(m_buf, 8, flags.flags()); });
    }

    bool complete() const { return !m_incomplete; }
    std::string_view encoded() const { return m_buf.view(); }

private:
    template <typename F>
    void guarded(F&& append) noexcept {
        try {
            append();
        } catch (...) {
            m_incomplete = true;
        }
    }

    WireBuffer m_buf;
    bool m_incomplete = false;
};

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
    // Resource { attributes = 1 } and InstrumentationScope { name = 1; version = 2 }, framed as
    // fields 1 of ResourceSpans/ResourceLogs and ScopeSpans/ScopeLogs.
    WireBuffer res;
    for (const auto& [key, value] : resource.GetAttributes()) {
        put_key_value(res, 1, key, value, any_owned);
    }
    WireBuffer resource_field;
    put_bytes(resource_field, 1, res.view());
    WireBuffer scope;
    put_bytes(scope, 1, "labctl-taskapi");
    if (!config.service_version.empty()) {
        put_bytes(scope, 2, config.service_version);
    }
    WireBuffer scope_field;
    put_bytes(scope_field, 1, scope.view());
    return std::make_shared<WirePipeline>(signal, std::move(client), resource_field.str(),
                                          scope_field.str(), config, metrics);
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

WireLogger::WireLogger(std::shared_ptr<WirePipeline> pipeline) : m_pipeline(std::move(pipeline)) {}

WireLogger::~WireLogger() {
    shutdown(std::chrono::microseconds(0));
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

const nostd::string_view WireLogger::GetName() noexcept {
    return "labctl-taskapi";
}

nostd::unique_ptr<otel::logs::LogRecord> WireLogger::CreateLogRecord() noexcept {
    try {
        auto record = nostd::unique_ptr<otel::logs::LogRecord>(new WireLogRecord());
        // As the SDK's logger: the observed time is when the record was made.
        record->SetObservedTimestamp(std::chrono::system_clock::now());
        return record;
    } catch (...) {
        return nullptr;
    }
}

void WireLogger::EmitLogRecord(nostd::unique_ptr<otel::logs::LogRecord>&& record) noexcept {
    // Only records this logger made come back here (the API pairs CreateLogRecord with
    // EmitLogRecord on the same logger).
    if (const auto* wire = static_cast<const WireLogRecord*>(record.get())) {
        if (wire->complete()) {
            m_pipeline->submit(wire->encoded());
        } else {
            m_pipeline->drop();
        }
    }
    record.reset();
}

bool WireLogger::flush(std::chrono::microseconds timeout) noexcept {
    return m_pipeline->flush(timeout);
}

void WireLogger::shutdown(std::chrono::microseconds timeout) noexcept {
    m_pipeline->stop(timeout);
}

} // namespace labctl::taskapi
