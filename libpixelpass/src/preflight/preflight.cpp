#include "preflight/preflight.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include <netinet/in.h>
#include <linux/tcp.h>  // tcpi_bytes_acked (glibc's netinet/tcp.h lacks it)
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/error.hpp"
#include "pixelpass_version.h"

namespace pp::preflight {
namespace {

using Clock = std::chrono::steady_clock;

struct Upload {
    CURL *curl = nullptr;
    uint64_t max_bytes = 0;
    // What the receiver acknowledged (TCP_INFO), which excludes what only sits in our send buffer:
    // counting bytes handed to the kernel would overstate a slow uplink by the buffer size.
    bool have_acked = false;
    uint64_t acked = 0;
    Clock::time_point first_byte, last_sample;
    bool started = false;
    uint64_t sent = 0;
    double seconds = 0;
    Clock::time_point start;
    bool timed_out = false;
    const Options *options = nullptr;
};

// The body: zeros, generated as curl asks (nothing is buffered whole).
size_t read_body(char *buf, size_t size, size_t count, void *userp) {
    auto *u = static_cast<Upload *>(userp);
    size_t n = size_t(std::min<uint64_t>(size * count, u->max_bytes - u->sent));
    std::memset(buf, 0, n);
    u->sent += n;
    return n;
}

size_t discard(char *, size_t size, size_t count, void *) { return size * count; }

// Bytes the peer acknowledged on the transfer's TCP socket, when the kernel tells.
std::optional<uint64_t> bytes_acked(CURL *c) {
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD) return std::nullopt;
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        len < offsetof(tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)
        return std::nullopt;
    return info.tcpi_bytes_acked;
}

int on_progress(void *userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
    auto *u = static_cast<Upload *>(userp);
    auto now = Clock::now();
    if (ulnow > 0) {
        if (!u->started) {
            u->started = true;
            u->first_byte = now;
        }
        if (auto acked = bytes_acked(u->curl)) {
            u->have_acked = true;
            u->acked = *acked;
            u->last_sample = now;
        }
    }
    double elapsed = std::chrono::duration<double>(now - u->start).count();
    if (u->options->progress) {
        double fraction = std::max(elapsed / u->seconds, double(ulnow) / double(u->max_bytes));
        double body_s = u->started ? std::chrono::duration<double>(now - u->first_byte).count() : 0;
        double bytes = u->have_acked ? double(u->acked) : double(ulnow);
        double mbps = body_s > 0.2 ? bytes * 8 / body_s / 1e6 : 0;
        u->options->progress(std::min(fraction, 1.0), mbps);
    }
    if (elapsed >= u->seconds) {
        u->timed_out = true;  // enough time to measure: stop here rather than finish the body
        return 1;
    }
    return 0;
}

struct CurlDeleter {
    void operator()(CURL *c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
    void operator()(curl_slist *l) const { curl_slist_free_all(l); }
};

} // namespace

std::string endpoint(const config::Config &config) {
    if (const char *env = std::getenv("PIXELPASS_SPEEDTEST_URL"); env && *env) return env;
    if (!config.bandwidth.endpoint.empty()) return config.bandwidth.endpoint;
    return kDefaultEndpoint;
}

Result measure(const Options &options) {
    static std::once_flag curl_init;
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

    Result r;
    r.endpoint = options.endpoint;
    std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
    if (!curl) {
        r.error = "cannot initialise libcurl";
        return r;
    }
    Upload u;
    u.curl = curl.get();
    u.max_bytes = std::max<uint64_t>(options.max_bytes, 1);
    u.seconds = options.seconds > 0 ? options.seconds : 5.0;
    u.options = &options;
    char errbuf[CURL_ERROR_SIZE] = "";
    std::unique_ptr<curl_slist, SlistDeleter> headers(
        curl_slist_append(nullptr, "Content-Type: application/octet-stream"));
    CURL *c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, options.endpoint.c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(u.max_bytes));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &u);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    // The upload stops itself after `seconds`; this bounds a server that never answers.
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, long(u.seconds * 1000) + 10000L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "pixelpass/" PIXELPASS_VERSION);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);

    u.start = Clock::now();
    CURLcode rc = curl_easy_perform(c);
    curl_off_t uploaded = 0, total_us = 0, pre_us = 0;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &pre_us);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (u.timed_out && (total_us == 0 || uploaded == 0)) {
        total_us = curl_off_t(std::chrono::duration<double>(Clock::now() - u.start).count() * 1e6);
        uploaded = curl_off_t(u.sent);
    }

    if (rc != CURLE_OK && !(rc == CURLE_ABORTED_BY_CALLBACK && u.timed_out)) {
        r.error = std::string(*errbuf ? errbuf : curl_easy_strerror(rc));
        return r;
    }
    if (rc == CURLE_OK && (status < 200 || status >= 300)) {
        r.error = "the endpoint answered HTTP " + std::to_string(status);
        return r;
    }
    // Time the body only: DNS, TCP and TLS set-up are not upstream bandwidth. A completed upload
    // ends when the server has everything (its answer); a cut one at the last acknowledgement.
    double seconds = double(total_us - pre_us) / 1e6;
    if (u.timed_out && u.have_acked && u.started) {
        uploaded = curl_off_t(u.acked);
        seconds = std::chrono::duration<double>(u.last_sample - u.first_byte).count();
    }
    if (uploaded < 64 * 1024 || seconds <= 0) {
        r.error = "too little data went out to measure (" + std::to_string(uploaded) + " bytes)";
        return r;
    }
    r.ok = true;
    r.bytes = uint64_t(uploaded);
    r.seconds = seconds;
    r.raw_mbps = double(uploaded) * 8 / seconds / 1e6;
    r.upstream_mbps = r.raw_mbps * config::kSafetyFactor;
    return r;
}

Result run(Options options, const std::string &config_path) {
    config::Config cfg = config::load(config_path);  // throws on a broken file: nothing uploaded
    if (options.endpoint.empty()) options.endpoint = endpoint(cfg);
    Result r = measure(options);
    // Two decimals: the estimate is rough and the file is for people too.
    double rounded = std::round(r.upstream_mbps * 100) / 100;
    if (r.ok)
        config::set({{"bandwidth.status", "measured"},
                     {"bandwidth.upstream_mbps", rounded},
                     {"bandwidth.measured_at", config::utc_now()}},
                    config_path);
    else
        config::set({{"bandwidth.status", "failed"}, {"bandwidth.measured_at", config::utc_now()}}, config_path);
    return r;
}

void skip(const std::string &config_path) {
    config::set({{"bandwidth.status", "skipped"}}, config_path);
}

bool needed(const config::Config &config) { return config.bandwidth.status == "unmeasured"; }

} // namespace pp::preflight
