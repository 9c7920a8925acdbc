#pragma once
// OTLP's common messages in wire form (AnyValue, KeyValue attributes, Resource, scope), encoded
// the way the SDK's OtlpPopulateAttributeUtils fills them, for spans and log records alike.

#include <opentelemetry/common/attribute_value.h>
#include <opentelemetry/common/timestamp.h>
#include <opentelemetry/nostd/string_view.h>
#include <opentelemetry/sdk/resource/resource.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "wire_format.hpp"

namespace labctl::taskapi::wire {

/// Appends an API attribute value (what spans and log bodies get) as an AnyValue message.
void any_value(WireBuffer& out, const opentelemetry::common::AttributeValue& value);

/// Appends `key` = `value` as a KeyValue in field `field` of the enclosing message (Span
/// attributes = 9, Event and Link attributes, LogRecord attributes = 6); strings and integers,
/// nearly all of a request's attributes, are sized first and written in place.
void put_attribute(WireBuffer& out, std::uint32_t field, opentelemetry::nostd::string_view key,
                   const opentelemetry::common::AttributeValue& value);

/// The field `resource = 1` of ResourceSpans/ResourceLogs holding `resource`'s attributes.
std::string resource_field(const opentelemetry::sdk::resource::Resource& resource);

/// The field `scope = 1` of ScopeSpans/ScopeLogs: InstrumentationScope { name = 1; version = 2 }
/// (no version when it is empty).
std::string scope_field(std::string_view name, std::string_view version);

inline std::string_view id_bytes(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

inline std::uint64_t unix_nanos(opentelemetry::common::SystemTimestamp t) {
    return static_cast<std::uint64_t>(t.time_since_epoch().count());
}

} // namespace labctl::taskapi::wire
