#include "config/config.hpp"

#include "publish/target.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include "common/error.hpp"
#include "common/hex.hpp"
#include "common/random.hpp"

namespace pp::config {
namespace {

enum class Type { integer, number, string, string_list };

struct Key {
    const char *table;
    const char *name;
    Type type;
    double min = 0, max = 0;              // integer / number range
    std::vector<std::string> choices = {};  // allowed strings; empty = any
};

const std::vector<Key> &schema() {
    static const std::vector<Key> keys = {
        {"host", "bitrate_kbps", Type::integer, 100, 200000},
        {"host", "max_viewers", Type::integer, 1, 1000},
        {"viewer", "player", Type::string, 0, 0, {"auto", "mpv", "vlc"}},
        {"host", "encoder", Type::string, 0, 0, {"auto", "va", "vaapi", "nvenc", "x264", "openh264"}},
        {"host", "publish", Type::string_list},
        {"network", "relay", Type::string},
        {"network", "stun_servers", Type::string_list},
        {"network", "relay_secret", Type::string},
        {"network", "port_mapping", Type::string, 0, 0, {"on", "off"}},
        {"network", "dht", Type::string, 0, 0, {"on", "off"}},
        {"network", "dht_bootstrap", Type::string_list},
        {"network", "congestion_control", Type::string, 0, 0, {"auto", "cubic", "bbr", "bbr2", "reno"}},
        {"bandwidth", "status", Type::string, 0, 0, {"measured", "skipped", "failed", "unmeasured"}},
        {"bandwidth", "upstream_mbps", Type::number, 0, 1e6},
        {"bandwidth", "measured_at", Type::string},
        {"bandwidth", "endpoint", Type::string},
    };
    return keys;
}

const Key *find_key(std::string_view table, std::string_view name) {
    for (const auto &k : schema())
        if (table == k.table && name == k.name) return &k;
    return nullptr;
}

std::string where(const std::string &path, const toml::source_region &r) {
    return path + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string join(const std::vector<std::string> &items) {
    std::string out;
    for (const auto &i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

// Checks one value against its schema entry; returns why it does not fit ("" when it does).
std::string mismatch(const Key &key, const toml::node &node) {
    switch (key.type) {
    case Type::integer: {
        // Only an integer node is asked for its value: toml++ converts a float to int64_t
        // unchecked, which is undefined beyond int64_t's range (found by the config_edit fuzzer).
        auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
        if (!v || *v < key.min || *v > key.max)
            return "must be a whole number from " + std::to_string(int64_t(key.min)) + " to " +
                   std::to_string(int64_t(key.max));
        return "";
    }
    case Type::number: {
        auto v = node.value<double>();
        if (!(node.is_integer() || node.is_floating_point()) || !v || !std::isfinite(*v) || *v < key.min ||
            *v > key.max)
            return "must be a number of at least 0";
        return "";
    }
    case Type::string: {
        if (!node.is_string()) return "must be a string in quotes";
        if (!key.choices.empty() &&
            std::find(key.choices.begin(), key.choices.end(), *node.value<std::string>()) == key.choices.end())
            return "must be one of: " + join(key.choices);
        return "";
    }
    case Type::string_list: {
        const auto *arr = node.as_array();
        // toml++ calls an empty array heterogeneous; [] is a valid (empty) list of strings.
        if (!arr || (!arr->empty() && !arr->is_homogeneous(toml::node_type::string))) return "must be a list of strings";
        return "";
    }
    }
    return "has an unknown type";
}

toml::table parse_toml(std::string_view text, const std::string &path) {
    try {
        return toml::parse(text, path);
    } catch (const toml::parse_error &e) {
        throw Error(PP_ERR_CONFIG, where(path, e.source()) + ": " + std::string(e.description()) +
                                       " (fix or delete the file; it was not changed)");
    }
}

std::string read_file(const std::string &path, bool &exists) {
    exists = false;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return "";
        throw Error(PP_ERR_IO, "cannot read " + path + ": " + std::strerror(errno));
    }
    std::string text;
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw Error(PP_ERR_IO, "cannot read " + path + ": " + std::strerror(err));
        }
        if (n == 0) break;
        text.append(buf, size_t(n));
    }
    ::close(fd);
    exists = true;
    return text;
}

// TOML text for a JSON value, checked against the key's type.
std::string toml_literal(const Key &key, const nlohmann::json &value) {
    std::string full = std::string(key.table) + "." + key.name;
    auto bad = [&](const std::string &why) {
        return Error(PP_ERR_INVALID_ARGUMENT, "config key " + full + " " + why);
    };
    // A TOML basic string: double quotes, which people expect to see in the file.
    auto quote = [](const std::string &s) {
        std::string o = "\"";
        for (unsigned char ch : s) {
            if (ch == '"' || ch == '\\') o += {'\\', char(ch)};
            else if (ch < 0x20 || ch == 0x7f) {
                char esc[8];
                std::snprintf(esc, sizeof esc, "\\u%04x", ch);
                o += esc;
            } else o += char(ch);
        }
        return o + "\"";
    };
    std::string text;
    switch (key.type) {
    case Type::integer:
        if (!value.is_number_integer()) throw bad("must be a whole number");
        text = std::to_string(value.get<int64_t>());
        break;
    case Type::number: {
        if (!value.is_number()) throw bad("must be a number");
        std::ostringstream o;
        o << toml::value<double>(value.get<double>());
        text = o.str();
        break;
    }
    case Type::string:
        if (!value.is_string()) throw bad("must be a string");
        text = quote(value.get<std::string>());
        break;
    case Type::string_list:
        if (!value.is_array()) throw bad("must be a list of strings");
        text = "[";
        for (const auto &item : value) {
            if (!item.is_string()) throw bad("must be a list of strings");
            text += (text.size() > 1 ? ", " : "") + quote(item.get<std::string>());
        }
        text += "]";
        break;
    }
    // Validate through the same checks a load does (ranges, choices).
    auto check = toml::parse("v = " + text);
    if (std::string why = mismatch(key, *check.get("v")); !why.empty()) throw bad(why);
    return text;
}

// Byte offset of a 1-based (line, column) position; columns count UTF-8 code points.
size_t offset_of(std::string_view text, toml::source_position pos) {
    size_t off = 0;
    for (uint32_t line = 1; line < pos.line; ++line) {
        size_t nl = text.find('\n', off);
        if (nl == std::string_view::npos) return text.size();
        off = nl + 1;
    }
    for (uint32_t col = 1; col < pos.column && off < text.size(); ++col) {
        ++off;
        while (off < text.size() && (static_cast<unsigned char>(text[off]) & 0xC0) == 0x80) ++off;
    }
    return off;
}

size_t end_of_line(std::string_view text, size_t off) {
    size_t nl = text.find('\n', off);
    return nl == std::string_view::npos ? text.size() : nl + 1;
}

} // namespace

std::string default_path() {
    const char *xdg = std::getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg == '/') return std::string(xdg) + "/pixelpass/config.toml";
    const char *home = std::getenv("HOME");
    if (!home || !*home)
        throw Error(PP_ERR_CONFIG, "neither XDG_CONFIG_HOME nor HOME is set: cannot find config.toml");
    return std::string(home) + "/.config/pixelpass/config.toml";
}

