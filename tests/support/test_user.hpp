#pragma once
// A throwaway local account for tests that need a real login (password + key + passwordless
// sudo, like the user cloud-init creates for labctl). Needs root; the test is skipped otherwise.
// The account, its home and its sudoers file are removed on destruction.

#include <string>

namespace labctl::test {

class TestUser {
public:
    TestUser();
    ~TestUser();
    TestUser(const TestUser&) = delete;
    TestUser& operator=(const TestUser&) = delete;

    const std::string& name() const { return m_name; }
    const std::string& password() const { return m_password; }
    /// passwd -S state: "P" (usable password), "L" (locked), "NP" (none).
    std::string password_state() const;

private:
    std::string m_name;
    std::string m_password;
};

} // namespace labctl::test
