// Catch2 main for the task API integration tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
