// A small work-sharing loop for the co-occurrence kernels: OpenMP threads take tasks from an
// atomic counter; only the calling thread (OpenMP thread 0) polls the StopCheck, also while it
// waits for the others to finish their last task; the first exception thrown by any thread is
// rethrown on the caller after the parallel region.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>

#include "cancel.hpp"

namespace tfllmer::cooc_detail {

// Cheap to call often: looks at the clock every 256 calls and runs the StopCheck at most every
// ~20 ms (it takes the GIL, which other Python threads may hold for a few ms).
class StopPoller {
public:
    explicit StopPoller(const StopCheck& stop) : stop_(stop), last_(Clock::now()) {}
    bool poll() {
        if (!stop_ || (++calls_ & 255u)) return false;
        return poll_now();
    }
    bool poll_now() {
        if (!stop_) return false;
        const auto now = Clock::now();
        if (now - last_ < std::chrono::milliseconds(20)) return false;
        last_ = now;
        return stop_();
    }

private:
    using Clock = std::chrono::steady_clock;
    const StopCheck& stop_;
    Clock::time_point last_;
    uint32_t calls_ = 0;
};

// Context handed to every task: `tick()` returns true when the task should give up early
// (cancellation or an error elsewhere); call it every so often inside long tasks.
struct TaskContext {
    int thread;
    std::atomic<bool>* abort;
    StopPoller* poller;  // non-null on the calling thread only
    std::atomic<bool>* cancelled;
    bool tick() {
        if (poller && poller->poll()) {
            cancelled->store(true, std::memory_order_relaxed);
            abort->store(true, std::memory_order_relaxed);
        }
        return abort->load(std::memory_order_relaxed);
    }
};

// Runs task(ctx, t) for t in [0, n_tasks) on n_threads threads, tasks handed out in order.
template <class Task>
void run_tasks(int n_threads, int64_t n_tasks, const StopCheck& stop, Task&& task) {
    if (n_tasks <= 0) return;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > n_tasks) n_threads = static_cast<int>(n_tasks);
    std::atomic<int64_t> next{0};
    std::atomic<bool> abort{false}, cancelled{false};
    std::atomic<int> workers_done{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    StopPoller poller(stop);

#pragma omp parallel num_threads(n_threads)
    {
        const int tid = omp_get_thread_num();
        const int nt = omp_get_num_threads();
        TaskContext ctx{tid, &abort, tid == 0 ? &poller : nullptr, &cancelled};
        try {
            while (!abort.load(std::memory_order_relaxed)) {
                const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
                if (t >= n_tasks) break;
                task(ctx, t);
                ctx.tick();
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            abort.store(true);
        }
        if (tid == 0) {
            // Keep Ctrl-C responsive while the other threads finish their last task: yield
            // for a couple of milliseconds (short tails are the common case), then sleep.
            const auto wait_start = std::chrono::steady_clock::now();
            while (workers_done.load() < nt - 1) {
                if (!abort.load(std::memory_order_relaxed)) {
                    try {
                        if (poller.poll_now()) {
                            cancelled.store(true);
                            abort.store(true);
                        }
                    } catch (...) {
                        std::lock_guard<std::mutex> lock(error_mutex);
                        if (!error) error = std::current_exception();
                        abort.store(true);
                    }
                }
                if (std::chrono::steady_clock::now() - wait_start < std::chrono::milliseconds(2))
                    std::this_thread::yield();
                else
                    std::this_thread::sleep_for(std::chrono::microseconds(500));
            }
        } else {
            workers_done.fetch_add(1);
        }
    }
    if (error) std::rethrow_exception(error);
    if (cancelled.load()) throw Cancelled();
}

// Static split of [0, n) into `parts` contiguous ranges, range k = [bounds[k], bounds[k+1]).
inline int64_t split_point(int64_t n, int64_t parts, int64_t k) {
    return static_cast<int64_t>((static_cast<unsigned __int128>(n) * k) / parts);
}

// Row-range tasks of roughly equal size for the cheap linear passes over n rows.
inline int64_t n_row_tasks(int64_t n, int n_threads) {
    return std::max<int64_t>(1, std::min<int64_t>(n, 16 * static_cast<int64_t>(n_threads)));
}

}  // namespace tfllmer::cooc_detail
