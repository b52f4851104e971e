// config: parse errors with locations, unknown-key warnings, comment-preserving edits, atomic
// writes that never replace a broken file, and the default viewer cap.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "config/config.hpp"

namespace fs = std::filesystem;
namespace cfg = pp::config;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/pp-config-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const fs::path &p, const std::string &text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

} // namespace

TEST_CASE("config path follows XDG_CONFIG_HOME, else HOME") {
    std::string saved_xdg = std::getenv("XDG_CONFIG_HOME") ? std::getenv("XDG_CONFIG_HOME") : "";
    setenv("XDG_CONFIG_HOME", "/x/conf", 1);
    CHECK(cfg::default_path() == "/x/conf/pixelpass/config.toml");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", "/home/someone", 1);
    CHECK(cfg::default_path() == "/home/someone/.config/pixelpass/config.toml");
    if (!saved_xdg.empty()) setenv("XDG_CONFIG_HOME", saved_xdg.c_str(), 1);
}

TEST_CASE("a missing file is the first-run state") {
    TempDir dir;
    auto c = cfg::load((dir.path / "config.toml").string());
    CHECK_FALSE(c.exists);
    CHECK(c.bandwidth.status == "unmeasured");
    CHECK(cfg::default_max_viewers(c, 0) == 2);
}

TEST_CASE("values are read and checked") {
    auto c = cfg::parse("[host]\nbitrate_kbps = 3000\nmax_viewers = 4\n[viewer]\nplayer = \"vlc\"\n"
                        "[network]\nstun_servers = [\"127.0.0.1:9\"]\nrelay = \"turn:r.example:3478\"\n"
                        "[bandwidth]\nstatus = \"measured\"\nupstream_mbps = 20.5\n",
                        "c.toml");
    CHECK(*c.bitrate_kbps == 3000);
    CHECK(*c.max_viewers == 4);
    CHECK(c.player == "vlc");
    CHECK(c.stun_servers->at(0) == "127.0.0.1:9");
    CHECK(c.relay == "turn:r.example:3478");
    CHECK(c.bandwidth.upstream_mbps == Approx(20.5));
    CHECK(c.warnings.empty());

    try {
        cfg::parse("[host]\n\nmax_viewers = 0\n", "c.toml");
        FAIL("no error");
    } catch (const pp::Error &e) {
        CHECK(e.code() == PP_ERR_CONFIG);
        CHECK_THAT(e.what(), Catch::Contains("c.toml:3:15") && Catch::Contains("max_viewers"));
    }
    CHECK_THROWS_WITH(cfg::parse("[viewer]\nplayer = \"totem\"\n", "c.toml"), Catch::Contains("one of: auto, mpv, vlc"));
}

TEST_CASE("a float where a whole number belongs is refused, however large") {
    // 5.6e25 does not fit int64_t: converting it was undefined behaviour (UBSan, config_edit
    // fuzzer). It must be the ordinary "whole number" error.
    for (const char *value : {"5555532092777777777777777774.0", "3000.0", "-1e300", "nan", "inf"}) {
        INFO(value);
        CHECK_THROWS_WITH(cfg::parse(std::string("[host]\nbitrate_kbps = ") + value + "\n", "c.toml"),
                          Catch::Contains("bitrate_kbps") && Catch::Contains("must be a whole number"));
    }
}

TEST_CASE("[network] congestion_control is read, checked and applied") {
    auto c = cfg::parse("[network]\ncongestion_control = \"cubic\"\n", "c.toml");
    CHECK(c.congestion_control == "cubic");
    CHECK(cfg::to_json(c)["network"]["congestion_control"] == "cubic");
    pp::HostConfig host;
    cfg::apply_host_defaults(host, c);
    CHECK(host.congestion_control == "cubic");
    pp::HostConfig chosen;
    chosen.congestion_control = "bbr";  // the command line wins over the file
    cfg::apply_host_defaults(chosen, c);
    CHECK(chosen.congestion_control == "bbr");
    pp::HostConfig none;
    cfg::apply_host_defaults(none, cfg::parse("", "c.toml"));
    CHECK(none.congestion_control.empty());  // "auto": the library's default
    CHECK_THROWS_WITH(cfg::parse("[network]\ncongestion_control = \"vegas\"\n", "c.toml"),
                      Catch::Contains("bbr2"));
    CHECK_THAT(cfg::edit("", "network.congestion_control", "bbr2"), Catch::Contains("congestion_control = \"bbr2\""));
}