Config parse(std::string_view text, const std::string &path) {
    Config c;
    c.path = path;
    c.exists = true;
    toml::table root = parse_toml(text, path);
    // toml++ iterates keys sorted by name; warnings read better in file order.
    std::vector<std::pair<toml::source_position, std::string>> located;
    for (auto &&[table_key, table_node] : root) {
        const auto *table = table_node.as_table();
        if (!table) {
            located.push_back({table_key.source().begin, where(path, table_key.source()) + ": unknown key '" +
                                                              std::string(table_key.str()) + "' ignored"});
            continue;
        }
        for (auto &&[key, node] : *table) {
            const Key *k = find_key(table_key.str(), key.str());
            std::string full = std::string(table_key.str()) + "." + std::string(key.str());
            if (!k) {
                located.push_back({key.source().begin, where(path, key.source()) + ": unknown key '" + full + "' ignored"});
                continue;
            }
            if (std::string why = mismatch(*k, node); !why.empty())
                throw Error(PP_ERR_CONFIG, where(path, node.source()) + ": " + full + " " + why +
                                               " (the file was not changed)");
            std::string_view t = k->table, n = k->name;
            if (n == "bitrate_kbps") c.bitrate_kbps = unsigned(*node.value<int64_t>());
            else if (n == "max_viewers") c.max_viewers = unsigned(*node.value<int64_t>());
            else if (n == "player") c.player = *node.value<std::string>();
            else if (n == "encoder") c.encoder = *node.value<std::string>();
            else if (n == "relay") c.relay = *node.value<std::string>();
            else if (n == "relay_secret") c.relay_secret = *node.value<std::string>();
            else if (n == "port_mapping") c.port_mapping = *node.value<std::string>() == "on";
            else if (n == "dht") c.dht = *node.value<std::string>() == "on";
            else if (n == "dht_bootstrap") {
                std::vector<std::string> list;
                for (const auto &item : *node.as_array()) list.push_back(*item.value<std::string>());
                c.dht_bootstrap = std::move(list);
            }
            else if (n == "congestion_control") c.congestion_control = *node.value<std::string>();
            else if (n == "publish") {
                for (const auto &item : *node.as_array()) c.publish.push_back(*item.value<std::string>());
            } else if (n == "stun_servers") {
                std::vector<std::string> list;
                for (const auto &item : *node.as_array()) list.push_back(*item.value<std::string>());
                c.stun_servers = std::move(list);
            } else if (t == "bandwidth" && n == "status") c.bandwidth.status = *node.value<std::string>();
            else if (n == "upstream_mbps") c.bandwidth.upstream_mbps = *node.value<double>();
            else if (n == "measured_at") c.bandwidth.measured_at = *node.value<std::string>();
            else if (n == "endpoint") c.bandwidth.endpoint = *node.value<std::string>();
        }
    }
    std::stable_sort(located.begin(), located.end(), [](const auto &a, const auto &b) {
        return a.first.line != b.first.line ? a.first.line < b.first.line : a.first.column < b.first.column;
    });
    for (auto &[_, text] : located) c.warnings.push_back(std::move(text));
    return c;
}

