// labctl entry point: the one catch ladder that turns failures into messages and exit codes.

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <labctl/cli/cli.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/exit_code.hpp>
#include <labctl/core/redact.hpp>
#include <labctl/core/signals.hpp>

namespace {

int fail(const std::string& message, const std::string& hint, labctl::ExitCode code) {
    std::fprintf(stderr, "labctl: error: %s\n", labctl::redact(message).c_str());
    if (!hint.empty())
        std::fprintf(stderr, "hint: %s\n", labctl::redact(hint).c_str());
    return labctl::to_int(code);
}

} // namespace

int main(int argc, char** argv) {
    labctl::signals::install();
    try {
        return labctl::cli::run(argc, argv);
    } catch (const labctl::Interrupted&) {
        return fail("interrupted", "cleanup finished; nothing half-created was left behind",
                    labctl::ExitCode::interrupted);
    } catch (const labctl::Error& e) {
        return fail(e.what(), e.hint(), e.code());
    } catch (const std::filesystem::filesystem_error& e) {
        // A file labctl needs on this machine could not be read or written: not a bug. Said
        // like any Unix tool says it: the path(s), then the system's message.
        std::string what = "file system: ";
        if (!e.path1().empty()) {
            what += e.path1().string();
            if (!e.path2().empty())
                what += " -> " + e.path2().string();
            what += ": " + e.code().message();
        } else {
            what += e.what();
        }
        return fail(what, "check the permissions of that path and the free space on this machine",
                    labctl::ExitCode::preflight);
    } catch (const std::bad_alloc&) {
        return fail("out of memory", {}, labctl::ExitCode::internal);
    } catch (const std::exception& e) {
        return fail(std::string("internal error: ") + e.what(),
                    "this is a bug in labctl; please report it with the command you ran",
                    labctl::ExitCode::internal);
    }
}
