// The private extension tfllmer_fast._core (built once per target CPU level): argument
// conversion only; kernels live in the other files of cpp/ and each concept registers its
// own functions.
#include <pybind11/pybind11.h>
#include <omp.h>

#include <Eigen/Core>
#include <Spectra/Util/Version.h>

#include <string>

namespace py = pybind11;

void register_cooccurrence(py::module_& m);
void register_cooccurrence_partial(py::module_& m);
void register_recpca(py::module_& m);
void register_openmp(py::module_& m);
void register_top_k(py::module_& m);

namespace {

std::string simd_flags() {
    std::string s;
#ifdef __AVX512F__
    s += "avx512f ";
#endif
#ifdef __AVX2__
    s += "avx2 ";
#endif
#ifdef __FMA__
    s += "fma ";
#endif
    if (s.empty()) return "baseline";
    s.pop_back();
    return s;
}

py::dict build_info() {
    py::dict info;
    info["version"] = TFLLMER_VERSION_INFO;
    info["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
                    "." + std::to_string(EIGEN_MINOR_VERSION);
    info["spectra"] = std::to_string(SPECTRA_MAJOR_VERSION) + "." + std::to_string(SPECTRA_MINOR_VERSION) +
                      "." + std::to_string(SPECTRA_PATCH_VERSION);
    info["openmp"] = std::to_string(_OPENMP);
    info["openmp_max_threads"] = omp_get_max_threads();
    info["compiler"] = __VERSION__;
    info["simd"] = simd_flags();
    info["target"] = TFLLMER_TARGET;
    return info;
}

}  // namespace

// One module per build target (_core_native, _core_x86_64_v3, ...); tfllmer_fast/_core.py
// loads the best one the CPU runs.
PYBIND11_MODULE(TFLLMER_MODULE_NAME, m) {
    m.doc() = "tfllmer_fast compiled kernels (private; use the tfllmer_fast package)";
    m.def("build_info", &build_info, "Versions of Eigen, Spectra and OpenMP this module was built with");
    register_cooccurrence(m);
    register_cooccurrence_partial(m);
    register_recpca(m);
    register_openmp(m);
    register_top_k(m);
}