Config load(const std::string &path) {
    bool exists = false;
    std::string text = read_file(path, exists);
    if (!exists) {
        Config c;
        c.path = path;
        return c;
    }
    return parse(text, path);
}

// The publish URLs as logs may show them: stream keys and passphrases masked.
nlohmann::json publish_labels(const std::vector<std::string> &urls) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto &url : urls) {
        try {
            out.push_back(publish::parse_target(url).label);
        } catch (const Error &) {
            // Without its key (it comes from --publish-key-file) or malformed: the host start says why.
            out.push_back(url.substr(0, url.find('/', url.find("://") + 3)) + "/...");
        }
    }
    return out;
}

nlohmann::json to_json(const Config &c) {
    nlohmann::json j;
    j["path"] = c.path;
    j["exists"] = c.exists;
    j["host"] = {{"bitrate_kbps", c.bitrate_kbps ? nlohmann::json(*c.bitrate_kbps) : nullptr},
                 {"max_viewers", c.max_viewers ? nlohmann::json(*c.max_viewers) : nullptr},
                 {"encoder", c.encoder},
                 {"publish", publish_labels(c.publish)}};
    j["viewer"] = {{"player", c.player}};
    j["network"] = {{"relay", c.relay},
                    {"stun_servers", c.stun_servers ? nlohmann::json(*c.stun_servers) : nullptr},
                    // Only whether a secret is set: the JSON ends up in logs and bug reports.
                    {"relay_secret_set", !c.relay_secret.empty()},
                    {"port_mapping", c.port_mapping ? "on" : "off"},
                    {"dht", c.dht ? "on" : "off"},
                    {"dht_bootstrap", c.dht_bootstrap ? nlohmann::json(*c.dht_bootstrap) : nullptr},
                    {"congestion_control", c.congestion_control}};
    j["bandwidth"] = {{"status", c.bandwidth.status},
                      {"upstream_mbps", c.bandwidth.upstream_mbps},
                      {"measured_at", c.bandwidth.measured_at},
                      {"endpoint", c.bandwidth.endpoint}};
    j["warnings"] = c.warnings;
    j["default_max_viewers"] = default_max_viewers(c, c.bitrate_kbps.value_or(0));
    return j;
}

