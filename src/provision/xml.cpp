#include "xml.hpp"

#include <fmt/format.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <climits>
#include <memory>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>

namespace labctl::provision::xml {

namespace {

struct DocFree {
    void operator()(xmlDoc* d) const noexcept { xmlFreeDoc(d); }
};
struct CtxtFree {
    void operator()(xmlParserCtxt* c) const noexcept { xmlFreeParserCtxt(c); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;
using CtxtPtr = std::unique_ptr<xmlParserCtxt, CtxtFree>;

[[noreturn]] void fail(const std::string& what) {
    throw Error(ExitCode::internal, fmt::format("malformed XML from libvirt: {}", what));
}

std::string text_of(const xmlChar* s) {
    return s != nullptr ? std::string(reinterpret_cast<const char*>(s)) : std::string();
}

std::string qualified(const xmlNs* ns, const xmlChar* name) {
    const std::string local = text_of(name);
    if (ns != nullptr && ns->prefix != nullptr)
        return text_of(ns->prefix) + ":" + local;
    return local;
}

// Converts one element node and its subtree. Comments and processing instructions are skipped;
// an entity reference (the parser never substitutes entities) is refused.
Element convert(const xmlNode* node, int depth) {
    if (depth > 256)
        fail("elements nested deeper than 256");
    Element e;
    e.name = qualified(node->ns, node->name);
    // Namespace declarations first, as they were attributes of the element in the document.
    for (const xmlNs* ns = node->nsDef; ns != nullptr; ns = ns->next)
        e.attributes.emplace_back(ns->prefix != nullptr ? "xmlns:" + text_of(ns->prefix) : "xmlns",
                                  text_of(ns->href));
    for (const xmlAttr* a = node->properties; a != nullptr; a = a->next) {
        std::string value;
        for (const xmlNode* v = a->children; v != nullptr; v = v->next) {
            if (v->type == XML_ENTITY_REF_NODE)
                fail(
                    fmt::format("entity reference &{}; in an attribute (entities are not expanded)",
                                text_of(v->name)));
            if (v->type == XML_TEXT_NODE)
                value += text_of(v->content);
        }
        e.attributes.emplace_back(qualified(a->ns, a->name), std::move(value));
    }
    for (const xmlNode* c = node->children; c != nullptr; c = c->next) {
        switch (c->type) {
        case XML_ELEMENT_NODE:
            e.children.push_back(convert(c, depth + 1));
            break;
        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            e.text += text_of(c->content);
            break;
        case XML_ENTITY_REF_NODE:
            fail(
                fmt::format("entity reference &{}; (entities are not expanded)", text_of(c->name)));
        default:
            break; // comments, processing instructions
        }
    }
    return e;
}

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
    if (text.size() > static_cast<std::size_t>(INT_MAX))
        fail("document too large");
    static const bool initialised = [] {
        xmlInitParser();
        return true;
    }();
    (void)initialised;
    CtxtPtr ctxt(xmlNewParserCtxt());
    if (!ctxt)
        throw Error(ExitCode::internal, "cannot allocate an XML parser");
    // No network, no DTD loading, no entity substitution (XML_PARSE_NOENT is not set), no
    // messages on stderr: errors come back through the context.
    const int options =
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    DocPtr doc(xmlCtxtReadMemory(ctxt.get(), text.data(), static_cast<int>(text.size()), nullptr,
                                 nullptr, options));
    if (!doc || ctxt->wellFormed == 0) {
        const xmlError* err = xmlCtxtGetLastError(ctxt.get());
        if (err != nullptr && err->message != nullptr)
            fail(fmt::format("line {}: {}", err->line, std::string(trim(err->message))));
        fail("not a document");
    }
    const xmlNode* root = xmlDocGetRootElement(doc.get());
    if (root == nullptr)
        fail("no root element");
    return convert(root, 0);
}

} // namespace labctl::provision::xml
