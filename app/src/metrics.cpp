#include "metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <sstream>
#include <unordered_map>

namespace labctl::taskapi {
namespace {

const prometheus::Histogram::BucketBoundaries k_http_buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                0.5,   1.0,  2.5,   5.0,  10.0};
const prometheus::Histogram::BucketBoundaries k_db_buckets = {0.002, 0.005, 0.01, 0.025, 0.05,
                                                              0.1,   0.25,  0.5,  1.0,   2.0};
const prometheus::Histogram::BucketBoundaries k_group_buckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};

} // namespace

Metrics::Metrics() : m_registry(std::make_shared<prometheus::Registry>()) {
    m_requests = &prometheus::BuildCounter()
                      .Name("http_requests_total")
                      .Help("HTTP requests served, by method, route template and status code "
                            "(excluding /metrics and /health)")
                      .Register(*m_registry);
    m_duration = &prometheus::BuildHistogram()
                      .Name("http_request_duration_seconds")
                      .Help("HTTP request latency in seconds, by method, route template and "
                            "status code (excluding /metrics and /health)")
                      .Register(*m_registry);
    m_errors = &prometheus::BuildCounter()
                    .Name("http_errors_total")
                    .Help("HTTP requests answered with a status code >= 400")
                    .Register(*m_registry);
    m_db_duration = &prometheus::BuildHistogram()
                         .Name("db_query_duration_seconds")
                         .Help("SQLite statement latency in seconds, by SQL operation")
                         .Register(*m_registry);
    m_commit_groups = &prometheus::BuildHistogram()
                           .Name("db_commit_group_writes")
                           .Help("Writes made durable by one transaction (and one fsync) of the "
                                 "group-commit writer")
                           .Register(*m_registry);
    m_dropped = &prometheus::BuildCounter()
                     .Name("otel_export_dropped_total")
                     .Help("Telemetry items dropped because the bounded OTLP export queue was "
                           "full, by signal")
                     .Register(*m_registry);
    m_export_failed = &prometheus::BuildCounter()
                           .Name("otel_export_failed_batches_total")
                           .Help("OTLP export batches that failed (collector down, slow or "
                                 "refusing), by signal")
                           .Register(*m_registry);
    m_dropped_traces = &m_dropped->Add({{"signal", "traces"}});
    m_dropped_logs = &m_dropped->Add({{"signal", "logs"}});
    m_failed_traces = &m_export_failed->Add({{"signal", "traces"}});
    m_failed_logs = &m_export_failed->Add({{"signal", "logs"}});
}

Metrics::~Metrics() = default;

void Metrics::observe_request(const std::string& method, const std::string& endpoint, int status,
                              double seconds) {
    // Family::Add hashes the label map under a lock on every call; the series of one label set
    // never move, so each thread remembers them (labels are bounded: known methods × route
    // templates × status codes).
    struct Series {
        prometheus::Counter* requests = nullptr;
        prometheus::Histogram* duration = nullptr;
        prometheus::Counter* errors = nullptr;
    };
    thread_local std::unordered_map<std::string, Series> t_series;
    thread_local const Metrics* t_owner = nullptr;
    if (t_owner != this) {
        t_series.clear();
        t_owner = this;
    }
    std::string key;
    key.reserve(method.size() + endpoint.size() + 8);
    key.append(method).append(" ").append(endpoint).append(" ").append(std::to_string(status));
    auto it = t_series.find(key);
    if (it == t_series.end()) {
        const std::map<std::string, std::string> labels = {
            {"method", method}, {"endpoint", endpoint}, {"status_code", std::to_string(status)}};
        Series series;
        series.requests = &m_requests->Add(labels);
        series.duration = &m_duration->Add(labels, k_http_buckets);
        if (status >= 400) {
            series.errors = &m_errors->Add(labels);
        }
        it = t_series.emplace(std::move(key), series).first;
    }
    it->second.requests->Increment();
    it->second.duration->Observe(seconds);
    if (it->second.errors != nullptr) {
        it->second.errors->Increment();
    }
}

void Metrics::observe_db(std::string_view operation, double seconds) {
    static constexpr std::array<std::string_view, 4> k_ops = {"SELECT", "INSERT", "UPDATE",
                                                              "DELETE"};
    const auto known = std::find(k_ops.begin(), k_ops.end(), operation);
    if (known == k_ops.end()) {
        m_db_duration->Add({{"operation", std::string(operation)}}, k_db_buckets).Observe(seconds);
        return;
    }
    auto& slot = m_db_ops[static_cast<std::size_t>(known - k_ops.begin())];
    prometheus::Histogram* child = slot.load(std::memory_order_acquire);
    if (child == nullptr) {
        // Add() returns the same child for the same labels, so a race here is harmless.
        child = &m_db_duration->Add({{"operation", std::string(operation)}}, k_db_buckets);
        slot.store(child, std::memory_order_release);
    }
    child->Observe(seconds);
}

void Metrics::observe_commit_group(std::size_t writes) {
    if (m_commit_group == nullptr) {
        m_commit_group = &m_commit_groups->Add({}, k_group_buckets);
    }
    m_commit_group->Observe(static_cast<double>(writes));
}

void Metrics::count_export_dropped(const std::string& signal, double n) {
    if (signal == "traces") {
        m_dropped_traces->Increment(n);
    } else if (signal == "logs") {
        m_dropped_logs->Increment(n);
    } else {
        m_dropped->Add({{"signal", signal}}).Increment(n);
    }
}

void Metrics::count_export_failed(const std::string& signal) {
    if (signal == "traces") {
        m_failed_traces->Increment();
    } else if (signal == "logs") {
        m_failed_logs->Increment();
    } else {
        m_export_failed->Add({{"signal", signal}}).Increment();
    }
}

std::string Metrics::serialize() const {
    const prometheus::TextSerializer serializer;
    std::ostringstream out;
    serializer.Serialize(out, m_registry->Collect());
    return out.str();
}

} // namespace labctl::taskapi
