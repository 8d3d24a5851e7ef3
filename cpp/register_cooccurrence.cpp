// pybind11 registration for the cooccurrence kernels (arguments in, GIL released, results out).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_cooccurrence(py::module_& m) {}
