#include "net/timer.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/error.hpp"

namespace pp::net {

uint64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

Timer::Timer(Loop &loop, std::function<void()> fire) : fire_(std::move(fire)) {
    fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd_ < 0) throw Error(PP_ERR_IO, std::string("timerfd: ") + std::strerror(errno));
    int rc = uv_poll_init(loop.uv(), poll_.get(), fd_);
    if (rc < 0) {
        ::close(fd_);
        throw Error(PP_ERR_IO, std::string("timer poll: ") + uv_strerror(rc));
    }
    poll_.initialized();
    poll_.get()->data = this;
    uv_poll_start(poll_.get(), UV_READABLE, &Timer::on_poll);
}

Timer::~Timer() {
    poll_.close();  // stops watching before the descriptor goes
    if (fd_ >= 0) ::close(fd_);
}

void Timer::program(uint64_t at) {
    armed_ = at;
    itimerspec spec{};
    if (at != UINT64_MAX) {
        // 0 would disarm: a deadline at or before the epoch of the clock fires as soon as possible.
        uint64_t t = at == 0 ? 1 : at;
        spec.it_value.tv_sec = static_cast<time_t>(t / 1000000000ULL);
        spec.it_value.tv_nsec = static_cast<long>(t % 1000000000ULL);
    }
    timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void Timer::arm_at(uint64_t deadline_ns) {
    wanted_ = deadline_ns;
    if (deadline_ns < armed_) program(deadline_ns);  // earlier: the kernel must know
}

void Timer::on_poll(uv_poll_t *handle, int, int) {
    auto *self = static_cast<Timer *>(handle->data);
    if (!self) return;
    uint64_t expirations = 0;
    if (::read(self->fd_, &expirations, sizeof expirations) != sizeof expirations) return;
    self->armed_ = UINT64_MAX;
    if (self->wanted_ == UINT64_MAX) return;  // cancelled since
    if (self->wanted_ > monotonic_ns()) {
        self->program(self->wanted_);  // the deadline moved later since it was armed
        return;
    }
    self->wanted_ = UINT64_MAX;
    self->fire_();  // may destroy *self: touch nothing afterwards
}

Waker::Waker(Loop &loop, std::function<void()> on_wake) : on_wake_(std::move(on_wake)) {
    int rc = uv_async_init(loop.uv(), async_.get(), &Waker::on_async);
    if (rc < 0) throw Error(PP_ERR_IO, std::string("async: ") + uv_strerror(rc));
    async_.initialized();
    async_.get()->data = this;
}

void Waker::wake() { uv_async_send(async_.get()); }

void Waker::on_async(uv_async_t *handle) {
    if (auto *self = static_cast<Waker *>(handle->data)) self->on_wake_();
}

} // namespace pp::net
