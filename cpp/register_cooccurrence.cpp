// pybind11 registration for the cooccurrence kernels (arguments in, GIL released, results out).
// Arguments arrive already checked and converted by tfllmer_fast.cooccurrence; the kernels
// still re-check the invariants they rely on (std::invalid_argument -> ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cooccurrence.hpp"
#include "cooccurrence_partial.hpp"
#include "python_bridge.hpp"

namespace py = pybind11;
using tfllmer::CoocFinish;
using tfllmer::CoocGraph;
using tfllmer::CoocOptions;
using tfllmer::CoocWeighting;

namespace {

using I64Array = py::array_t<int64_t, py::array::c_style>;
using I32Array = py::array_t<int32_t, py::array::c_style>;

CoocWeighting parse_weighting(const std::string& w) {
    if (w == "count") return CoocWeighting::Count;
    if (w == "inverse_distance") return CoocWeighting::InverseDistance;
    if (w == "binary") return CoocWeighting::Binary;
    throw std::invalid_argument("weighting must be 'count', 'inverse_distance' or 'binary', got '" + w + "'");
}

CoocOptions make_options(int64_t n_items, int64_t window, int64_t max_history, const std::string& weighting,
                         int n_threads) {
    CoocOptions opt;
    opt.n_items = n_items;
    opt.window = window;
    opt.max_history = max_history;
    opt.weighting = parse_weighting(weighting);
    opt.n_threads = n_threads;
    return opt;
}

struct ChunkArgs {
    const int64_t* offsets;
    int64_t n_users;
    const int32_t* items;
};

ChunkArgs chunk_args(const I64Array& offsets, const I32Array& items) {
    if (offsets.ndim() != 1 || items.ndim() != 1) throw std::invalid_argument("offsets and items must be 1-D");
    if (offsets.shape(0) < 1) throw std::invalid_argument("offsets must have at least one entry");
    if (offsets.at(offsets.shape(0) - 1) != items.shape(0))
        throw std::invalid_argument("offsets[-1] must equal len(items)");
    return ChunkArgs{offsets.data(), offsets.shape(0) - 1, items.data()};
}

using tfllmer::to_numpy;

// Index dtype of returned graphs: int64 indptr and indices when asked (the API's default),
// otherwise int32 while nnz fits and int64 beyond. A knob lets tests lower the int32 limit.
int64_t g_int32_max_nnz = INT32_MAX;

py::tuple to_python(CoocGraph&& g, bool index64) {
    const int64_t nnz = g.indptr.empty() ? 0 : g.indptr.back();
    if (!index64 && nnz <= g_int32_max_nnz) {
        auto indptr = tfllmer::cast_index<int32_t>(g.indptr);
        return py::make_tuple(to_numpy(std::move(indptr)), to_numpy(std::move(g.indices)), to_numpy(std::move(g.data)));
    }
    tfllmer::cooc_detail::BigVector<int64_t> indices;
    {
        py::gil_scoped_release release;
        indices = tfllmer::cast_index<int64_t>(g.indices);
        g.indices = {};
    }
    return py::make_tuple(to_numpy(std::move(g.indptr)), to_numpy(std::move(indices)), to_numpy(std::move(g.data)));
}

}  // namespace

