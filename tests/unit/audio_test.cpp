// Unit tests for audio/'s pure parts: the capture sink naming contract (which `repair` trusts to
// tell orphans from live sinks), process liveness, and the PulseAudio module-argument parser
// (which must never be confused by other modules' quoted, multi-line arguments).
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "common/error.hpp"

#include "audio/app_match.hpp"
#include "audio/capture_name.hpp"
#include "audio/modargs.hpp"

using namespace pp::audio;

TEST_CASE("capture sink names carry the owner's pid", "[audio][capture_name]") {
    CHECK(capture_sink_name(4242) == "pixelpass_capture_4242");
    CHECK(capture_owner("pixelpass_capture_4242") == 4242);
    CHECK(capture_owner(capture_sink_name(1)) == 1);
    CHECK(capture_owner("pixelpass_capture_2147483647") == 2147483647);

    // The monitor source only where asked for (a loopback's source=).
    CHECK_FALSE(capture_owner("pixelpass_capture_4242.monitor"));
    CHECK(capture_owner("pixelpass_capture_4242.monitor", true) == 4242);

    // Only the canonical form we create.
    for (const char *bad : {"pixelpass_capture_", "pixelpass_capture_0", "pixelpass_capture_042",
                            "pixelpass_capture_-1", "pixelpass_capture_+1", "pixelpass_capture_12x",
                            "pixelpass_capture_12 ", "pixelpass_capture_2147483648",
                            "pixelpass_capture_99999999999", "xpixelpass_capture_1", "pixelpass_capture1",
                            "speaker", "", "pixelpass_capture_.monitor", "pixelpass_capture_1.monitorx"}) {
        INFO(bad);
        CHECK_FALSE(capture_owner(bad, true));
    }
}

TEST_CASE("process liveness: this process lives, a reaped child and a zombie do not", "[audio][liveness]") {
    CHECK(process_alive(::getpid()));
    CHECK_FALSE(process_alive(0));
    CHECK_FALSE(process_alive(-1));

    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    // Until reaped it is a zombie: already dead for our purposes.
    for (int i = 0; i < 200 && process_alive(child); ++i) ::usleep(10000);
    CHECK_FALSE(process_alive(child));
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK_FALSE(process_alive(child));

    // A running child is alive.
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        char c;
        ::close(pipefd[1]);
        (void)!::read(pipefd[0], &c, 1);
        ::_exit(0);
    }
    ::close(pipefd[0]);
    CHECK(process_alive(child));
    ::close(pipefd[1]);
    REQUIRE(::waitpid(child, &status, 0) == child);
}

TEST_CASE("module arguments parse like the server parses them", "[audio][modargs]") {
    SECTION("bare values") {
        auto a = parse_module_args("sink_name=pixelpass_capture_7 rate=48000");
        REQUIRE(a);
        CHECK(a->size() == 2);
        CHECK(a->at("sink_name") == "pixelpass_capture_7");
        CHECK(a->at("rate") == "48000");
    }
    SECTION("empty argument and surrounding whitespace") {
        CHECK(parse_module_args("")->empty());
        CHECK(parse_module_args(" \n\t ")->empty());
        auto a = parse_module_args("\n  source=a.monitor\n\tsink=speaker  \n");
        REQUIRE(a);
        CHECK(a->at("source") == "a.monitor");
        CHECK(a->at("sink") == "speaker");
    }
    SECTION("quoted values hold spaces, newlines, '=' and other keys' names") {
        auto a = parse_module_args(
            "sink_name=decoy sink_properties='device.description=\"A b\"\nsink_name=pixelpass_capture_9\n'"
            " other=\"x y\tz\"");
        REQUIRE(a);
        CHECK(a->at("sink_name") == "decoy");
        CHECK(a->at("sink_properties") == "device.description=\"A b\"\nsink_name=pixelpass_capture_9\n");
        CHECK(a->at("other") == "x y\tz");
    }
    SECTION("backslash escapes the next character and is removed") {
        auto a = parse_module_args(R"(a=x\ y b="q\"r" c='it\'s' d=\\)");
        REQUIRE(a);
        CHECK(a->at("a") == "x y");
        CHECK(a->at("b") == "q\"r");
        CHECK(a->at("c") == "it's");
        CHECK(a->at("d") == "\\");
    }
    SECTION("empty values") {
        auto a = parse_module_args("a= b=\"\" c=");
        REQUIRE(a);
        CHECK(a->at("a").empty());
        CHECK(a->at("b").empty());
        CHECK(a->at("c").empty());
    }
    SECTION("a closing quote ends the word") {
        auto a = parse_module_args("a=\"1\"b=2");
        REQUIRE(a);
        CHECK(a->at("a") == "1");
        CHECK(a->at("b") == "2");
    }
    SECTION("what the server rejects") {
        for (const char *bad : {"=x", "a", "a b=1", "a=1 a=2", "a=\"open", "a='open", "a=x\\",
                                "a=\"x\\\"", "k =v"}) {
            INFO(bad);
            CHECK_FALSE(parse_module_args(bad));
        }
    }
    SECTION("pipewire-pulse's SPA-JSON module blocks are not PulseAudio arguments") {
        // libpipewire-module-* entries list blocks like this one; repair never reads those
        // modules' arguments, and even if it did they would not yield a sink_name.
        auto a = parse_module_args("{\n    nice.level    = -11\n    #rt.prio      = 88\n}");
        CHECK_FALSE(a);
    }
}

