#include "xml.hpp"

#include <fmt/format.h>

#include <cstdint>

#include <labctl/core/error.hpp>

namespace labctl::provision::xml {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

class Parser {
public:
    explicit Parser(std::string_view text) : m_text(text) {}

    Element document() {
        skip_misc();
        if (!starts_with("<"))
            fail("no root element");
        Element root = element();
        skip_misc();
        if (m_pos != m_text.size())
            fail("content after the root element");
        return root;
    }

private:
    [[noreturn]] void fail(std::string_view what) const {
        throw Error(ExitCode::internal,
                    fmt::format("malformed XML from libvirt at offset {}: {}", m_pos, what));
    }

    bool starts_with(std::string_view s) const { return m_text.substr(m_pos, s.size()) == s; }

    void skip_until(std::string_view end) {
        const auto at = m_text.find(end, m_pos);
        if (at == std::string_view::npos)
            fail(fmt::format("missing '{}'", end));
        m_pos = at + end.size();
    }

    void skip_space() {
        while (m_pos < m_text.size() && is_space(m_text[m_pos]))
            ++m_pos;
    }

    /// Whitespace, comments, processing instructions and a DOCTYPE outside the root.
    void skip_misc() {
        for (;;) {
            skip_space();
            if (starts_with("<?"))
                skip_until("?>");
            else if (starts_with("<!--"))
                skip_until("-->");
            else if (starts_with("<!DOCTYPE"))
                skip_until(">");
            else
                return;
        }
    }

    std::string name() {
        const auto start = m_pos;
        while (m_pos < m_text.size() && !is_space(m_text[m_pos]) && m_text[m_pos] != '>' &&
               m_text[m_pos] != '/' && m_text[m_pos] != '=')
            ++m_pos;
        if (m_pos == start)
            fail("expected a name");
        return std::string(m_text.substr(start, m_pos - start));
    }

    std::string decode(std::string_view raw) const {
        std::string out;
        out.reserve(raw.size());
        for (std::size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] != '&') {
                out += raw[i];
                continue;
            }
            const auto semi = raw.find(';', i);
            if (semi == std::string_view::npos)
                fail("unterminated entity");
            const auto entity = raw.substr(i + 1, semi - i - 1);
            if (entity == "lt")
                out += '<';
            else if (entity == "gt")
                out += '>';
            else if (entity == "amp")
                out += '&';
            else if (entity == "quot")
                out += '"';
            else if (entity == "apos")
                out += '\'';
            else if (entity.size() > 1 && entity[0] == '#') {
                const bool hex = entity[1] == 'x' || entity[1] == 'X';
                const std::string digits(entity.substr(hex ? 2 : 1));
                try {
                    append_utf8(out, static_cast<std::uint32_t>(
                                         std::stoul(digits, nullptr, hex ? 16 : 10)));
                } catch (const std::exception&) {
                    fail("bad character reference");
                }
            } else {
                fail(fmt::format("unknown entity &{};", entity));
            }
            i = semi;
        }
        return out;
    }

    Element element() {
        ++m_pos; // '<'
        Element e;
        e.name = name();
        for (;;) {
            skip_space();
            if (m_pos >= m_text.size())
                fail("unterminated start tag");
            if (starts_with("/>")) {
                m_pos += 2;
                return e;
            }
            if (m_text[m_pos] == '>') {
                ++m_pos;
                break;
            }
            std::string key = name();
            skip_space();
            if (!starts_with("="))
                fail("expected '=' after an attribute name");
            ++m_pos;
            skip_space();
            if (m_pos >= m_text.size() || (m_text[m_pos] != '"' && m_text[m_pos] != '\''))
                fail("expected a quoted attribute value");
            const char quote = m_text[m_pos++];
            const auto end = m_text.find(quote, m_pos);
            if (end == std::string_view::npos)
                fail("unterminated attribute value");
            e.attributes.emplace_back(std::move(key), decode(m_text.substr(m_pos, end - m_pos)));
            m_pos = end + 1;
        }
        // Content.
        for (;;) {
            if (m_pos >= m_text.size())
                fail(fmt::format("element <{}> is not closed", e.name));
            if (starts_with("</")) {
                m_pos += 2;
                const auto closing = name();
                if (closing != e.name)
                    fail(fmt::format("</{}> closes <{}>", closing, e.name));
                skip_space();
                if (!starts_with(">"))
                    fail("expected '>'");
                ++m_pos;
                return e;
            }
            if (starts_with("<!--")) {
                skip_until("-->");
            } else if (starts_with("<![CDATA[")) {
                const auto start = m_pos + 9;
                skip_until("]]>");
                e.text += m_text.substr(start, m_pos - 3 - start);
            } else if (starts_with("<?")) {
                skip_until("?>");
            } else if (m_text[m_pos] == '<') {
                e.children.push_back(element());
            } else {
                const auto end = m_text.find('<', m_pos);
                const auto stop = end == std::string_view::npos ? m_text.size() : end;
                e.text += decode(m_text.substr(m_pos, stop - m_pos));
                m_pos = stop;
            }
        }
    }

    std::string_view m_text;
    std::size_t m_pos = 0;
};

} // namespace

std::string_view Element::local_name() const {
    const std::string_view n = name;
    const auto colon = n.find(':');
    return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

std::string Element::attribute(std::string_view key) const {
    for (const auto& [k, v] : attributes)
        if (k == key)
            return v;
    return {};
}

bool Element::has_attribute(std::string_view key) const {
    for (const auto& a : attributes)
        if (a.first == key)
            return true;
    return false;
}

const Element* Element::child(std::string_view local) const {
    for (const auto& c : children)
        if (c.local_name() == local)
            return &c;
    return nullptr;
}

const Element* Element::find(std::string_view path) const {
    const Element* at = this;
    while (at != nullptr && !path.empty()) {
        const auto slash = path.find('/');
        at = at->child(path.substr(0, slash));
        path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    }
    return at;
}

std::vector<const Element*> Element::children_named(std::string_view local) const {
    std::vector<const Element*> out;
    for (const auto& c : children)
        if (c.local_name() == local)
            out.push_back(&c);
    return out;
}

std::string Element::own_namespace() const {
    const std::string_view n = name;
    const auto colon = n.find(':');
    const std::string decl =
        colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(n.substr(0, colon));
    return attribute(decl);
}

std::string Element::child_text(std::string_view local) const {
    const Element* c = child(local);
    return c != nullptr ? std::string(trim(c->text)) : std::string();
}

Element parse(std::string_view text) {
    return Parser(text).document();
}

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '&':
            out += "&amp;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

} // namespace labctl::provision::xml
