#include "openmp_idle.hpp"

#include <dlfcn.h>
#include <omp.h>

#include <stdexcept>

namespace tfllmer {

IdleTeam::IdleTeam(int workers) : workers_(0) {
    if (workers < 1) throw std::invalid_argument("workers must be >= 1");
    std::mutex started_mutex;
    std::condition_variable started_cv;
    bool started = false;
    thread_ = std::thread([&, workers] {
        // One empty region creates this thread's pool; its workers then wait at the pool's
        // dock for a next region that never comes (asleep once the runtime counts them).
        // The region must do something, or the compiler removes it. It records the team it
        // got (the runtime may give fewer threads than asked, e.g. under OMP_THREAD_LIMIT).
#pragma omp parallel num_threads(workers + 1)
        {
#pragma omp master
            workers_ = omp_get_num_threads() - 1;
        }
        {
            // Notified under the lock: the constructor, and with it started_cv, outlives this.
            std::lock_guard<std::mutex> lock(started_mutex);
            started = true;
            started_cv.notify_one();
        }
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return released_; });
    });
    // The pool exists when the constructor returns, so the runtime's count includes it.
    std::unique_lock<std::mutex> lock(started_mutex);
    started_cv.wait(lock, [&] { return started; });
}

IdleTeam::~IdleTeam() { release(); }

void IdleTeam::release() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        released_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

std::string openmp_library() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&omp_get_max_threads), &info) && info.dli_fname) return info.dli_fname;
    return "";
}

}  // namespace tfllmer
