// Helpers for the pybind11 layer only: run a kernel without the GIL and turn a Ctrl-C seen
// by the kernel's StopCheck back into Python's KeyboardInterrupt.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <utility>

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

// Hands a vector's buffer to numpy without copying.
template <class Vector, class T = typename Vector::value_type>
pybind11::array_t<T> to_numpy(Vector&& v) {
    auto* owner = new Vector(std::move(v));
    pybind11::capsule capsule(owner, [](void* p) { delete static_cast<Vector*>(p); });
    return pybind11::array_t<T>({static_cast<pybind11::ssize_t>(owner->size())},
                                {static_cast<pybind11::ssize_t>(sizeof(T))}, owner->data(), capsule);
}

}  // namespace tfllmer
