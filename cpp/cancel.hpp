// Cooperative cancellation for long kernels. Kernels stay free of Python: the binding layer
// passes a StopCheck that looks for a pending Ctrl-C, and kernels call it now and then from
// the thread that invoked them (never from OpenMP worker threads).
#pragma once

#include <functional>
#include <stdexcept>

namespace tfllmer {

using StopCheck = std::function<bool()>;

struct Cancelled : std::runtime_error {
    Cancelled() : std::runtime_error("computation cancelled") {}
};

inline void throw_if_stopped(const StopCheck& stop) {
    if (stop && stop()) throw Cancelled();
}

}  // namespace tfllmer
