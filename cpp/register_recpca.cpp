// pybind11 registration for the recpca kernels (arguments in, GIL released, results out).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_recpca(py::module_& m) {}
