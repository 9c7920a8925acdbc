#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/compose_env.hpp>

namespace labctl::deploy {

namespace {

bool is_identifier(const std::string& name) {
    const auto ident = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    };
    return !name.empty() && std::isdigit(static_cast<unsigned char>(name.front())) == 0 &&
           std::all_of(name.begin(), name.end(), ident);
}

void check_name(const std::string& name) {
    if (!is_identifier(name))
        throw Error(ExitCode::usage, fmt::format("'{}' is not a valid compose variable name", name),
                    "use letters, digits and '_', not starting with a digit");
}

} // namespace

RemoteCommand compose_command(const std::string& compose, const std::string& remote_dir,
                              const std::string& project, const ComposeEnv& env,
                              const std::string& args) {
    RemoteCommand out;
    out.command = "cd " + shell_quote(remote_dir) + " && ";
    if (!env.secrets.empty()) {
        std::string input;
        for (const auto& [name, value] : env.secrets) {
            check_name(name);
            if (value.find_first_of("\r\n") != std::string::npos)
                throw Error(ExitCode::usage,
                            fmt::format("the secret {} contains a line break", name),
                            "a secret passed to compose must be one line");
            // `read -r` keeps backslashes; IFS= keeps leading and trailing spaces.
            out.command += fmt::format("IFS= read -r {0} && export {0} && ", name);
            input += value + "\n";
        }
        out.stdin_data = std::move(input);
    }
    std::string vars;
    for (const auto& [name, value] : env.vars) {
        check_name(name);
        vars += fmt::format("{}={} ", name, shell_quote(value));
    }
    if (!vars.empty())
        out.command += "env " + vars;
    out.command += fmt::format("{} -p {} {}", compose, shell_quote(project), args);
    return out;
}

std::map<std::string, std::string> read_env_file(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw Error(ExitCode::usage, fmt::format("cannot read the env file {}", path),
                    "check deploy.stack_dir and deploy.pins");
    std::map<std::string, std::string> vars;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        line = std::string(trim(line));
        if (line.empty() || line.front() == '#')
            continue;
        if (line.rfind("export ", 0) == 0)
            line = std::string(trim(std::string_view(line).substr(7)));
        const auto eq = line.find('=');
        const std::string name = eq == std::string::npos
                                     ? line
                                     : std::string(trim(std::string_view(line).substr(0, eq)));
        if (eq == std::string::npos || !is_identifier(name))
            throw Error(
                ExitCode::usage,
                fmt::format("{}:{}: '{}' is not a KEY=VALUE assignment", path, number, line),
                "write one NAME=value per line; '#' starts a comment");
        std::string value(trim(std::string_view(line).substr(eq + 1)));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
        } else if (const auto hash = value.find(" #"); hash != std::string::npos) {
            // An inline comment after a space.
            value = std::string(trim(std::string_view(value).substr(0, hash)));
        }
        vars[name] = value;
    }
    if (in.bad())
        throw Error(ExitCode::usage, fmt::format("cannot read the env file {}", path),
                    "check the file's permissions");
    return vars;
}

} // namespace labctl::deploy
