// The demo and the host's media wiring: a headless demo run really decodes the test source over
// QUIC on loopback and reports it; the host built on --source test exposes the encoder and the
// pipeline state in its statistics; bad encoders fail at start, before anything listens.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "demo/demo.hpp"
#include "media/media.hpp"

using namespace pp;

namespace {

// Restores an environment variable on scope exit.
struct EnvGuard {
    std::string name;
    std::optional<std::string> old;
    EnvGuard(std::string n, const char *value) : name(std::move(n)) {
        if (const char *v = std::getenv(name.c_str())) old = v;
        if (value)
            setenv(name.c_str(), value, 1);
        else
            unsetenv(name.c_str());
    }
    ~EnvGuard() {
        if (old)
            setenv(name.c_str(), old->c_str(), 1);
        else
            unsetenv(name.c_str());
    }
};

} // namespace

TEST_CASE("a display is DISPLAY or WAYLAND_DISPLAY", "[demo]") {
    EnvGuard x("DISPLAY", nullptr), w("WAYLAND_DISPLAY", nullptr);
    CHECK_FALSE(demo::have_display());
    {
        EnvGuard set("WAYLAND_DISPLAY", "wayland-0");
        CHECK(demo::have_display());
    }
    EnvGuard empty("DISPLAY", "");
    CHECK_FALSE(demo::have_display());
}

TEST_CASE("a headless demo decodes the test source over QUIC and reports it", "[demo][media]") {
    if (!media::available()) return;  // covered by "without media support" in media_test
    demo::Options o;
    o.headless = true;
    o.seconds = 2;
    o.encoder = "x264";
    std::vector<Event> errors;
    auto report = demo::run(o, [&](const Event &e) {
        if (e.type == PP_EVENT_ERROR) errors.push_back(e);
    });
    INFO(report.dump(2));
    CHECK(errors.empty());
    CHECK(report["mode"] == "headless");
    CHECK(report["ok"] == true);
    CHECK(report["width"] == 1280);
    CHECK(report["height"] == 720);
    CHECK(report["frames_decoded"].get<int>() >= 30);  // 2 s at 30 fps, with room for a loaded box
    CHECK(report["distinct_pictures"].get<int>() > 10);
    CHECK(report["audio_samples"].get<int>() > 0);
    CHECK(report["bitrate_kbps"].get<double>() > 100);
    CHECK(report["path"] == "direct");
    CHECK(report["encoder"] == "x264enc");
    CHECK(report["problems"].empty());
    CHECK(report["time_to_first_frame_ms"].get<double>() > 0);
    REQUIRE(report["latency_ms"].is_object());
    CHECK(report["latency_ms"]["median"].get<double>() > 0);
    CHECK(report["latency_ms"]["median"].get<double>() < 1000);
    CHECK(report["host"]["viewers"].size() == 1);
    CHECK(report["url"].get<std::string>().rfind("http://127.0.0.1:", 0) == 0);
}

TEST_CASE("without audio the demo decodes no audio", "[demo][media]") {
    if (!media::available()) return;  // covered by "without media support" in media_test
    demo::Options o;
    o.headless = true;
    o.seconds = 1;
    o.audio = false;
    o.max_height = 360;
    auto report = demo::run(o, {});
    CHECK(report["audio_samples"] == 0);
    CHECK(report["height"] == 360);
    CHECK(report["width"] == 640);
}

TEST_CASE("the demo refuses bad input and missing encoders before streaming", "[demo][media]") {
    if (!media::available()) return;  // covered by "without media support" in media_test
    demo::Options o;
    o.headless = true;
    o.seconds = -1;
    CHECK_THROWS_AS(demo::run(o, {}), Error);
    o.seconds = 1;
    o.encoder = "h265";
    try {
        demo::run(o, {});
        FAIL("an unknown encoder was accepted");
    } catch (const Error &e) {
        CHECK(e.code() == PP_ERR_INVALID_ARGUMENT);
    }
    o.encoder = "nvenc";  // no NVIDIA GPU in CI: the plugin or the device is missing
    try {
        demo::run(o, {});
        SUCCEED("nvenc is usable here");
    } catch (const Error &e) {
        CHECK((e.code() == PP_ERR_MISSING_PLUGIN || e.code() == PP_ERR_MEDIA));
        CHECK(std::string(e.what()).find("nvh264enc") != std::string::npos);
    }
}

TEST_CASE("a host on the test source reports encoder and pipeline state; idle it captures nothing", "[demo][media][host]") {
    if (!media::available()) return;  // covered by "without media support" in media_test
    HostConfig c;
    c.source = "test";
    c.bind_address = "127.0.0.1";
    c.encoder = "x264";
    Host host(c, {});
    host.start();
    auto s = nlohmann::json::parse(host.stats_json());
    CHECK(s["encoder"] == "x264enc");
    CHECK(s["pipeline_state"] == "NULL");
    CHECK(s["media"]["running"] == false);
    CHECK(s["media"]["starts"] == 0);
    CHECK(s["stream"]["codec"] == "h264");
    CHECK(s["stream"]["source"] == "test");
}

TEST_CASE("run_for_buffer keeps a report that did not fit for the next call", "[demo][media]") {
    if (!media::available()) return;  // covered by "without media support" in media_test
    demo::Options o;
    o.headless = true;
    o.seconds = 1;
    std::string first = demo::run_for_buffer(o, {}, 0);
    std::string again = demo::run_for_buffer(o, {}, first.size() + 1);
    CHECK(first == again);  // the same run, not a second one
    CHECK(nlohmann::json::parse(first)["mode"] == "headless");
}
