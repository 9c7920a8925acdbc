#pragma once
// Ctrl-C handling: the first SIGINT/SIGTERM sets a flag that long operations poll so they can clean
// up and exit 130; a second one terminates immediately.

namespace labctl::signals {

void install();
bool interrupted() noexcept;
/// Throws Interrupted when a signal arrived.
void check();
/// For tests.
void reset() noexcept;

} // namespace labctl::signals