std::string edit(std::string_view text, std::string_view key, const nlohmann::json &value,
                 const std::string &path) {
    size_t dot = key.find('.');
    const Key *k = dot == std::string_view::npos ? nullptr : find_key(key.substr(0, dot), key.substr(dot + 1));
    if (!k)
        throw Error(PP_ERR_INVALID_ARGUMENT, "unknown config key '" + std::string(key) +
                                                 "' (known: host.bitrate_kbps, host.max_viewers, viewer.player, "
                                                 "host.encoder, host.publish, network.relay, network.stun_servers, "
                                                 "network.relay_secret, network.port_mapping, network.dht, network.dht_bootstrap, "
                                                 "network.relay_secret, network.port_mapping, "
                                                 "network.congestion_control, "
                                                 "bandwidth.status, bandwidth.upstream_mbps, "
                                                 "bandwidth.measured_at, bandwidth.endpoint)");
    std::string literal = toml_literal(*k, value);
    toml::table root = parse_toml(text, path);
    std::string out(text);

    if (toml::node *old = root.at_path(std::string(key)).node()) {
        // Replace only the old value's characters: comments and spacing around it stay.
        size_t b = offset_of(text, old->source().begin), e = offset_of(text, old->source().end);
        out.replace(b, e - b, literal);
    } else if (toml::node *tnode = root.get(k->table); tnode && tnode->is_table() && !tnode->as_table()->is_inline()) {
        // Add the key after the table's last line that holds one of its values.
        const auto *table = tnode->as_table();
        size_t after = end_of_line(text, offset_of(text, table->source().begin));
        for (auto &&[_, node] : *table)
            after = std::max(after, end_of_line(text, offset_of(text, node.source().end)));
        std::string line = std::string(k->name) + " = " + literal + "\n";
        if (after > 0 && out[after - 1] != '\n') line = "\n" + line;
        out.insert(after, line);
    } else if (tnode) {
        // An inline table cannot be extended line by line: rewrite the document (toml++ drops
        // comments here, the only case where they are lost).
        toml::table copy = root;
        auto literal_doc = toml::parse("v = " + literal);
        copy.get_as<toml::table>(k->table)->insert_or_assign(k->name, *literal_doc.get("v"));
        std::ostringstream o;
        o << copy << "\n";
        out = o.str();
    } else {
        if (!out.empty() && out.back() != '\n') out += "\n";
        if (!out.empty()) out += "\n";
        out += "[" + std::string(k->table) + "]\n" + std::string(k->name) + " = " + literal + "\n";
    }
    parse_toml(out, path);  // never write something we cannot read back
    return out;
}

void set(const std::vector<std::pair<std::string, nlohmann::json>> &assignments, const std::string &path) {
    bool exists = false;
    std::string text = read_file(path, exists);
    if (exists) parse(text, path);  // a broken file is reported, never replaced
    std::string next = text;
    if (!exists) next = "# pixelpass settings. Delete this file to return to the first-run state.\n";
    for (const auto &[key, value] : assignments) next = edit(next, key, value, path);
    if (exists && next == text) return;
    write_atomic(path, next);
}

