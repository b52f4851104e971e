// publish: the URL reading shared by --publish, [host] publish and the C API — schemes, ports,
// SRT modes, where the stream key goes, and that labels never show a key or passphrase.
#include <catch2/catch.hpp>

#include <string>

#include "common/error.hpp"
#include "config/config.hpp"
#include "publish/target.hpp"

namespace pub = pp::publish;

namespace {

std::string error_of(const std::string &url, const std::string &key = "") {
    try {
        pub::parse_target(url, key);
    } catch (const pp::Error &e) {
        CHECK(e.code() == PP_ERR_INVALID_ARGUMENT);
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("rtmp URLs keep their stream name but the label masks it") {
    auto t = pub::parse_target("rtmp://127.0.0.1:1935/live/s3cret");
    CHECK(t.protocol == pub::Protocol::rtmp);
    CHECK(t.url == "rtmp://127.0.0.1:1935/live/s3cret");
    CHECK(t.label == "rtmp://127.0.0.1:1935/live/***");
    CHECK(t.host == "127.0.0.1");
    CHECK(t.port == 1935);
    CHECK_FALSE(t.uses_key);
    auto s = pub::parse_target("RTMPS://live.example.org/app/key?x=1");
    CHECK(s.protocol == pub::Protocol::rtmps);
    CHECK(s.url == "rtmps://live.example.org/app/key?x=1");
    CHECK(s.label.find("key") == std::string::npos);
    auto v6 = pub::parse_target("rtmp://[::1]:1935/live/x");
    CHECK(v6.host == "::1");
    CHECK(v6.url == "rtmp://[::1]:1935/live/x");
}

TEST_CASE("the key file completes an rtmp URL that names only its application") {
    auto t = pub::parse_target("rtmp://a.rtmp.example.com/live2/", "abcd-1234");
    CHECK(t.url == "rtmp://a.rtmp.example.com/live2/abcd-1234");
    CHECK(t.uses_key);
    CHECK(t.label.find("abcd") == std::string::npos);
    // A URL with its own stream name keeps it; a key nobody needs is an error.
    CHECK_THROWS_WITH(pub::parse_targets({"rtmp://h/live/own"}, "k"), Catch::Contains("--publish-key-file"));
    auto both = pub::parse_targets({"rtmp://h/live/own", "rtmp://h2/app"}, "k");
    REQUIRE(both.size() == 2);
    CHECK(both[0].url == "rtmp://h/live/own");
    CHECK(both[1].url == "rtmp://h2/app/k");
    CHECK(error_of("rtmp://h/live", "has space").find("stream key") != std::string::npos);
}

TEST_CASE("srt URLs: caller by default, listener from the query, passphrase masked") {
    auto t = pub::parse_target("srt://127.0.0.1:9000");
    CHECK(t.protocol == pub::Protocol::srt);
    CHECK(t.srt_mode == "caller");
    CHECK(t.url == "srt://127.0.0.1:9000?mode=caller");
    auto l = pub::parse_target("srt://:9000?mode=listener&latency=200&passphrase=verysecret12");
    CHECK(l.srt_mode == "listener");
    CHECK(l.url == "srt://:9000?mode=listener&latency=200&passphrase=verysecret12");
    CHECK(l.label == "srt://:9000?mode=listener&latency=200&passphrase=***");
    CHECK(error_of("srt://h:9000?mode=rendezvous").find("mode=caller or mode=listener") != std::string::npos);
    CHECK(error_of("srt://h").find("needs a port") != std::string::npos);
    CHECK(error_of("srt://:9000").find("caller needs a server host") != std::string::npos);
}

TEST_CASE("bad publish URLs are one clear line that never shows the key") {
    CHECK(error_of("http://h/live/x").find("unsupported scheme 'http' (use rtmp://, rtmps:// or srt://)") !=
          std::string::npos);
    CHECK(error_of("h/live/x").find("no scheme") != std::string::npos);
    CHECK(error_of("").find("empty") != std::string::npos);
    CHECK(error_of("rtmp://h:0/live/x").find("1 to 65535") != std::string::npos);
    CHECK(error_of("rtmp://h:99999/live/x").find("1 to 65535") != std::string::npos);
    CHECK(error_of("rtmp://h:12ab/live/x").find("not a number") != std::string::npos);
    CHECK(error_of("rtmp:///live/x").find("no server host") != std::string::npos);
    CHECK(error_of("rtmp://h").find("no application path") != std::string::npos);
    CHECK(error_of("rtmp://user:pw@h/live/x").find("not supported") != std::string::npos);
    CHECK(error_of("rtmp://h/live/x y").find("spaces") != std::string::npos);
    std::string no_key = error_of("rtmp://h/live");
    CHECK(no_key.find("--publish-key-file") != std::string::npos);
    CHECK(error_of("ftp://h/live/topsecret").find("topsecret") == std::string::npos);
    CHECK_THROWS_WITH(pub::parse_targets({"rtmp://h/a/b", "rtmp://h/a/b"}, ""), Catch::Contains("given twice"));
}

TEST_CASE("[host] publish in the config file feeds the host unless --publish is given") {
    auto c = pp::config::parse("[host]\npublish = [\"rtmp://127.0.0.1/live/k\", \"srt://h:1\"]\n", "t.toml");
    REQUIRE(c.publish.size() == 2);
    CHECK(c.warnings.empty());
    pp::HostConfig h;
    pp::config::apply_host_defaults(h, c);
    CHECK(h.publish == c.publish);
    pp::HostConfig given;
    given.publish = {"srt://other:2"};
    pp::config::apply_host_defaults(given, c);
    CHECK(given.publish == std::vector<std::string>{"srt://other:2"});
    auto j = pp::config::to_json(c);
    CHECK(j["host"]["publish"][0] == "rtmp://127.0.0.1/live/***");
    CHECK_THROWS_WITH(pp::config::parse("[host]\npublish = \"rtmp://x/a/b\"\n", "t.toml"), Catch::Contains("t.toml:2"));
}

TEST_CASE("a URL that parses also parses again written out in full (publish_url fuzz finding)") {
    // 2,040 characters of SRT query are within the limit; with ?mode=caller added they were not,
    // so the target's own URL (what the config and stats carry) no longer parsed.
    std::string url = "srt://127.0.0.1:9000?" + std::string(2048 - 21, 'a');
    REQUIRE(url.size() == 2048);
    try {
        auto t = pp::publish::parse_target(url);
        CHECK_NOTHROW(pp::publish::parse_target(t.url));
    } catch (const pp::Error &e) {
        CHECK(std::string(e.what()).find("once written out in full") != std::string::npos);
    }
    std::string rtmp = "rtmp://127.0.0.1/" + std::string(2048 - 17, 'b');
    try {
        auto t = pp::publish::parse_target(rtmp, std::string(100, 'k'));
        CHECK_NOTHROW(pp::publish::parse_target(t.url));
    } catch (const pp::Error &e) {
        CHECK(std::string(e.what()).find("once written out in full") != std::string::npos);
    }
}
