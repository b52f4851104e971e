// skip.hpp: how a Catch2 test that cannot run (a component is missing) says so.
//
// Outside CI it is a skip: a warning, and a line in PP_SKIP_LOG for the closing summary
// (scripts/test-summary.py). With CI=true a skip would hide a failure, so it fails instead,
// naming what is missing. Use it at the top of a TEST_CASE: it returns from the test.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

namespace pp::test {

inline bool in_ci() {
    const char *ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

inline void log_skip(const std::string &what) {
    if (const char *log = std::getenv("PP_SKIP_LOG"))
        std::ofstream(log, std::ios::app) << Catch::getResultCapture().getCurrentTestName() << ": " << what << "\n";
}

} // namespace pp::test

#define PP_SKIP_TEST(what)                                                                   \
    do {                                                                                     \
        if (::pp::test::in_ci()) FAIL("CI=true, and this test cannot run: " << (what));      \
        ::pp::test::log_skip(what);                                                          \
        WARN("skipped: " << (what));                                                         \
        return;                                                                              \
    } while (0)
