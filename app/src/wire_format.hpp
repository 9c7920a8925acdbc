#pragma once
// Protobuf wire primitives (https://protobuf.dev/programming-guides/encoding/) for the wire
// pipeline: a growable byte buffer with inline storage and tag/varint/fixed/bytes writers.

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace labctl::taskapi::wire {

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

inline char* write_varint(char* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

inline char* write_tag(char* p, std::uint32_t field, Wire wire) {
    return write_varint(p, (static_cast<std::uint64_t>(field) << 3) | wire);
}

inline char* write_bytes(char* p, std::uint32_t field, std::string_view bytes) {
    p = write_tag(p, field, k_len);
    p = write_varint(p, bytes.size());
    std::memcpy(p, bytes.data(), bytes.size());
    return p + bytes.size();
}

inline char* write_le(char* p, std::uint64_t v, std::size_t bytes) {
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
inline constexpr std::size_t k_max_head = 15;

inline void put_varint(WireBuffer& out, std::uint64_t v) {
    out.commit(write_varint(out.tail(10), v));
}

inline std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

inline void put_tag(WireBuffer& out, std::uint32_t field, Wire wire) {
    out.commit(write_tag(out.tail(5), field, wire));
}

inline void put_bytes(WireBuffer& out, std::uint32_t field, std::string_view bytes) {
    out.commit(write_bytes(out.tail(k_max_head + bytes.size()), field, bytes));
}

inline void put_fixed64(WireBuffer& out, std::uint32_t field, std::uint64_t v) {
    out.commit(write_le(write_tag(out.tail(5 + 8), field, k_fixed64), v, 8));
}

inline void put_fixed32(WireBuffer& out, std::uint32_t field, std::uint32_t v) {
    out.commit(write_le(write_tag(out.tail(5 + 4), field, k_fixed32), v, 4));
}

inline void put_uint(WireBuffer& out, std::uint32_t field, std::uint64_t v) {
    put_tag(out, field, k_varint);
    put_varint(out, v);
}

inline std::uint64_t double_bits(double d) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    return bits;
}

} // namespace labctl::taskapi::wire