void register_cooccurrence(py::module_& m) {
    m.def(
        "cooccurrence",
        [](const I64Array& offsets, const I32Array& items, int64_t n_items, int64_t window, int64_t max_history,
           const std::string& weighting, double min_count, int64_t top_k, int n_threads, bool index64) {
            const CoocOptions opt = make_options(n_items, window, max_history, weighting, n_threads);
            const ChunkArgs c = chunk_args(offsets, items);
            const CoocFinish finish{min_count, top_k};
            auto stop = tfllmer::python_stop_check();
            CoocGraph g = tfllmer::call_without_gil(
                [&] { return tfllmer::cooccurrence(opt, c.offsets, c.n_users, c.items, finish, stop); });
            return to_python(std::move(g), index64);
        },
        py::arg("offsets"), py::arg("items"), py::arg("n_items"), py::arg("window"), py::arg("max_history"),
        py::arg("weighting"), py::arg("min_count"), py::arg("top_k"), py::arg("n_threads"),
        py::arg("index64") = true,
        "Co-occurrence graph as (indptr int64, indices int64, data float32); window/max_history/top_k 0 = none");

    // Testing knobs (none changes a result): negative arguments leave a value as it is.
    m.def(
        "_cooccurrence_tuning",
        [](double min_parallel_work, double narrow_max_pairs, int64_t int32_max_nnz) {
            py::dict old;
            old["min_parallel_work"] = tfllmer::set_cooccurrence_min_parallel_work(-1);
            tfllmer::set_cooccurrence_min_parallel_work(min_parallel_work >= 0 ? min_parallel_work
                                                                               : old["min_parallel_work"].cast<double>());
            old["narrow_max_pairs"] = tfllmer::set_cooccurrence_narrow_max_pairs(-1);
            tfllmer::set_cooccurrence_narrow_max_pairs(narrow_max_pairs >= 0 ? narrow_max_pairs
                                                                             : old["narrow_max_pairs"].cast<double>());
            old["int32_max_nnz"] = g_int32_max_nnz;
            if (int32_max_nnz >= 0) g_int32_max_nnz = std::min<int64_t>(int32_max_nnz, INT32_MAX);
            return old;
        },
        py::arg("min_parallel_work") = -1.0, py::arg("narrow_max_pairs") = -1.0, py::arg("int32_max_nnz") = -1,
        "Testing knobs: work per thread below which fewer threads run; position pairs below which chunk "
        "sums are 32-bit; largest nnz returned with int32 indices. Returns the previous values.");

    py::class_<tfllmer::CooccurrenceCounter>(m, "CooccurrenceCounter")
        .def(py::init([](int64_t n_items, int64_t window, int64_t max_history, const std::string& weighting,
                         int n_threads) {
                 return new tfllmer::CooccurrenceCounter(
                     make_options(n_items, window, max_history, weighting, n_threads));
             }),
             py::arg("n_items"), py::arg("window"), py::arg("max_history"), py::arg("weighting"),
             py::arg("n_threads"))
        .def(
            "update",
            [](tfllmer::CooccurrenceCounter& self, const I64Array& offsets, const I32Array& items) {
                const ChunkArgs c = chunk_args(offsets, items);
                auto stop = tfllmer::python_stop_check();
                tfllmer::call_without_gil([&] { self.update(c.offsets, c.n_users, c.items, stop); });
            },
            py::arg("offsets"), py::arg("items"))
        .def(
            "result",
            [](const tfllmer::CooccurrenceCounter& self, double min_count, int64_t top_k, bool index64) {
                const CoocFinish finish{min_count, top_k};
                auto stop = tfllmer::python_stop_check();
                CoocGraph g = tfllmer::call_without_gil([&] { return self.result(finish, stop); });
                return to_python(std::move(g), index64);
            },
            py::arg("min_count"), py::arg("top_k"), py::arg("index64") = true)
        .def(
            "take_sums",
            [](tfllmer::CooccurrenceCounter& self) {
                tfllmer::CoocSums s = tfllmer::call_without_gil([&] { return self.take_sums(); });
                return py::make_tuple(to_numpy(std::move(s.indptr)), to_numpy(std::move(s.cols)),
                                      to_numpy(std::move(s.vals)), s.words);
            },
            "Moves the exact upper-triangle sums out as (indptr, cols int32, vals uint64, words); the "
            "counter keeps no pairs afterwards.")
        .def_property_readonly("n_interactions_seen", &tfllmer::CooccurrenceCounter::n_interactions_seen)
        .def_property_readonly("n_users_seen", &tfllmer::CooccurrenceCounter::n_users_seen)
        .def_property_readonly("nnz", &tfllmer::CooccurrenceCounter::nnz);
}
