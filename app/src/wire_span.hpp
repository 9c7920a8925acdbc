#pragma once
// The wire tracer's recording span: the API's trace::Span, its OTLP Span message encoded as the
// span goes and handed to its pipeline at End().

#include <opentelemetry/common/key_value_iterable.h>
#include <opentelemetry/trace/span.h>
#include <opentelemetry/trace/span_context.h>
#include <opentelemetry/trace/span_context_kv_iterable.h>
#include <opentelemetry/trace/span_startoptions.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "wire_format.hpp"

namespace labctl::taskapi {

class WirePipeline;

/// A recording span: the Span message is encoded as the span goes (protobuf lets fields come in
/// any order), so End() only adds the end time, status and flags and hands the bytes over.
/// Thread-safe, as the API requires; a span that ran out of memory while encoding is dropped
/// (and counted) at End().
class WireSpan final : public opentelemetry::trace::Span {
public:
    WireSpan(std::shared_ptr<WirePipeline> pipeline,
             const opentelemetry::trace::SpanContext& context,
             const opentelemetry::trace::SpanContext& parent,
             opentelemetry::nostd::string_view name,
             const opentelemetry::common::KeyValueIterable& attributes,
             const opentelemetry::trace::SpanContextKeyValueIterable& links,
             const opentelemetry::trace::StartSpanOptions& options);
    ~WireSpan() override;
    WireSpan(const WireSpan&) = delete;
    WireSpan& operator=(const WireSpan&) = delete;

    void SetAttribute(opentelemetry::nostd::string_view key,
                      const opentelemetry::common::AttributeValue& value) noexcept override;
    void AddEvent(opentelemetry::nostd::string_view name) noexcept override;
    void AddEvent(opentelemetry::nostd::string_view name,
                  opentelemetry::common::SystemTimestamp timestamp) noexcept override;
    void AddEvent(opentelemetry::nostd::string_view name,
                  const opentelemetry::common::KeyValueIterable& attributes) noexcept override;
    void AddEvent(opentelemetry::nostd::string_view name,
                  opentelemetry::common::SystemTimestamp timestamp,
                  const opentelemetry::common::KeyValueIterable& attributes) noexcept override;
    void SetStatus(opentelemetry::trace::StatusCode code,
                   opentelemetry::nostd::string_view description) noexcept override;
    void UpdateName(opentelemetry::nostd::string_view name) noexcept override;
    void End(const opentelemetry::trace::EndSpanOptions& options = {}) noexcept override;
    opentelemetry::trace::SpanContext GetContext() const noexcept override;
    bool IsRecording() const noexcept override;

private:
    void add_link(const opentelemetry::trace::SpanContext& context,
                  const opentelemetry::common::KeyValueIterable& attributes) noexcept;

    const std::shared_ptr<WirePipeline> m_pipeline; ///< the span keeps its queue alive
    const opentelemetry::trace::SpanContext m_context;
    std::uint32_t m_flags = 0;
    std::uint64_t m_start_ns = 0;
    std::chrono::steady_clock::duration m_start_steady{};
    mutable std::mutex m_mutex; ///< the API lets several threads use one span
    bool m_ended = false;
    bool m_incomplete = false; ///< an append ran out of memory: dropped (and counted) at End
    opentelemetry::trace::StatusCode m_status = opentelemetry::trace::StatusCode::kUnset;
    std::string m_status_message;
    wire::WireBuffer m_buf; ///< the Span message so far
};

} // namespace labctl::taskapi
