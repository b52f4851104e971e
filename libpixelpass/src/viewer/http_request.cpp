#include "viewer/http_request.hpp"

#include <algorithm>

namespace pp::viewer {

std::string_view target_path(std::string_view target) {
    if (target.starts_with("http://")) {
        auto slash = target.find('/', 7);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    return target.substr(0, target.find('?'));
}

RequestReader::RequestReader(size_t max_header_bytes) : max_header_bytes_(max_header_bytes) {
    llhttp_settings_init(&settings_);
    settings_.on_url = &RequestReader::on_url;
    settings_.on_headers_complete = &RequestReader::on_headers_complete;
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
}

int RequestReader::on_url(llhttp_t *parser, const char *at, size_t length) {
    static_cast<RequestReader *>(parser->data)->url_.append(at, length);
    return 0;
}

// The request is whole once its head is: a GET/HEAD body is ignored.
int RequestReader::on_headers_complete(llhttp_t *) { return HPE_PAUSED; }

const RequestReader::Outcome &RequestReader::feed(std::string_view bytes) {
    if (outcome_.kind != Outcome::more) return outcome_;
    size_t n = std::min(bytes.size(), max_header_bytes_ - received_);
    received_ += n;
    llhttp_errno_t err = llhttp_execute(&parser_, bytes.data(), n);
    if (err == HPE_PAUSED) {
        decide();
    } else if (err != HPE_OK) {
        outcome_ = {Outcome::refuse, false, {}, 400, "malformed request", llhttp_errno_name(err)};
    } else if (received_ >= max_header_bytes_) {
        outcome_ = {Outcome::refuse, false, {}, 431, "request header too large"};
    }
    return outcome_;
}

void RequestReader::decide() {
    auto method = static_cast<llhttp_method_t>(llhttp_get_method(&parser_));
    if (method != HTTP_GET && method != HTTP_HEAD) {
        outcome_ = {Outcome::refuse, false, {}, 405, "only GET and HEAD are served"};
        return;
    }
    outcome_.kind = Outcome::serve;
    outcome_.head = method == HTTP_HEAD;
    outcome_.path = std::string(target_path(url_));
}

} // namespace pp::viewer