TEST_CASE("broken TOML names line and column") {
    try {
        cfg::parse("# ok\n[bandwidth]\nstatus = \"measured\n", "/p/config.toml");
        FAIL("no error");
    } catch (const pp::Error &e) {
        CHECK(e.code() == PP_ERR_CONFIG);
        CHECK_THAT(e.what(), Catch::StartsWith("/p/config.toml:3:"));
    }
}

TEST_CASE("unknown keys are warnings with their location") {
    auto c = cfg::parse("[host]\nmax_viewer = 3\n[colours]\nx = 1\n", "c.toml");
    REQUIRE(c.warnings.size() == 2);
    CHECK_THAT(c.warnings[0], Catch::Contains("c.toml:2:") && Catch::Contains("host.max_viewer"));
    CHECK_THAT(c.warnings[1], Catch::Contains("colours.x"));
}

TEST_CASE("edits change only the value and keep comments") {
    std::string text = "# my settings\n[bandwidth] # measured on the train\n"
                       "status = \"skipped\"   # do not ask again\n\n# player\n[host]\nplayer = \"mpv\"\n";
    std::string out = cfg::edit(text, "bandwidth.status", "measured");
    CHECK(out == "# my settings\n[bandwidth] # measured on the train\n"
                 "status = \"measured\"   # do not ask again\n\n# player\n[host]\nplayer = \"mpv\"\n");
    out = cfg::edit(out, "bandwidth.upstream_mbps", 12.25);
    CHECK(out == "# my settings\n[bandwidth] # measured on the train\n"
                 "status = \"measured\"   # do not ask again\nupstream_mbps = 12.25\n\n# player\n[host]\nplayer = \"mpv\"\n");
    out = cfg::edit(out, "network.stun_servers", nlohmann::json::array({"a:1", "b:2"}));
    CHECK_THAT(out, Catch::EndsWith("player = \"mpv\"\n\n[network]\nstun_servers = [\"a:1\", \"b:2\"]\n"));
    auto c = cfg::parse(out, "c.toml");
    CHECK(c.bandwidth.status == "measured");
    CHECK(c.stun_servers->size() == 2);

    CHECK_THROWS_AS(cfg::edit(out, "host.colour", "red"), pp::Error);
    CHECK_THROWS_WITH(cfg::edit(out, "host.max_viewers", 0), Catch::Contains("from 1 to 1000"));
    CHECK_THROWS_WITH(cfg::edit(out, "host.max_viewers", "3"), Catch::Contains("whole number"));
}

TEST_CASE("set creates the file, edits it atomically, and never replaces a broken one") {
    TempDir dir;
    fs::path file = dir.path / "deep" / "pixelpass" / "config.toml";
    cfg::set({{"bandwidth.status", "skipped"}}, file.string());
    REQUIRE(fs::exists(file));
    CHECK(cfg::load(file.string()).bandwidth.status == "skipped");

    spit(file, "# keep me\n[host]\nmax_viewers = 3 # three friends\n");
    ::chmod(file.c_str(), 0600);
    cfg::set({{"host.max_viewers", 5}, {"bandwidth.status", "measured"}}, file.string());
    CHECK(slurp(file) == "# keep me\n[host]\nmax_viewers = 5 # three friends\n\n[bandwidth]\nstatus = \"measured\"\n");
    struct stat st{};
    ::stat(file.c_str(), &st);
    CHECK((st.st_mode & 0777) == 0600);
    for (const auto &entry : fs::directory_iterator(file.parent_path()))  // no temp file left
        CHECK(entry.path().filename() == "config.toml");

    std::string broken = "[host]\nmax_viewers = = 3\n";
    spit(file, broken);
    CHECK_THROWS_WITH(cfg::set({{"bandwidth.status", "skipped"}}, file.string()), Catch::Contains(":2:"));
    CHECK(slurp(file) == broken);
    CHECK_THROWS_AS(cfg::load(file.string()), pp::Error);
}

