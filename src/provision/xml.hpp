#pragma once
// Private to src/provision: the documents libvirt formats (domain, network, pool, volume XML),
// parsed with libxml2 (no network, no DTD loading, entities never expanded) into a small tree.
// Names keep their namespace prefix; lookups match the local name; namespace declarations appear
// as xmlns / xmlns:prefix attributes.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace labctl::provision::xml {

struct Element {
    std::string name; ///< as written, with any prefix ("labctl:lab")
    std::vector<std::pair<std::string, std::string>> attributes;
    std::string text; ///< the concatenated character data directly inside this element
    std::vector<Element> children;

    /// The name without a namespace prefix.
    std::string_view local_name() const;
    /// The attribute's value, or "" when absent.
    std::string attribute(std::string_view name) const;
    bool has_attribute(std::string_view name) const;
    /// The first child with this local name, or nullptr.
    const Element* child(std::string_view local) const;
    /// Follows a path of local names, "ip/dhcp"; nullptr when any step is missing.
    const Element* find(std::string_view path) const;
    /// All children with this local name.
    std::vector<const Element*> children_named(std::string_view local) const;
    /// The namespace URI this element's prefix (or default namespace) is declared with on the
    /// element itself, or "" (enough for libvirt metadata, which declares it there).
    std::string own_namespace() const;
    /// Text of the child with this local name (trimmed), or "".
    std::string child_text(std::string_view local) const;
};

/// Parses a document and returns its root element; throws Error(internal) when malformed.
Element parse(std::string_view text);

} // namespace labctl::provision::xml
