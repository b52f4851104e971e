#include "repair/restore_state.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.hpp"

namespace pp::repair {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// One line of a key file as GKeyFile classifies it.
struct Line {
    std::string_view raw;  // with its '\n', so the file can be rebuilt byte for byte
    enum { kOther, kGroup, kEntry } kind = kOther;
    std::string_view group;  // kGroup
    std::string_view key;    // kEntry: still escaped
    std::string_view value;  // kEntry: still escaped
};

std::vector<Line> split(std::string_view text) {
    std::vector<Line> lines;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        size_t next = end == std::string_view::npos ? text.size() : end + 1;
        Line l;
        l.raw = text.substr(pos, next - pos);
        std::string_view body = text.substr(pos, (end == std::string_view::npos ? text.size() : end) - pos);
        if (!body.empty() && body.back() == '\r') body.remove_suffix(1);
        while (!body.empty() && is_space(body.front())) body.remove_prefix(1);
        if (body.empty() || body.front() == '#') {
            // comment or blank
        } else if (body.front() == '[') {
            size_t close = body.rfind(']');
            if (close != std::string_view::npos && close > 0) {
                l.kind = Line::kGroup;
                l.group = body.substr(1, close - 1);
            }
        } else if (size_t eq = body.find('='); eq != std::string_view::npos) {
            std::string_view key = body.substr(0, eq), value = body.substr(eq + 1);
            while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
            while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
            l.kind = Line::kEntry;
            l.key = key;
            l.value = value;
        }
        lines.push_back(l);
        pos = next;
    }
    return lines;
}

// Calls f(line, key_base, target) for every target entry of the restore-stream group.
template <typename F>
void for_each_target(const std::vector<Line> &lines, F &&f) {
    bool in_group = false;
    for (const auto &l : lines) {
        if (l.kind == Line::kGroup) in_group = l.group == kRestoreGroup;
        if (!in_group || l.kind != Line::kEntry) continue;
        std::string key = unescape_state_key(l.key);
        if (key.size() <= kTargetSuffix.size() ||
            key.compare(key.size() - kTargetSuffix.size(), kTargetSuffix.size(), kTargetSuffix) != 0)
            continue;
        key.resize(key.size() - kTargetSuffix.size());
        f(l, key, unescape_keyfile_value(l.value));
    }
}

std::string sys_error(const std::string &what, int err) { return what + ": " + std::strerror(err); }

} // namespace

std::string unescape_state_key(std::string_view key) {
    std::string out;
    for (size_t i = 0; i < key.size(); ++i) {
        if (key[i] != '\\' || i + 1 == key.size()) {
            out.push_back(key[i]);
            continue;
        }
        switch (key[++i]) {
        case '\\': out.push_back('\\'); break;
        case 's': out.push_back(' '); break;
        case 'e': out.push_back('='); break;
        case 'o': out.push_back('['); break;
        case 'c': out.push_back(']'); break;
        default:  // not something WirePlumber writes: keep it as it stands
            out.push_back('\\');
            out.push_back(key[i]);
        }
    }
    return out;
}

std::string unescape_keyfile_value(std::string_view v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] != '\\' || i + 1 == v.size()) {
            out.push_back(v[i]);
            continue;
        }
        switch (v[++i]) {
        case 's': out.push_back(' '); break;
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '\\': out.push_back('\\'); break;
        default:
            out.push_back('\\');
            out.push_back(v[i]);
        }
    }
    return out;
}

std::vector<RestoreTarget> restore_targets(std::string_view text) {
    std::vector<RestoreTarget> out;
    for_each_target(split(text), [&](const Line &, const std::string &base, std::string target) {
        out.push_back({base, std::move(target)});
    });
    return out;
}

std::string without_targets(std::string_view text, const std::set<std::string> &key_bases) {
    auto lines = split(text);
    std::set<const char *> drop;
    for_each_target(lines, [&](const Line &l, const std::string &base, const std::string &) {
        if (key_bases.count(base)) drop.insert(l.raw.data());
    });
    std::string out;
    out.reserve(text.size());
    for (const auto &l : lines)
        if (!drop.count(l.raw.data())) out.append(l.raw);
    return out;
}

std::optional<StreamKey> parse_key_base(std::string_view base) {
    // "<class>:<property>:<value>": class and property never hold ':', the value may.
    size_t a = base.find(':');
    if (a == std::string_view::npos || a == 0) return std::nullopt;
    size_t b = base.find(':', a + 1);
    if (b == std::string_view::npos || b == a + 1) return std::nullopt;
    StreamKey k;
    std::string_view cls = base.substr(0, a);
    bool stream = cls.substr(0, 7) == "Output/" || cls.substr(0, 6) == "Input/";
    k.media_class = (stream ? "Stream/" : "") + std::string(cls);
    k.property = std::string(base.substr(a + 1, b - a - 1));
    k.value = std::string(base.substr(b + 1));
    return k;
}

std::string restore_stream_path() {
    const char *state = std::getenv("XDG_STATE_HOME");
    if (state && *state) return std::string(state) + "/wireplumber/restore-stream";
    const char *home = std::getenv("HOME");
    if (home && *home) return std::string(home) + "/.local/state/wireplumber/restore-stream";
    return {};
}

std::optional<std::string> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return std::nullopt;
        throw Error(PP_ERR_IO, sys_error("reading " + path, errno));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) throw Error(PP_ERR_IO, "reading " + path + " failed");
    return buf.str();
}

void replace_file_atomically(const std::string &path, std::string_view contents) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw Error(PP_ERR_IO, sys_error("stat " + path, errno));
    std::string tmp = path + ".pixelpass-XXXXXX";
    int fd = ::mkstemp(tmp.data());
    if (fd < 0) throw Error(PP_ERR_IO, sys_error("creating a temporary file next to " + path, errno));
    // From here on, every failure removes the temporary file and leaves the original alone.
    auto fail = [&](const std::string &what) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(PP_ERR_IO, sys_error(what + " " + tmp, err));
    };
    if (::fchmod(fd, st.st_mode & 07777) != 0) fail("chmod");
    size_t done = 0;
    while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("writing");
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) fail("fsync");
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) fail("closing");
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("renaming over " + path + " from");
}

} // namespace pp::repair