TEST_CASE("the default viewer cap comes from the measured upstream") {
    cfg::Config c;
    CHECK(cfg::default_max_viewers(c, 0) == 2);
    c.bandwidth.status = "measured";
    c.bandwidth.upstream_mbps = 20;
    CHECK(cfg::default_max_viewers(c, 0) == 3);      // 20 / 6.128
    CHECK(cfg::default_max_viewers(c, 1872) == 10);  // 20 / 2.0
    c.bandwidth.upstream_mbps = 1;
    CHECK(cfg::default_max_viewers(c, 0) == 1);  // never 0
    c.bandwidth.status = "failed";
    CHECK(cfg::default_max_viewers(c, 0) == 2);
    c.max_viewers = 7;
    CHECK(cfg::default_max_viewers(c, 0) == 7);

    pp::HostConfig host;
    cfg::Config from_file;
    from_file.bitrate_kbps = 2000;
    from_file.encoder = "x264";
    from_file.stun_servers = std::vector<std::string>{};
    cfg::apply_host_defaults(host, from_file);
    CHECK(host.bitrate_kbps == 2000);
    CHECK(host.max_viewers == 2);
    CHECK(host.encoder == "x264");
    CHECK(host.no_stun);
    pp::HostConfig explicit_host;
    explicit_host.max_viewers = 9;
    explicit_host.encoder = "openh264";
    cfg::apply_host_defaults(explicit_host, from_file);
    CHECK(explicit_host.max_viewers == 9);
    CHECK(explicit_host.encoder == "openh264");
}

TEST_CASE("[network] dht and dht_bootstrap reach host and viewer") {
    auto c = cfg::parse("[network]\ndht_bootstrap = [\"10.0.0.1:4222\", \"dht.example:4000\"]\n", "c.toml");
    REQUIRE(c.dht_bootstrap);
    CHECK(*c.dht_bootstrap == std::vector<std::string>{"10.0.0.1:4222", "dht.example:4000"});
    CHECK(c.dht);
    pp::HostConfig host;
    cfg::apply_host_defaults(host, c);
    CHECK(host.dht_bootstrap == *c.dht_bootstrap);
    CHECK_FALSE(host.no_dht);
    pp::ViewerConfig viewer;
    viewer.dht_bootstrap = {"192.0.2.9:1"};  // the command line wins
    cfg::apply_viewer_defaults(viewer, c);
    CHECK(viewer.dht_bootstrap == std::vector<std::string>{"192.0.2.9:1"});

    auto off = cfg::parse("[network]\ndht = \"off\"\nstun_servers = [\"stun.example:3478\"]\n", "c.toml");
    CHECK_FALSE(off.dht);
    pp::ViewerConfig v2;
    cfg::apply_viewer_defaults(v2, off);
    CHECK(v2.no_dht);
    CHECK(v2.stun_servers == std::vector<std::string>{"stun.example:3478"});
    CHECK(cfg::to_json(off)["network"]["dht"] == "off");
    auto empty = cfg::parse("[network]\ndht_bootstrap = []\n", "c.toml");
    pp::HostConfig h2;
    cfg::apply_host_defaults(h2, empty);
    CHECK(h2.no_dht);  // an empty list means no DHT, not the public default
    CHECK_THROWS_AS(cfg::parse("[network]\ndht = \"maybe\"\n", "c.toml"), pp::Error);
}
