// pybind11 registration for the OpenMP runtime helpers (openmp_idle.hpp).
#include <pybind11/pybind11.h>

#include "openmp_idle.hpp"

namespace py = pybind11;

void register_openmp(py::module_& m) {
    py::class_<tfllmer::IdleTeam>(m, "IdleTeam",
                                  "A parked thread owning `workers` sleeping OpenMP threads (see openmp_idle.hpp)")
        .def(py::init<int>(), py::arg("workers"), py::call_guard<py::gil_scoped_release>())
        .def("release", &tfllmer::IdleTeam::release, py::call_guard<py::gil_scoped_release>(),
             "End the parked thread and free its OpenMP pool (idempotent)")
        .def_property_readonly("workers", &tfllmer::IdleTeam::workers);
    m.def("openmp_library", &tfllmer::openmp_library, "Path of the OpenMP runtime this module calls");
}
