#include "publish/target.hpp"

#include <algorithm>
#include <cctype>

#include "common/error.hpp"

namespace pp::publish {

namespace {

constexpr size_t kMaxUrl = 2048;
constexpr size_t kMaxKey = 512;
constexpr std::string_view kMask = "***";

[[noreturn]] void bad(std::string_view shown, const std::string &what) {
    throw Error(PP_ERR_INVALID_ARGUMENT, "publish URL '" + std::string(shown) + "': " + what);
}

bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// "host", "host:port", "[v6]", "[v6]:port" → host and port (0 when absent).
void split_authority(std::string_view shown, std::string_view auth, Target &t) {
    if (auth.find('@') != std::string_view::npos)
        bad(shown, "user:password@ is not supported (put RTMP credentials in the stream key)");
    std::string_view port;
    if (!auth.empty() && auth.front() == '[') {
        size_t close = auth.find(']');
        if (close == std::string_view::npos) bad(shown, "unterminated [IPv6] address");
        t.host = std::string(auth.substr(1, close - 1));
        std::string_view rest = auth.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') bad(shown, "unexpected text after the [IPv6] address");
            port = rest.substr(1);
        }
    } else {
        size_t colon = auth.rfind(':');
        t.host = std::string(auth.substr(0, colon));
        if (colon != std::string_view::npos) port = auth.substr(colon + 1);
        if (t.host.find(':') != std::string::npos) bad(shown, "write an IPv6 address in brackets: [::1]:PORT");
    }
    // Only what a host name or an IP address can hold, so the URL printed back parses the same
    // (a stray '[' in the host did not: found by the publish_url fuzzer).
    auto host_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_'; };
    // (An empty host is checked per scheme: an SRT listener may leave it out.)
    if (!std::all_of(t.host.begin(), t.host.end(), host_char)) bad(shown, "the host must be a name or an IP address");
    if (port.empty()) return;
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        bad(shown, "port '" + std::string(port) + "' is not a number from 1 to 65535");
    unsigned long n = std::stoul(std::string(port));
    if (n == 0 || n > 65535) bad(shown, "port " + std::string(port) + " is not from 1 to 65535");
    t.port = static_cast<uint16_t>(n);
}

std::string authority_text(const Target &t) {
    std::string h = t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host;
    return t.port ? h + ":" + std::to_string(t.port) : h;
}

// rtmp(s)://host[:port]/app[/stream...]: the stream name (the "stream key" of ingest services)
// is a credential, so the label masks it.
void parse_rtmp(std::string_view shown, std::string_view path, std::string_view key, std::string_view prefix,
                Target &t) {
    if (t.host.empty()) bad(shown, "no server host");
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    size_t slash = path.find('/');
    std::string_view app = path.substr(0, slash);
    std::string_view stream = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (app.empty()) bad(shown, "no application path (e.g. rtmp://HOST/live/STREAM)");
    std::string full_stream(stream);
    if (full_stream.empty()) {
        if (key.empty())
            bad(shown, "no stream name or key: append /STREAM to the URL, or give the key with --publish-key-file");
        full_stream = std::string(key);
        t.uses_key = true;
    }
    std::string base = std::string(prefix) + authority_text(t) + "/" + std::string(app) + "/";
    t.url = base + full_stream;
    t.label = base + std::string(kMask);
}

// srt://host:port[?mode=caller|listener&...]: the other query parameters (latency, streamid,
// passphrase, ...) go to srtsink as they are; the label masks the passphrase.
void parse_srt(std::string_view shown, std::string_view path, Target &t) {
    if (!t.port) bad(shown, "SRT needs a port: srt://HOST:PORT");
    std::string_view query;
    if (size_t q = path.find('?'); q != std::string_view::npos) {
        query = path.substr(q + 1);
        path = path.substr(0, q);
    }
    if (!path.empty() && path != "/") bad(shown, "SRT URLs have no path (parameters go in ?query)");
    t.srt_mode = "caller";
    std::string kept, masked;
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view item = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (item.empty()) continue;
        size_t eq = item.find('=');
        std::string name = lower(item.substr(0, eq));
        std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        if (name == "mode") {
            std::string m = lower(value);
            if (m == "client") m = "caller";
            if (m == "server") m = "listener";
            if (m != "caller" && m != "listener")
                bad(shown, "mode '" + std::string(value) + "' is not supported (use mode=caller or mode=listener)");
            t.srt_mode = m;
            continue;  // written back below in its canonical form
        }
        std::string shown_item = name == "passphrase" ? name + "=" + std::string(kMask) : std::string(item);
        kept += "&" + std::string(item);
        masked += "&" + shown_item;
    }
    if (t.host.empty() && t.srt_mode == "caller") bad(shown, "a caller needs a server host: srt://HOST:PORT");
    std::string base = "srt://" + authority_text(t) + "?mode=" + t.srt_mode;
    t.url = base + kept;
    t.label = base + masked;
}

} // namespace

