// The libvirt XML reader (src/provision/xml.cpp, libxml2 underneath): the tree its callers walk,
// and what it does with documents libvirt would never send.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>

#include "../../src/provision/xml.hpp"

namespace xml = labctl::provision::xml;

TEST_CASE("libvirt XML parses into elements, attributes, text and namespaces", "[provision][xml]") {
    const auto root = xml::parse(R"(<?xml version="1.0"?>
<!-- a comment -->
<domain type='kvm' id="3">
  <name> lab-vm1 </name>
  <metadata>
    <labctl:lab xmlns:labctl="https://labctl.dev/xml/1" project="demo"/>
  </metadata>
  <devices>
    <interface type='network'><mac address='52:54:00:AB:cd:01'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/></interface>
  </devices>
  <description>a &lt;b&gt; &amp; &#65;&#x42; <![CDATA[<raw>]]></description>
</domain>)");
    CHECK(root.name == "domain");
    CHECK(root.attribute("type") == "kvm");
    CHECK(root.attribute("id") == "3");
    CHECK(root.has_attribute("id"));
    CHECK_FALSE(root.has_attribute("missing"));
    CHECK(root.attribute("missing").empty());
    CHECK(root.child_text("name") == "lab-vm1");
    const auto* lab = root.find("metadata/lab");
    REQUIRE(lab != nullptr);
    CHECK(lab->name == "labctl:lab");
    CHECK(lab->local_name() == "lab");
    CHECK(lab->own_namespace() == "https://labctl.dev/xml/1");
    CHECK(lab->attribute("project") == "demo");
    const auto ifaces = root.find("devices")->children_named("interface");
    REQUIRE(ifaces.size() == 2);
    CHECK(ifaces[0]->find("mac")->attribute("address") == "52:54:00:AB:cd:01");
    CHECK(ifaces[1]->attribute("type") == "user");
    CHECK(root.find("devices/missing") == nullptr);
    CHECK(root.child("description")->text == "a <b> & AB <raw>");
}

TEST_CASE("escaped text parses back to itself", "[provision][xml]") {
    const std::string nasty = "a<b>&\"c\"'d' \xc3\xa4";
    const auto e =
        xml::parse("<x a='" + labctl::xml_escape(nasty) + "' b=\"" + labctl::xml_escape(nasty) +
                   "\">" + labctl::xml_escape(nasty) + "</x>");
    CHECK(e.attribute("a") == nasty);
    CHECK(e.attribute("b") == nasty);
    CHECK(e.text == nasty);
}

TEST_CASE("malformed XML is a clear error, not a crash", "[provision][xml]") {
    for (const char* bad :
         {"", "   ", "not xml", "<a>", "<a></b>", "<a b='1></a>", "<a>&unknown;</a>", "<a/><b/>",
          "<a b='1' b='2'/>", "<a>\x01</a>", "<a><b></a></b>", "<?xml version='1.0'?>",
          "<a>&#xFFFFFFFF;</a>", "<!-- only a comment -->"}) {
        CAPTURE(bad);
        try {
            (void)xml::parse(bad);
            FAIL("parsed");
        } catch (const labctl::Error& e) {
            CHECK(e.code() == labctl::ExitCode::internal);
            CHECK(std::string(e.what()).rfind("malformed XML from libvirt: ", 0) == 0);
        }
    }
    // Deep nesting is refused (or reported by libxml2) without exhausting the stack.
    std::string deep;
    for (int i = 0; i < 5000; ++i)
        deep += "<a>";
    for (int i = 0; i < 5000; ++i)
        deep += "</a>";
    CHECK_THROWS_AS(xml::parse(deep), labctl::Error);
}

TEST_CASE("internal entities are not expanded", "[provision][xml]") {
    // A billion-laughs document: expanded it would be gigabytes; here it is refused at once.
    const std::string laughs = R"(<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>)";
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(xml::parse(laughs), Catch::StartsWith("malformed XML from libvirt: "));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
    CHECK_THROWS_WITH(xml::parse("<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>"),
                      Catch::Contains("entity reference &e; (entities are not expanded)"));
    CHECK_THROWS_WITH(xml::parse("<!DOCTYPE a [<!ENTITY e 'x'>]><a v='&e;'/>"),
                      Catch::Contains("entities are not expanded"));
}

TEST_CASE("external DTDs and entities are never fetched", "[provision][xml]") {
    // 127.0.0.1 port 9 (discard, nothing listens): a fetch would fail or hang, not silently
    // succeed; the parser never tries because it loads no DTD and has no network.
    const auto start = std::chrono::steady_clock::now();
    const auto doc = xml::parse(R"(<?xml version="1.0"?>
<!DOCTYPE pool SYSTEM "http://127.0.0.1:9/pool.dtd">
<pool type='dir'><name>p</name></pool>)");
    CHECK(doc.name == "pool");
    CHECK(doc.child_text("name") == "p");
    CHECK_THROWS_WITH(xml::parse(R"(<!DOCTYPE a [<!ENTITY ext SYSTEM "file:///etc/passwd">]>
<a>&ext;</a>)"),
                      Catch::Contains("entities are not expanded"));
    CHECK_THROWS_AS(xml::parse(R"(<!DOCTYPE a [<!ENTITY ext SYSTEM "http://127.0.0.1:9/x">]>
<a>&ext;</a>)"),
                    labctl::Error);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}
