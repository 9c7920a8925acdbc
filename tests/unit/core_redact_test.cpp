#include <catch2/catch.hpp>

#include <labctl/core/redact.hpp>

using labctl::redact;

TEST_CASE("private key blocks are redacted", "[core][redact]") {
    const std::string text = "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
                             "-----END OPENSSH PRIVATE KEY-----\ndone";
    const auto out = redact(text);
    CHECK(out.find("b3BlbnNzaC1rZXktdjEAAAA") == std::string::npos);
    CHECK(out.find("done") != std::string::npos);
}

TEST_CASE("passwords, tokens and bearer credentials are redacted", "[core][redact]") {
    CHECK(redact("password=hunter2 next") == "password=<redacted> next");
    CHECK(redact("token: abc123") == "token: <redacted>");
    CHECK(redact("Authorization: Bearer eyJhbGciOi") == "Authorization: Bearer <redacted>");
    CHECK(redact("GF_SECURITY_ADMIN_PASSWORD=s3cret") == "GF_SECURITY_ADMIN_PASSWORD=<redacted>");
}

TEST_CASE("ordinary text passes through unchanged", "[core][redact]") {
    CHECK(redact("provisioned lab1 at 127.0.0.1:2222") == "provisioned lab1 at 127.0.0.1:2222");
}
