// labctl-taskapi: the task API of the lab stack (STACK.md §2). Configuration from the environment
// (see config.hpp); SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush telemetry,
// exit 0 within 10 s, or k_exit_shutdown_deadline when in-flight requests held it past its
// deadline.

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>
#include <thread>

#include "config.hpp"
#include "json_log.hpp"
#include "metrics.hpp"
#include "server.hpp"
#include "task_store.hpp"
#include "telemetry.hpp"

namespace {

/// Exit code when shutdown did not complete in time: in-flight requests were still running when
/// the drain grace ended, or the whole shutdown outlived its 9.5 s watchdog (app/README.md).
constexpr int k_exit_shutdown_deadline = 3;

constexpr const char* k_usage =
    "usage: labctl-taskapi [--trivial] [--healthcheck] [--version]\n"
    "Configuration comes from the environment: HOST, PORT, DB_PATH, MAX_THREADS,\n"
    "DB_BUSY_TIMEOUT_MS, DB_GROUP_COMMIT, LOG_LEVEL, OTEL_SDK_DISABLED, "
    "OTEL_EXPORTER_OTLP_ENDPOINT,\n"
    "OTEL_EXPORTER_OTLP_{TRACES,LOGS}_ENDPOINT, OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_SERVICE_NAME,\n"
    "OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY,\n"
    "DEPLOYMENT_ENVIRONMENT.\n"
    "  --trivial      answer every request with 200 {\"status\":\"ok\"} (benchmark ceiling)\n"
    "  --healthcheck  GET http://127.0.0.1:$PORT/health; exit 0 when it answers 200\n";

/// `--healthcheck`: GET http://127.0.0.1:$PORT/health, exit 0 on 200 (Docker HEALTHCHECK without
/// curl in the image).
int healthcheck() {
    try {
        const char* port_env = std::getenv("PORT");
        const int port = port_env != nullptr && *port_env != '\0' ? std::atoi(port_env) : 5000;
        Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
        session.setTimeout(Poco::Timespan(3, 0));
        Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/health",
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        session.sendRequest(request);
        Poco::Net::HTTPResponse response;
        std::string body;
        Poco::StreamCopier::copyToString(session.receiveResponse(response), body);
        std::printf("%d %s\n", static_cast<int>(response.getStatus()), body.c_str());
        return response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK ? 0 : 1;
    } catch (const Poco::Exception& e) {
        std::fprintf(stderr, "healthcheck: %s\n", e.displayText().c_str());
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    using namespace labctl::taskapi;
    bool trivial = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--trivial") {
            trivial = true;
        } else if (arg == "--healthcheck") {
            return healthcheck();
        } else if (arg == "--version") {
            std::printf("labctl-taskapi %s\n", LABCTL_TASKAPI_VERSION);
            return 0;
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(k_usage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "labctl-taskapi: error: unknown argument '%s'\n%s", argv[i],
                         k_usage);
            return 2;
        }
    }

    // One malloc arena per core instead of eight: with a thread per connection, glibc's default
    // keeps many partly used arenas and the RSS grows for nothing.
    mallopt(M_ARENA_MAX, 2);

    // Block the shutdown signals in every thread (threads inherit the mask); main waits for them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    Config config;
    try {
        config = config_from_env();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "labctl-taskapi: error: %s\n", e.what());
        return 2;
    }
    config.service_version = LABCTL_TASKAPI_VERSION;
    config.trivial = trivial;

    Metrics metrics;
    Telemetry telemetry(config, metrics);
    JsonLog log(config.log_level, telemetry);
    try {
        std::unique_ptr<TaskStore> store;
        if (!trivial) {
            store = std::make_unique<TaskStore>(config, telemetry, metrics);
        }
        App app(config, metrics, telemetry, log, store.get());
        Server server(config, app);
        server.start();
        log.log(LogLevel::info, "listening",
                {{"host", std::string_view(config.host)},
                 {"port", std::int64_t{server.port()}},
                 {"db_path", std::string_view(config.db_path)},
                 {"otel_enabled", config.otel_enabled},
                 {"trivial", trivial}});

        int sig = 0;
        sigwait(&signals, &sig);
        log.log(LogLevel::info, "shutting down", {{"signal", std::string_view(strsignal(sig))}});
        // Whatever happens below, the process is gone within 10 s of the signal.
        std::thread([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(9500));
            std::fputs("{\"level\":\"error\",\"message\":\"shutdown deadline exceeded\"}\n",
                       stdout);
            std::fflush(stdout);
            _exit(k_exit_shutdown_deadline);
        }).detach();
        const bool drained = server.stop(std::chrono::milliseconds(6000));
        log.log(drained ? LogLevel::info : LogLevel::warn, "server stopped",
                {{"in_flight_drained", drained}});
        telemetry.shutdown(std::chrono::milliseconds(2000));
        std::fflush(stdout);
        // Undrained connections keep their threads: destroying the server waits for them, and
        // the watchdog above ends the process with the same code if that takes too long.
        return drained ? 0 : k_exit_shutdown_deadline;
    } catch (const Poco::Exception& e) {
        log.log(LogLevel::error, "fatal: " + e.displayText());
        telemetry.shutdown(std::chrono::milliseconds(1000));
        return 1;
    } catch (const std::exception& e) {
        log.log(LogLevel::error, std::string("fatal: ") + e.what());
        telemetry.shutdown(std::chrono::milliseconds(1000));
        return 1;
    }
}
