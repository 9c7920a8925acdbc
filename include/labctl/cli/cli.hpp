#pragma once
// The labctl command line: parses argv, runs the chosen verb and returns its exit code. Failures
// are thrown as labctl::Error (usage errors included, so no CLI11 type or exit code escapes).

namespace labctl::cli {

int run(int argc, char** argv);

} // namespace labctl::cli
