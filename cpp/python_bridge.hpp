// Helpers for the pybind11 layer only: run a kernel without the GIL and turn a Ctrl-C seen
// by the kernel's StopCheck back into Python's KeyboardInterrupt.
#pragma once

#include <pybind11/pybind11.h>

#include "cancel.hpp"

namespace tfllmer {

// A StopCheck that briefly takes the GIL to let Python run its signal handlers. Must be
// called from the thread that released the GIL (the error it sets belongs to that thread).
inline StopCheck python_stop_check() {
    return [] {
        pybind11::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
}

template <class Fn>
auto call_without_gil(Fn&& fn) -> decltype(fn()) {
    try {
        pybind11::gil_scoped_release release;
        return fn();
    } catch (const Cancelled&) {
        // PyErr_CheckSignals left KeyboardInterrupt (or the handler's exception) pending.
        if (PyErr_Occurred()) throw pybind11::error_already_set();
        throw pybind11::value_error("computation cancelled");
    }
}

}  // namespace tfllmer
