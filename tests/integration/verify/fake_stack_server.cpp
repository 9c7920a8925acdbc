// Runs the contract fixtures of `labctl verify` (fake_stack.hpp) on loopback until stdin closes,
// printing the lab.yaml `verify.endpoints` block that points at them. For tests/bench/verify and
// for trying `labctl verify` by hand. Only 127.0.0.1 is bound.

#include <cstdio>
#include <iostream>
#include <string>

#include "fake_stack.hpp"

int main(int argc, char** argv) {
    labctl::test::verify::Quirks quirks;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pins=current" || a == "--tempo-v2" || a == "--loki-3x")
            quirks.pins = labctl::test::verify::PinSet::current; // the old flags mean the same
        else if (a == "--pins=original")
            quirks.pins = labctl::test::verify::PinSet::original;
        else if (a.rfind("--tempo-polls=", 0) == 0)
            quirks.tempo_polls_before_found = std::stoi(a.substr(14));
        else if (a.rfind("--loki-polls=", 0) == 0)
            quirks.loki_polls_before_found = std::stoi(a.substr(13));
        else if (a.rfind("--latency-ms=", 0) == 0)
            quirks.latency_ms = std::stoi(a.substr(13));
        else {
            std::cerr << "usage: fake_stack_server [--pins=original|current] [--tempo-polls=N] "
                         "[--loki-polls=N] [--latency-ms=N]\n";
            return 2;
        }
    }
    labctl::test::verify::FakeStack stack(quirks);
    std::cout << "  endpoints:\n";
    for (const auto& [name, url] : stack.endpoints())
        std::cout << "    " << name << ": \"" << url << "\"\n";
    std::cout.flush();
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    return 0;
}
