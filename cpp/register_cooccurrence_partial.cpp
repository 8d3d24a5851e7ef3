// pybind11 registration for partial co-occurrence sums (arguments in, GIL released, results
// out). tfllmer_fast.graph.partial checks the arguments; the kernels re-check the structure.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cooccurrence_finish.hpp"
#include "cooccurrence_partial.hpp"
#include "python_bridge.hpp"

namespace py = pybind11;
using tfllmer::CoocGraph;
using tfllmer::CoocSums;
using tfllmer::CoocSumsView;
using tfllmer::to_numpy;

namespace {

using I64Array = py::array_t<int64_t, py::array::c_style>;
using I32Array = py::array_t<int32_t, py::array::c_style>;
using U64Array = py::array_t<uint64_t, py::array::c_style>;
using U8Array = py::array_t<uint8_t, py::array::c_style>;
using F32Array = py::array_t<float, py::array::c_style>;

struct Meta {
    int64_t n, row_begin, row_end;
    bool upper;
    int words;
};

// A view of numpy arrays; the shapes are checked here, the structure by check_sums.
CoocSumsView sums_view(const Meta& m, const I64Array& indptr, const I32Array& cols, const U64Array& vals) {
    if (m.row_end < m.row_begin) throw std::invalid_argument("partial sums: row_end < row_begin");
    if (indptr.ndim() != 1 || indptr.shape(0) != m.row_end - m.row_begin + 1)
        throw std::invalid_argument("partial sums: indptr must have row_end - row_begin + 1 entries");
    const int64_t nnz = indptr.at(indptr.shape(0) - 1);
    if (cols.ndim() != 1 || cols.shape(0) != nnz || vals.ndim() != 1 || vals.shape(0) != nnz * m.words)
        throw std::invalid_argument("partial sums: cols must have indptr[-1] entries and vals words times more");
    CoocSumsView v;
    v.n = m.n;
    v.row_begin = m.row_begin;
    v.row_end = m.row_end;
    v.upper = m.upper;
    v.words = m.words;
    v.indptr = indptr.data();
    v.cols = cols.data();
    v.vals = vals.data();
    return v;
}

py::tuple sums_to_python(CoocSums&& s) {
    return py::make_tuple(to_numpy(std::move(s.indptr)), to_numpy(std::move(s.cols)), to_numpy(std::move(s.vals)));
}

py::tuple graph_to_python(CoocGraph&& g) {
    return py::make_tuple(to_numpy(std::move(g.indptr)), to_numpy(std::move(g.indices)), to_numpy(std::move(g.data)));
}

CoocGraph graph_view(const I64Array& indptr, const I32Array& indices, const F32Array& data) {
    // The top-k kernels read a CoocGraph; copying a block's rows is cheap beside the finish.
    if (indptr.ndim() != 1 || indptr.shape(0) < 1) throw std::invalid_argument("indptr must be 1-D, non-empty");
    const int64_t n = indptr.shape(0) - 1, nnz = indptr.at(n);
    if (indices.shape(0) != nnz || data.shape(0) != nnz)
        throw std::invalid_argument("indices and data must have indptr[-1] entries");
    CoocGraph g;
    g.n = n;
    g.indptr.assign(indptr.data(), indptr.data() + n + 1);
    g.indices.assign(indices.data(), indices.data() + nnz);
    g.data.assign(data.data(), data.data() + nnz);
    return g;
}

}  // namespace

