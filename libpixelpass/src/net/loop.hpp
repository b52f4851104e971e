// net/loop: a libuv loop on a thread of its own. Everything network-facing lives on it; other
// threads reach it only through post()/call(), which are thread-safe.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include <uv.h>

namespace pp::net {

class Loop {
public:
    // Starts the loop thread. `name` shows in debuggers (at most 15 characters).
    explicit Loop(const char *name = "pp-loop");
    // Runs every posted task, closes every handle still open and joins the thread.
    ~Loop();
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;

    uv_loop_t *uv() { return &loop_; }
    bool on_loop_thread() const { return std::this_thread::get_id() == thread_id_; }

    // Queues `task` to run on the loop thread. Thread-safe; never runs it inline.
    void post(std::function<void()> task);

    // Runs `fn` on the loop thread and returns its result (rethrowing its exception). Runs inline
    // when already on the loop thread.
    template <typename F>
    auto call(F &&fn) -> std::invoke_result_t<F> {
        using R = std::invoke_result_t<F>;
        if (on_loop_thread()) return fn();
        auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
        auto result = task->get_future();
        post([task] { (*task)(); });
        return result.get();
    }

private:
    static void on_async(uv_async_t *handle);
    void drain();

    uv_loop_t loop_{};
    uv_async_t wakeup_{};
    std::mutex mutex_;
    std::vector<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::thread::id thread_id_;
    std::thread thread_;
};

} // namespace pp::net
