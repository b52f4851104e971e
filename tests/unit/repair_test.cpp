// Unit tests for repair's pure parts — WirePlumber's restore-stream state file (read the targets,
// drop chosen ones keeping every other byte, replace atomically) — and the no-server outcome.
// The scan-and-remove itself runs against a real PipeWire rig in tests/integration/.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "repair/repair.hpp"
#include "repair/restore_state.hpp"

using namespace pp::repair;

namespace {

// As WirePlumber 0.4 writes it (GKeyFile): escaped spaces in keys, other groups, a comment.
const std::string kState =
    "# written by hand\n"
    "[other-group]\n"
    "Output/Audio:application.name:Evil:target=pixelpass_capture_1\n"
    "\n"
    "[restore-stream]\n"
    "Audio/Sink:node.name:pixelpass_capture_4242:volume=1.0\n"
    "Output/Audio:application.name:ToneApp:target=pixelpass_capture_4242\n"
    "Output/Audio:application.name:ToneApp:volume=0.5\n"
    "Output/Audio:media.name:loopback-17623-12\\soutput:target=pixelpass_capture_77\n"
    "Output/Audio:application.name:Firefox:target=speaker\n"
    "Input/Audio:application.name:Rec\\sorder\\e1:target = pixelpass_capture_9\\s\n"
    "Output/Audio:application.name:a\\\\b\\oc\\c:target=x\n"
    "not a key-value line\n";

struct TempDir {
    std::string path;
    TempDir() {
        std::string t = "/tmp/pp-repair-test.XXXXXX";
        REQUIRE(::mkdtemp(t.data()));
        path = t;
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    std::set<std::string> entries() const {
        std::set<std::string> out;
        if (DIR *d = ::opendir(path.c_str())) {
            while (dirent *e = ::readdir(d))
                if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.insert(e->d_name);
            ::closedir(d);
        }
        return out;
    }
};

void write(const std::string &path, const std::string &text) {
    std::ofstream(path, std::ios::binary) << text;
}

// Sets (or, with nullptr, unsets) an environment variable for one scope.
struct EnvVar {
    std::string name;
    std::optional<std::string> old;
    EnvVar(const char *n, const char *value) : name(n) {
        if (const char *o = std::getenv(n)) old = o;
        value ? ::setenv(n, value, 1) : ::unsetenv(n);
    }
    ~EnvVar() { old ? ::setenv(name.c_str(), old->c_str(), 1) : ::unsetenv(name.c_str()); }
};

} // namespace

TEST_CASE("escapes: WirePlumber's key escapes and GKeyFile's value escapes", "[repair][state]") {
    CHECK(unescape_state_key("a\\sb\\ec\\od\\ce\\\\f") == "a b=c[d]e\\f");
    CHECK(unescape_state_key("plain:key") == "plain:key");
    CHECK(unescape_state_key("odd\\x") == "odd\\x");
    CHECK(unescape_state_key("end\\") == "end\\");
    CHECK(unescape_keyfile_value("\\sa\\tb\\nc\\rd\\\\e") == " a\tb\nc\rd\\e");
    CHECK(unescape_keyfile_value("pixelpass_capture_9\\s") == "pixelpass_capture_9 ");
}

TEST_CASE("restore targets are read from the restore-stream group only", "[repair][state]") {
    auto targets = restore_targets(kState);
    REQUIRE(targets.size() == 5);
    CHECK(targets[0].key_base == "Output/Audio:application.name:ToneApp");
    CHECK(targets[0].target == "pixelpass_capture_4242");
    CHECK(targets[1].key_base == "Output/Audio:media.name:loopback-17623-12 output");
    CHECK(targets[1].target == "pixelpass_capture_77");
    CHECK(targets[2].target == "speaker");
    // Spaces around '=' are not part of key or value; an escaped trailing space is.
    CHECK(targets[3].key_base == "Input/Audio:application.name:Rec order=1");
    CHECK(targets[3].target == "pixelpass_capture_9 ");
    CHECK(targets[4].key_base == "Output/Audio:application.name:a\\b[c]");
    CHECK(restore_targets("").empty());
    CHECK(restore_targets("[restore-stream]\n:target=x\n").empty());
}

TEST_CASE("dropping targets keeps every other byte", "[repair][state]") {
    std::string out = without_targets(kState, {"Output/Audio:application.name:ToneApp",
                                               "Output/Audio:media.name:loopback-17623-12 output"});
    std::string expected = kState;
    for (const char *line : {"Output/Audio:application.name:ToneApp:target=pixelpass_capture_4242\n",
                             "Output/Audio:media.name:loopback-17623-12\\soutput:target=pixelpass_capture_77\n"}) {
        auto at = expected.find(line);
        REQUIRE(at != std::string::npos);
        expected.erase(at, std::string(line).size());
    }
    CHECK(out == expected);
    // The same key in another group is not WirePlumber's restore-stream state: kept.
    CHECK(without_targets(kState, {"Output/Audio:application.name:Evil"}) == kState);
    CHECK(without_targets(kState, {}) == kState);
    // No trailing newline, CRLF line ends.
    CHECK(without_targets("[restore-stream]\r\nA:b:c:target=pixelpass_capture_5", {"A:b:c"}) == "[restore-stream]\r\n");
    CHECK(without_targets("[restore-stream]\r\nA:b:c:target=x\r\nA:b:c:volume=1\r\n", {"A:b:c"}) ==
          "[restore-stream]\r\nA:b:c:volume=1\r\n");
}

TEST_CASE("key bases name the stream identity WirePlumber matches on", "[repair][state]") {
    auto k = parse_key_base("Output/Audio:application.name:Fire:fox");
    REQUIRE(k);
    CHECK(k->media_class == "Stream/Output/Audio");
    CHECK(k->property == "application.name");
    CHECK(k->value == "Fire:fox");
    k = parse_key_base("Input/Audio:media.role:Communication");
    REQUIRE(k);
    CHECK(k->media_class == "Stream/Input/Audio");
    k = parse_key_base("Audio/Sink:node.name:speaker");
    REQUIRE(k);
    CHECK(k->media_class == "Audio/Sink");
    CHECK(k->value == "speaker");
    CHECK(parse_key_base("Output/Audio:application.name:")->value.empty());
    for (const char *bad : {"", "Output/Audio", "Output/Audio:application.name", ":a:b", "a::b"}) {
        INFO(bad);
        CHECK_FALSE(parse_key_base(bad));
    }
}

TEST_CASE("the state file lives where WirePlumber 0.4 keeps it", "[repair][state]") {
    {
        EnvVar s("XDG_STATE_HOME", "/x/state"), h("HOME", "/home/u");
        CHECK(restore_stream_path() == "/x/state/wireplumber/restore-stream");
    }
    {
        EnvVar s("XDG_STATE_HOME", nullptr), h("HOME", "/home/u");
        CHECK(restore_stream_path() == "/home/u/.local/state/wireplumber/restore-stream");
    }
    {
        EnvVar s("XDG_STATE_HOME", ""), h("HOME", nullptr);
        CHECK(restore_stream_path().empty());
    }
}

TEST_CASE("the state file is replaced atomically, or not at all", "[repair][state]") {
    TempDir dir;
    std::string path = dir.path + "/restore-stream";

    SECTION("success: new contents, original mode, no temporary left") {
        write(path, kState);
        REQUIRE(::chmod(path.c_str(), 0640) == 0);
        struct stat before {};
        REQUIRE(::stat(path.c_str(), &before) == 0);
        replace_file_atomically(path, "[restore-stream]\n");
        CHECK(read_file(path) == std::string("[restore-stream]\n"));
        struct stat after {};
        REQUIRE(::stat(path.c_str(), &after) == 0);
        CHECK((after.st_mode & 07777) == 0640);
        CHECK(after.st_ino != before.st_ino);  // a new file renamed over, never rewritten in place
        CHECK(dir.entries() == std::set<std::string>{"restore-stream"});
    }
    SECTION("failure: the original is untouched and the temporary removed") {
        // Renaming a file over a directory fails after the temporary was written.
        REQUIRE(::mkdir(path.c_str(), 0700) == 0);
        write(path + "/keep", "x");
        try {
            replace_file_atomically(path, "new");
            FAIL("replace_file_atomically succeeded over a directory");
        } catch (const pp::Error &e) {
            CHECK(e.code() == PP_ERR_IO);
            CHECK(std::string(e.what()).find(path) != std::string::npos);
        }
        CHECK(dir.entries() == std::set<std::string>{"restore-stream"});
        CHECK(read_file(path + "/keep") == std::string("x"));
    }
    SECTION("a missing file is not created") {
        CHECK_THROWS_AS(replace_file_atomically(path, "new"), pp::Error);
        CHECK(dir.entries().empty());
        CHECK_FALSE(read_file(path));
    }
}

TEST_CASE("no audio server reachable: a clear PP_ERR_IO, not a clean report", "[repair][noserver]") {
    TempDir dir;  // an empty runtime dir: no pipewire-0, no pulse/native
    EnvVar rt("XDG_RUNTIME_DIR", dir.path.c_str()), ps("PULSE_SERVER", nullptr), pr("PIPEWIRE_REMOTE", nullptr),
        disp("DISPLAY", nullptr);
    for (bool dry_run : {true, false}) {
        try {
            run(dry_run);
            FAIL("repair reported success without any audio server");
        } catch (const pp::Error &e) {
            std::string what = e.what();
            INFO(what);
            if (e.code() == PP_ERR_UNSUPPORTED) {
                CHECK(what.find("built without PipeWire support") != std::string::npos);
            } else {
                CHECK(e.code() == PP_ERR_IO);
                CHECK(what.find("no PipeWire/PulseAudio server reachable") != std::string::npos);
            }
        }
    }
}
