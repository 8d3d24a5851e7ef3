// pybind11 registration for the row-wise top-k (top_k.hpp). Arguments arrive checked by
// tfllmer_fast.serving._topk; the invariants the kernel relies on are checked again here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>

#include "python_bridge.hpp"
#include "top_k.hpp"

namespace py = pybind11;

void register_top_k(py::module_& m) {
    m.def(
        "top_k_rows",
        [](py::array_t<float, py::array::forcecast> scores, int64_t k, int n_threads) {
            if (scores.ndim() != 2) throw std::invalid_argument("scores must be a 2-D float32 array");
            if (k < 1) throw std::invalid_argument("k must be >= 1");
            if (n_threads < 1) throw std::invalid_argument("n_threads must be >= 1");
            const int64_t rows = scores.shape(0), cols = scores.shape(1);
            const int64_t inner = scores.strides(1), outer = scores.strides(0);
            if (inner != static_cast<int64_t>(sizeof(float)) || outer % static_cast<int64_t>(sizeof(float)) ||
                outer < cols * static_cast<int64_t>(sizeof(float)))
                throw std::invalid_argument("scores must have contiguous rows");
            py::array_t<float> vals({rows, k});
            py::array_t<int64_t> idx({rows, k});
            const float* s = scores.data();
            float* v = vals.mutable_data();
            int64_t* c = idx.mutable_data();
            const int64_t ld = outer / static_cast<int64_t>(sizeof(float));
            tfllmer::call_without_gil([&] {
                tfllmer::top_k_rows(s, rows, cols, ld, k, v, c, n_threads);
                return 0;
            });
            return py::make_tuple(vals, idx);
        },
        py::arg("scores"), py::arg("k"), py::arg("n_threads"),
        "Each row's k best (score descending, column ascending; NaN never chosen, -inf/-1 padding), "
        "as (values, columns) (private).");
}
