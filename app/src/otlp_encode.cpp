// OTLP's common messages in wire form: AnyValue (API and SDK-owned values), KeyValue attributes,
// and the Resource and InstrumentationScope fields a pipeline encodes once.
#include "otlp_encode.hpp"

#include <opentelemetry/nostd/span.h>
#include <opentelemetry/nostd/variant.h>
#include <opentelemetry/sdk/common/attribute_utils.h>

#include <vector>

namespace labctl::taskapi::wire {

namespace otel = opentelemetry;

namespace {

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

} // namespace

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

namespace {

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

} // namespace

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

std::string resource_field(const otel::sdk::resource::Resource& resource) {
    // Resource { attributes = 1 }, framed as field 1 of ResourceSpans/ResourceLogs.
    WireBuffer res;
    for (const auto& [key, value] : resource.GetAttributes()) {
        put_key_value(res, 1, key, value, any_owned);
    }
    WireBuffer field;
    put_bytes(field, 1, res.view());
    return field.str();
}

std::string scope_field(std::string_view name, std::string_view version) {
    WireBuffer scope;
    put_bytes(scope, 1, name);
    if (!version.empty()) {
        put_bytes(scope, 2, version);
    }
    WireBuffer field;
    put_bytes(field, 1, scope.view());
    return field.str();
}

} // namespace labctl::taskapi::wire
