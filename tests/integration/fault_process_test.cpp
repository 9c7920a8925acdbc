// Fault cases for core::run_process with real child processes: a line callback that throws, a
// grandchild that escapes the process group and holds the pipes, Ctrl-C while a child runs, and a
// child that closes its pipes but keeps running past its timeout. Each asserts the result or
// exception, that it ended within its bound, and that no child was left (unreaped or running).

#include <signal.h>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/signals.hpp>

#include "fault_support.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("run_process with a throwing line callback kills and reaps the child",
          "[fault][process]") {
    const auto marker = test::unique_marker("throwing-callback");
    ProcessOptions o;
    o.kill_grace = 1s;
    o.on_stdout_line = [](const std::string& line) {
        if (line == "first")
            throw std::runtime_error("callback refused: " + line);
    };
    const auto t0 = Clock::now();
    try {
        run_process({"sh", "-c", "echo first; sleep 300; true # " + marker}, o);
        FAIL("the callback's exception did not propagate");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "callback refused: first");
    }
    CHECK(Clock::now() - t0 < 10s);
    CHECK(test::processes_matching(marker).empty());
    CHECK(test::children_of_self().empty()); // killed and reaped: not even a zombie
}

TEST_CASE("run_process whose child leaves a grandchild holding stdout returns after the timeout",
          "[fault][process]") {
    const auto marker = test::unique_marker("escaped-grandchild");
    ProcessOptions o;
    o.timeout = 1s;
    o.kill_grace = 1s;
    const auto t0 = Clock::now();
    // setsid: the grandchild leaves the process group, so the group's SIGKILL misses it and it
    // keeps the stdout pipe open.
    const auto r = run_process(
        {"sh", "-c", "setsid sh -c 'sleep 300; true # " + marker + "' & echo started; sleep 300"},
        o);
    const auto took = Clock::now() - t0;
    CHECK(r.timed_out);
    CHECK(r.out == "started\n");
    CHECK(r.exit_code == 128 + SIGTERM);
    CHECK(took >= 1s);
    CHECK(took < 10s); // timeout 1 s + drain bound 2 s, on a loaded machine
    CHECK(test::children_of_self().empty());
    // The escaped grandchild is outside any group run_process owns: the test ends it.
    CHECK(test::processes_matching(marker).size() == 1);
    test::kill_matching(marker);
    CHECK(test::wait_gone(marker, 5s));
}

TEST_CASE("run_process whose child exits while a grandchild holds stderr returns promptly",
          "[fault][process]") {
    const auto marker = test::unique_marker("daemon-holds-stderr");
    const auto t0 = Clock::now();
    // Like ssh's ControlPersist master: the program exits, a background process keeps the pipe.
    const auto r = run_process(
        {"sh", "-c", "setsid sh -c 'sleep 300; true # " + marker + "' & echo done; exit 0"});
    const auto took = Clock::now() - t0;
    CHECK(r.ok());
    CHECK(r.out == "done\n");
    CHECK(took < 8s);
    CHECK(test::children_of_self().empty());
    test::kill_matching(marker);
    CHECK(test::wait_gone(marker, 5s));
}

TEST_CASE("Ctrl-C during run_process ends the child and throws the interrupt error",
          "[fault][process]") {
    signals::install();
    signals::reset();
    const auto marker = test::unique_marker("ctrl-c");
    std::thread ctrl_c([] {
        std::this_thread::sleep_for(500ms);
        ::kill(::getpid(), SIGINT); // what the terminal sends; signals' handler sets the flag
    });
    const auto t0 = Clock::now();
    try {
        run_process({"sh", "-c", "sleep 300; true # " + marker}, {.kill_grace = 2s});
        FAIL("run_process returned although Ctrl-C arrived");
    } catch (const Interrupted& e) {
        CHECK(e.code() == ExitCode::interrupted);
        CHECK(std::string(e.what()) == "interrupted");
    }
    ctrl_c.join();
    CHECK(Clock::now() - t0 < 8s);
    CHECK(test::processes_matching(marker).empty());
    CHECK(test::children_of_self().empty());
    // Cleanup after the interrupt still runs its commands to the end.
    const auto cleanup = run_process({"sh", "-c", "sleep 0.3; echo cleaned"});
    CHECK(cleanup.out == "cleaned\n");
    signals::reset();
}

TEST_CASE("run_process ends a child that closed its pipes but outlives its timeout",
          "[fault][process]") {
    const auto marker = test::unique_marker("closed-pipes");
    const auto t0 = Clock::now();
    const auto r = run_process({"sh", "-c", "exec >/dev/null 2>&1; sleep 300; true # " + marker},
                               {.timeout = 1s, .kill_grace = 1s});
    CHECK(r.timed_out);
    CHECK(Clock::now() - t0 < 8s);
    CHECK(test::processes_matching(marker).empty());
    CHECK(test::children_of_self().empty());
}

TEST_CASE("run_process finds the program in the child's PATH, and names a missing one",
          "[fault][process]") {
    const auto r = run_process({"sh", "-c", "echo ok"}, {.env = {{"PATH", "/nonexistent:/bin"}}});
    CHECK(r.out == "ok\n");
    CHECK(find_program("sh").has_value());
    try {
        run_process({"labctl-no-such-program-xyz"});
        FAIL("started a program that does not exist");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::internal);
        CHECK(std::string(e.what()).find("labctl-no-such-program-xyz") != std::string::npos);
    }
}