void register_cooccurrence_partial(py::module_& m) {
    m.def(
        "cooc_sums_merge",
        [](const std::vector<py::tuple>& parts, int64_t n, int64_t row_begin, int64_t row_end, bool upper, int words,
           int n_threads) {
            const Meta meta{n, row_begin, row_end, upper, words};
            std::vector<I64Array> keep_i;
            std::vector<I32Array> keep_c;
            std::vector<U64Array> keep_v;
            std::vector<CoocSumsView> views;
            for (const auto& t : parts) {
                if (t.size() != 3) throw std::invalid_argument("each partial is (indptr, cols, vals)");
                keep_i.push_back(t[0].cast<I64Array>());
                keep_c.push_back(t[1].cast<I32Array>());
                keep_v.push_back(t[2].cast<U64Array>());
                views.push_back(sums_view(meta, keep_i.back(), keep_c.back(), keep_v.back()));
            }
            CoocSums s = tfllmer::call_without_gil([&] {
                for (const auto& v : views) tfllmer::check_sums(v, n_threads);
                return tfllmer::merge_sums(views, n_threads);
            });
            return sums_to_python(std::move(s));
        },
        py::arg("parts"), py::arg("n"), py::arg("row_begin"), py::arg("row_end"), py::arg("upper"), py::arg("words"),
        py::arg("n_threads"), "Entry-wise exact sum of partials over the same rows (private).");

    m.def(
        "cooc_sums_mirror_split",
        [](const I64Array& indptr, const I32Array& cols, const U64Array& vals, int64_t n, int64_t row_begin,
           int64_t row_end, int words, const std::vector<int64_t>& bounds, int n_threads) {
            const CoocSumsView v = sums_view(Meta{n, row_begin, row_end, true, words}, indptr, cols, vals);
            std::vector<CoocSums> blocks = tfllmer::call_without_gil([&] {
                tfllmer::check_sums(v, n_threads);
                return tfllmer::mirror_split(v, bounds);
            });
            py::list out;
            for (auto& b : blocks) out.append(sums_to_python(std::move(b)));
            return out;
        },
        py::arg("indptr"), py::arg("cols"), py::arg("vals"), py::arg("n"), py::arg("row_begin"), py::arg("row_end"),
        py::arg("words"), py::arg("bounds"), py::arg("n_threads"),
        "Full rows of each block [bounds[b], bounds[b+1]) from upper-triangle sums (private).");

    m.def(
        "cooc_sums_finish",
        [](const I64Array& indptr, const I32Array& cols, const U64Array& vals, int64_t n, int64_t row_begin,
           int64_t row_end, bool upper, int words, double min_count, int64_t top_k, int n_threads) {
            const CoocSumsView v = sums_view(Meta{n, row_begin, row_end, upper, words}, indptr, cols, vals);
            auto stop = tfllmer::python_stop_check();
            CoocGraph g = tfllmer::call_without_gil([&] {
                tfllmer::check_sums(v, n_threads);
                return tfllmer::finish_sums(v, tfllmer::CoocFinish{min_count, top_k}, n_threads, stop);
            });
            return graph_to_python(std::move(g));
        },
        py::arg("indptr"), py::arg("cols"), py::arg("vals"), py::arg("n"), py::arg("row_begin"), py::arg("row_end"),
        py::arg("upper"), py::arg("words"), py::arg("min_count"), py::arg("top_k"), py::arg("n_threads"),
        "Float32 rows (indptr int64, indices int32, data float32) from exact sums (private).");

    m.def(
        "cooc_top_k_stats",
        [](const I64Array& indptr, const I32Array& indices, const F32Array& data, int64_t top_k, int n_threads) {
            if (top_k < 1) throw std::invalid_argument("top_k must be >= 1");
            CoocGraph g = graph_view(indptr, indices, data);
            auto stop = tfllmer::python_stop_check();
            tfllmer::cooc_detail::TopKStats st = tfllmer::call_without_gil(
                [&] { return tfllmer::cooc_detail::top_k_stats(g, top_k, n_threads, stop); });
            return py::make_tuple(to_numpy(std::move(st.capped)), to_numpy(std::move(st.kth_w)),
                                  to_numpy(std::move(st.kth_col)));
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("top_k"), py::arg("n_threads"),
        "Per row: more than top_k entries?, the k-th entry's weight and column (private).");

    m.def(
        "cooc_top_k_filter",
        [](const I64Array& indptr, const I32Array& indices, const F32Array& data, int64_t row_begin,
           const U8Array& capped, const F32Array& kth_w, const I32Array& kth_col, int n_threads) {
            CoocGraph g = graph_view(indptr, indices, data);
            const int64_t n = capped.shape(0);
            if (kth_w.shape(0) != n || kth_col.shape(0) != n || row_begin < 0 || row_begin + g.n > n)
                throw std::invalid_argument("top-k statistics must cover every row of the graph");
            for (int64_t k = 0; k < static_cast<int64_t>(g.indices.size()); ++k)
                if (g.indices[k] < 0 || g.indices[k] >= n) throw std::invalid_argument("column ids outside the graph");
            const tfllmer::cooc_detail::TopKRef ref{capped.data(), kth_w.data(), kth_col.data()};
            auto stop = tfllmer::python_stop_check();
            CoocGraph out = tfllmer::call_without_gil(
                [&] { return tfllmer::cooc_detail::filter_top_k(g, row_begin, ref, n_threads, stop); });
            return graph_to_python(std::move(out));
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("row_begin"), py::arg("capped"),
        py::arg("kth_w"), py::arg("kth_col"), py::arg("n_threads"),
        "Rows of a block kept by the symmetric top-k rule, given every row's statistics (private).");
}
