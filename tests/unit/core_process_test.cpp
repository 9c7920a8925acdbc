#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>

using namespace std::chrono_literals;
using labctl::ProcessOptions;
using labctl::run_process;

TEST_CASE("process runner captures stdout, stderr and exit status", "[core][process]") {
    auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
    CHECK(r.exit_code == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");
    CHECK_FALSE(r.timed_out);
    CHECK_FALSE(r.ok());
}

TEST_CASE("process runner feeds stdin and sets environment", "[core][process]") {
    ProcessOptions o;
    o.stdin_data = std::string(200000, 'x'); // larger than a pipe buffer
    o.env["LABCTL_TEST_VAR"] = "hello";
    auto r = run_process({"sh", "-c", "wc -c; echo $LABCTL_TEST_VAR"}, o);
    CHECK(r.ok());
    CHECK(r.out == "200000\nhello\n");
}

TEST_CASE("process runner kills the program at its timeout", "[core][process]") {
    ProcessOptions o;
    o.timeout = 300ms;
    auto r = run_process({"sh", "-c", "sleep 30 & sleep 30"}, o);
    CHECK(r.timed_out);
    CHECK(r.elapsed < 5s);
}

TEST_CASE("process runner streams lines as they arrive", "[core][process]") {
    std::vector<std::string> lines;
    ProcessOptions o;
    o.on_stdout_line = [&](const std::string& l) {
        lines.push_back(l);
    };
    auto r = run_process({"printf", "a\\nb\\nc"}, o);
    CHECK(r.ok());
    CHECK(lines == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("process runner can send stdout to a pipe the caller reads", "[core][process]") {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    ProcessOptions o;
    o.stdout_fd = p[1];
    auto r = run_process({"sh", "-c", "printf streamed; echo oops >&2"}, o);
    ::close(p[1]);
    char buf[64] = {};
    const auto n = ::read(p[0], buf, sizeof buf);
    ::close(p[0]);
    CHECK(r.ok());
    CHECK(r.out.empty());
    CHECK(r.err == "oops\n");
    CHECK(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))) == "streamed");
}

TEST_CASE("a missing program is an error naming it", "[core][process]") {
    try {
        run_process({"labctl-no-such-program"});
        FAIL("expected an error");
    } catch (const labctl::Error& e) {
        CHECK(std::string(e.what()).find("labctl-no-such-program") != std::string::npos);
    }
    CHECK_FALSE(labctl::find_program("labctl-no-such-program").has_value());
    CHECK(labctl::find_program("sh").has_value());
}