void write_atomic(const std::string &path, std::string_view text) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    // Create missing parent directories (mkdir -p), private to the user like ~/.config.
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos == dir.size() || dir[pos] == '/') {
            std::string part = dir.substr(0, pos);
            if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
                throw Error(PP_ERR_IO, "cannot create " + part + ": " + std::strerror(errno));
        }
    }
    // The file may hold network.relay_secret: new files are private, and an existing file keeps
    // its mode without the group and other bits.
    mode_t mode = 0600;
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
        // rename() would replace the link with a file and leave its target stale: say so instead.
        if (S_ISLNK(st.st_mode))
            throw Error(PP_ERR_CONFIG, path + " is a symbolic link, and pixelpass does not write through links: "
                                              "replace it with the file it points to, or set XDG_CONFIG_HOME to "
                                              "that file's directory");
        mode = st.st_mode & 0700;
    }
    // A fresh random name opened with O_EXCL: never an existing file, nor a link planted there.
    std::vector<uint8_t> nonce(8);
    random_bytes(nonce);
    std::string tmp = path + ".tmp-" + to_hex(nonce);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) throw Error(PP_ERR_IO, "cannot write " + tmp + ": " + std::strerror(errno));
    auto fail = [&](const char *what) {
        int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return Error(PP_ERR_IO, std::string(what) + " " + tmp + ": " + std::strerror(err));
    };
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw fail("cannot write");
        done += size_t(n);
    }
    if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) throw fail("cannot sync");
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw Error(PP_ERR_IO, "cannot replace " + path + ": " + std::strerror(err));
    }
    // The rename is durable only once the directory entry is.
    if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

unsigned default_max_viewers(const Config &c, unsigned bitrate_kbps) {
    if (c.max_viewers) return *c.max_viewers;
    if (c.bandwidth.status != "measured" || c.bandwidth.upstream_mbps <= 0) return kDefaultMaxViewers;
    double per_viewer_mbps = (bitrate_kbps ? bitrate_kbps + 128 : kAssumedViewerKbps) / 1000.0;
    double cap = std::floor(c.bandwidth.upstream_mbps / per_viewer_mbps);
    return unsigned(std::clamp(cap, 1.0, 1000.0));
}

// dht = "off" turns the rendezvous off; an empty dht_bootstrap list means the same.
void apply_dht(std::vector<std::string> &bootstrap, bool &no_dht, const Config &c) {
    if (!c.dht) no_dht = true;
    if (bootstrap.empty() && !no_dht && c.dht_bootstrap) {
        bootstrap = *c.dht_bootstrap;
        if (c.dht_bootstrap->empty()) no_dht = true;
    }
}

void apply_host_defaults(HostConfig &host, const Config &c) {
    if (!host.bitrate_kbps && c.bitrate_kbps) host.bitrate_kbps = *c.bitrate_kbps;
    if (!host.max_viewers) host.max_viewers = default_max_viewers(c, host.bitrate_kbps);
    if ((host.encoder.empty() || host.encoder == "auto") && c.encoder != "auto") host.encoder = c.encoder;
    if (host.relay.empty() && !host.no_relay) {
        host.relay = c.relay;
        if (host.relay_secret.empty() && host.relay_username.empty()) host.relay_secret = c.relay_secret;
    }
    if (!c.port_mapping) host.no_port_mapping = true;
    if (host.congestion_control.empty() && c.congestion_control != "auto") host.congestion_control = c.congestion_control;
    if (host.publish.empty()) host.publish = c.publish;  // --publish replaces the file's list
    if (host.stun_servers.empty() && !host.no_stun && c.stun_servers) {
        host.stun_servers = *c.stun_servers;
        // An empty list in the file means "no STUN", not "the built-in defaults".
        if (c.stun_servers->empty()) host.no_stun = true;
    }
    apply_dht(host.dht_bootstrap, host.no_dht, c);
}

void apply_viewer_defaults(ViewerConfig &viewer, const Config &c) {
    if (viewer.stun_servers.empty() && !viewer.no_stun && c.stun_servers) {
        viewer.stun_servers = *c.stun_servers;
        if (c.stun_servers->empty()) viewer.no_stun = true;
    }
    apply_dht(viewer.dht_bootstrap, viewer.no_dht, c);
}

std::string utc_now() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

} // namespace pp::config
