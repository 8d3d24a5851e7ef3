// Phase timing of the co-occurrence kernels, for development: TFLLMER_COOC_PROFILE=1 prints
// the time of each phase to stderr. Costs one branch per phase when off.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace tfllmer::cooc_detail {

struct PhaseTimer {
    static bool enabled() {
        static const bool on = [] {
            const char* e = std::getenv("TFLLMER_COOC_PROFILE");
            return e && *e && *e != '0';
        }();
        return on;
    }
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
    void lap(const char* what) {
        if (!enabled()) return;
        const auto now = std::chrono::steady_clock::now();
        std::fprintf(stderr, "[cooc] %-10s %8.3f s\n", what, std::chrono::duration<double>(now - t).count());
        t = now;
    }
};

}  // namespace tfllmer::cooc_detail