const char *protocol_name(Protocol p) noexcept {
    switch (p) {
    case Protocol::rtmp: return "rtmp";
    case Protocol::rtmps: return "rtmps";
    case Protocol::srt: return "srt";
    }
    return "?";
}

Target parse_target(std::string_view url, std::string_view key) {
    // What error lines show: never the text after the authority (it may hold the key).
    std::string_view shown = url.substr(0, std::min(url.size(), url.find("://") == std::string_view::npos
                                                                     ? size_t{40}
                                                                     : url.find('/', url.find("://") + 3)));
    if (url.empty()) throw Error(PP_ERR_INVALID_ARGUMENT, "publish URL is empty (use rtmp://, rtmps:// or srt://)");
    if (url.size() > kMaxUrl) bad(shown, "longer than " + std::to_string(kMaxUrl) + " characters");
    if (!printable(url)) bad(shown, "contains spaces or control characters");
    if (key.size() > kMaxKey || !printable(key))
        throw Error(PP_ERR_INVALID_ARGUMENT, "the stream key must be one line of printable characters without spaces");
    // The key becomes the URL's last path segment: a '/', '?' or '#' in it would change which
    // application and stream the server sees (found by the publish_url fuzzer).
    if (key.find_first_of("/?#") != std::string_view::npos)
        throw Error(PP_ERR_INVALID_ARGUMENT, "the stream key must not contain '/', '?' or '#'");
    size_t sep = url.find("://");
    if (sep == std::string_view::npos || sep == 0)
        bad(shown, "no scheme (use rtmp://HOST/APP/STREAM, rtmps://... or srt://HOST:PORT)");
    std::string scheme = lower(url.substr(0, sep));
    Target t;
    if (scheme == "rtmp") t.protocol = Protocol::rtmp;
    else if (scheme == "rtmps") t.protocol = Protocol::rtmps;
    else if (scheme == "srt") t.protocol = Protocol::srt;
    else bad(shown, "unsupported scheme '" + scheme + "' (use rtmp://, rtmps:// or srt://)");
    std::string_view rest = url.substr(sep + 3);
    size_t end = rest.find_first_of("/?");
    std::string_view auth = rest.substr(0, end);
    std::string_view path = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
    split_authority(shown, auth, t);
    if (t.protocol == Protocol::srt) parse_srt(shown, path, t);
    else parse_rtmp(shown, path, key, scheme + "://", t);
    // The URL written out in full (the key appended, ?mode= added) must parse again: it is what
    // the config and the stats carry (found by the publish_url fuzzer: 2,040 characters of SRT
    // query grew past the limit).
    if (t.url.size() > kMaxUrl)
        bad(shown, "longer than " + std::to_string(kMaxUrl) + " characters once written out in full");
    return t;
}

std::vector<Target> parse_targets(const std::vector<std::string> &urls, std::string_view key) {
    std::vector<Target> out;
    bool key_used = false;
    for (const auto &url : urls) {
        out.push_back(parse_target(url, key));
        key_used = key_used || out.back().uses_key;
    }
    if (!key.empty() && !key_used)
        throw Error(PP_ERR_INVALID_ARGUMENT, "--publish-key-file: no rtmp:// target is missing its stream name "
                                             "(give the URL as rtmp://HOST/APP and the key in the file)");
    for (size_t i = 0; i < out.size(); ++i)
        for (size_t j = 0; j < i; ++j)
            if (out[i].url == out[j].url) throw Error(PP_ERR_INVALID_ARGUMENT, "publish target " + out[i].label + " is given twice");
    return out;
}

} // namespace pp::publish
