// libFuzzer: the task API's request-body parser (parse_task_input) and the query/id parsers.
// Invariants: never crash or throw; whatever is accepted respects the documented limits.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "json_text.hpp"
#include "task_input.hpp"

using namespace labctl::taskapi;

namespace {

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    for (const auto mode : {InputMode::create, InputMode::update}) {
        const auto result = parse_task_input(input, mode);
        check(result.input.has_value() != !result.error.empty());
        if (result.input) {
            const auto& in = *result.input;
            check(mode == InputMode::update || in.title.has_value());
            if (in.title) {
                check(valid_utf8(*in.title));
                check(utf8_length(*in.title) >= 1 && utf8_length(*in.title) <= k_max_title_chars);
            }
            if (in.description) {
                check(in.description_set);
                check(valid_utf8(*in.description));
                check(utf8_length(*in.description) <= k_max_description_chars);
            }
            check(mode == InputMode::create || in.title || in.description_set || in.completed);
        }
    }
    // JSON output of arbitrary bytes is always well-formed enough to re-parse as a string.
    std::string quoted;
    append_json_string(quoted, input);
    check(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"');
    check(valid_utf8(quoted));

    const auto id = parse_task_id(input);
    check(!id || *id >= 1);
    const auto delay = parse_delay(std::string(input));
    check(!delay || (*delay >= 0 && *delay <= k_max_slow_delay_s));
    const auto count = parse_count(std::string(input), 1, k_max_smoke_ops);
    check(!count || (*count >= 1 && *count <= k_max_smoke_ops));
    (void)is_json_media_type(input);
    return 0;
}