TEST_CASE("pipewire-pulse's own reading of module arguments", "[audio][modargs]") {
    auto pw = [](std::string_view s) { return parse_module_args(s, ArgsDialect::pipewire_pulse); };

    // A bare value ends at a space only: the newline and what follows belong to it. The same
    // string is invalid PulseAudio (the second sink_name would be a repeated key).
    const char *decoy = "sink_name=decoy sink_properties=device.description=\"decoy\nsink_name=pixelpass_capture_1\n\"";
    auto a = pw(decoy);
    REQUIRE(a);
    CHECK(a->size() == 2);
    CHECK(a->at("sink_name") == "decoy");
    CHECK(a->at("sink_properties") == "device.description=\"decoy\nsink_name=pixelpass_capture_1\n\"");
    CHECK_FALSE(parse_module_args(decoy, ArgsDialect::pulseaudio));

    a = pw("source=pixelpass_capture_5.monitor  sink=speaker");
    REQUIRE(a);
    CHECK(a->at("source") == "pixelpass_capture_5.monitor");
    CHECK(a->at("sink") == "speaker");

    a = pw("a='x y' b=\"p\\\"q\" c=1 c=2 trailing words");
    REQUIRE(a);
    CHECK(a->at("a") == "x y");
    CHECK(a->at("b") == "p\"q");
    CHECK(a->at("c") == "2");  // the last one wins
    CHECK(a->size() == 3);     // text without '=' ends the list

    CHECK(pw("")->empty());
    CHECK(pw("{\n    nice.level    = -11\n}")->count("{\n    nice.level    "));  // whatever it is, no sink_name
    CHECK_FALSE(pw("{\n    nice.level    = -11\n}")->count("sink_name"));
    CHECK(pw("a=x\\")->at("a") == "x");  // a trailing backslash ends the value

    CHECK(args_dialect_of("PulseAudio (on PipeWire 0.3.65)") == ArgsDialect::pipewire_pulse);
    CHECK(args_dialect_of("pulseaudio") == ArgsDialect::pulseaudio);
}

TEST_CASE("--app matches application.name or the binary, ignoring case, never a part", "[audio][app_match]") {
    const std::vector<std::string> wanted{"Firefox", "mpv"};
    CHECK(app_match({{"application.name", "firefox"}}, wanted) == "Firefox");
    CHECK(app_match({{"application.name", "FIREFOX"}}, wanted) == "Firefox");
    CHECK(app_match({{"application.name", "Music"}, {"application.process.binary", "MPV"}}, wanted) == "mpv");
    CHECK(app_match({{"application.process.binary", "mpv"}}, wanted) == "mpv");
    // Neither a prefix, a substring nor another key widens the share.
    CHECK(app_match({{"application.name", "fire"}}, wanted).empty());
    CHECK(app_match({{"application.name", "firefox-esr"}}, wanted).empty());
    CHECK(app_match({{"node.name", "firefox"}}, wanted).empty());
    CHECK(app_match({{"application.name", ""}}, wanted).empty());
    CHECK(app_match({}, wanted).empty());
    CHECK(app_match({{"application.name", "firefox"}}, {}).empty());

    CHECK_NOTHROW(check_app_names(wanted));
    for (const char *bad : {"", " ", "\t"}) {
        try {
            check_app_names({"mpv", bad});
            FAIL("an empty --app name was accepted");
        } catch (const pp::Error &e) {
            CHECK(e.code() == PP_ERR_INVALID_ARGUMENT);
        }
    }
}
