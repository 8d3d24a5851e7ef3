// pybind11 registration for the Rec-PCA kernels (arguments in, GIL released, results out).
//
// Arrays arrive as plain py::array and are checked here, never converted: X may be a
// read-only or memory-mapped float32/float64 array and must reach the kernels as is. The
// Python layer (tfllmer_fast.recpca) validates user input and prepares t, s, wa, wm.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "python_bridge.hpp"
#include "recpca.hpp"
#include "row_norms.hpp"

namespace py = pybind11;
using namespace tfllmer;

namespace {

template <class T>
bool has_dtype(const py::array& a) {
    return py::dtype::of<T>().is(a.dtype()) || a.dtype().equal(py::dtype::of<T>());
}

void require(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument(what);
}

const void* checked_vector(const py::array& a, const char* name, int64_t size, bool is_double) {
    require(a.ndim() == 1 && a.shape(0) == size, std::string(name) + " has the wrong shape");
    require(a.flags() & py::array::c_style, std::string(name) + " must be C-contiguous");
    if (is_double) require(has_dtype<double>(a), std::string(name) + " must be float64");
    return a.data();
}

// The graph operator and X, type-erased; dispatch() calls fn with the typed problem.
struct Args {
    py::array X, indptr, indices, data, t, s;
    double lam;
    std::optional<py::array> wa, wm;
    double c;
};

template <class T, class W, class Fn>
auto with_problem(const Args& a, Fn&& fn) {
    RecPCAProblem<T, W> p;
    p.n = a.X.shape(0);
    p.D = a.X.shape(1);
    p.X = static_cast<const T*>(a.X.data());
    ShiftedGraph<W>& g = p.graph;
    g.n = a.indptr.shape(0) - 1;
    require(g.n == p.n, "graph size does not match the number of rows of X");
    g.indptr = static_cast<const int64_t*>(a.indptr.data());
    const int64_t nnz = g.indptr[g.n];
    require(g.indptr[0] == 0 && nnz >= 0, "indptr must start at 0");
    g.indices = static_cast<const int32_t*>(checked_vector(a.indices, "indices", nnz, false));
    g.data = static_cast<const W*>(checked_vector(a.data, "data", nnz, false));
    g.t = static_cast<const double*>(checked_vector(a.t, "t", g.n, true));
    g.s = static_cast<const double*>(checked_vector(a.s, "s", g.n, true));
    g.lam = a.lam;
    if (a.wa) {
        require(a.wm.has_value(), "wa and wm go together");
        p.wa = static_cast<const double*>(checked_vector(*a.wa, "wa", g.n, true));
        p.wm = static_cast<const double*>(checked_vector(*a.wm, "wm", g.n, true));
        p.c = a.c;
    }
    return fn(p);
}

template <class Fn>
auto dispatch(const Args& a, Fn&& fn) {
    require(a.X.ndim() == 2, "X must be 2-D");
    require(a.X.flags() & py::array::c_style, "X must be C-contiguous");
    require(a.indptr.ndim() == 1 && has_dtype<int64_t>(a.indptr) && (a.indptr.flags() & py::array::c_style),
            "indptr must be a C-contiguous int64 vector");
    require(a.indptr.shape(0) >= 1, "indptr is empty");
    require(has_dtype<int32_t>(a.indices), "indices must be int32");
    const bool xf = has_dtype<float>(a.X), xd = has_dtype<double>(a.X);
    const bool wf = has_dtype<float>(a.data), wd = has_dtype<double>(a.data);
    require(xf || xd, "X must be float32 or float64");
    require(wf || wd, "graph weights must be float32 or float64");
    if (xf && wf) return with_problem<float, float>(a, fn);
    if (xf && wd) return with_problem<float, double>(a, fn);
    if (xd && wf) return with_problem<double, float>(a, fn);
    return with_problem<double, double>(a, fn);
}

py::dict result_dict(EigResult&& r) {
    py::dict d;
    d["eigenvalues"] = std::move(r.values);
    d["eigenvectors"] = std::move(r.vectors);
    d["mean"] = std::move(r.mean);
    d["n_iter"] = r.n_iter;
    d["n_matvec"] = r.n_matvec;
    d["nconv"] = r.nconv;
    d["converged"] = r.converged;
    return d;
}

}  // namespace

void register_recpca(py::module_& m) {
    m.def(
        "row_norms",
        [](py::array X, int n_threads) {
            require(X.ndim() == 2 && (X.flags() & py::array::c_style), "X must be a C-contiguous 2-D array");
            require(n_threads >= 1, "n_threads must be >= 1");
            const bool xf = has_dtype<float>(X);
            require(xf || has_dtype<double>(X), "X must be float32 or float64");
            const int64_t n = X.shape(0), D = X.shape(1);
            py::array_t<double> out(n);
            double* o = out.mutable_data();
            const void* x = X.data();
            call_without_gil([&] {
                if (xf) tfllmer::row_norms(static_cast<const float*>(x), n, D, o, n_threads);
                else tfllmer::row_norms(static_cast<const double*>(x), n, D, o, n_threads);
                return 0;
            });
            return out;
        },
        py::arg("X"), py::arg("n_threads"), "Euclidean row norms, accumulated in double (private).");

    m.def(
        "csr_max_asymmetry",
        [](py::array indptr, py::array indices, py::array data, int n_threads) {
            require(n_threads >= 1, "n_threads must be >= 1");
            require(indptr.ndim() == 1 && has_dtype<int64_t>(indptr) && (indptr.flags() & py::array::c_style),
                    "indptr must be a C-contiguous int64 vector");
            require(indptr.shape(0) >= 1, "indptr is empty");
            require(has_dtype<int32_t>(indices), "indices must be int32");
            const bool wf = has_dtype<float>(data);
            require(wf || has_dtype<double>(data), "graph weights must be float32 or float64");
            const int64_t n = indptr.shape(0) - 1;
            const int64_t* ip = static_cast<const int64_t*>(indptr.data());
            const int64_t nnz = ip[n];
            require(ip[0] == 0 && nnz >= 0, "indptr must start at 0");
            const int32_t* ix = static_cast<const int32_t*>(checked_vector(indices, "indices", nnz, false));
            const void* w = checked_vector(data, "data", nnz, false);
            return call_without_gil([&] {
                return wf ? csr_max_asymmetry(n, ip, ix, static_cast<const float*>(w), n_threads)
                          : csr_max_asymmetry(n, ip, ix, static_cast<const double*>(w), n_threads);
            });
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_threads"),
        "max |A_ij - A_ji| of a square CSR matrix with sorted column indices, without forming the "
        "transpose (private).");

    m.def(
        "recpca_fit",
        [](py::array X, py::array indptr, py::array indices, py::array data, py::array t, py::array s, double lam,
           std::optional<py::array> wa, std::optional<py::array> wm, double c, int64_t nev, int64_t ncv,
           int64_t max_iter, double tol, std::optional<Eigen::VectorXd> init, const std::string& solver,
           bool dense, int n_threads) {
            require(solver == "gram" || solver == "matrix_free", "solver must be 'gram' or 'matrix_free'");
            require(n_threads >= 1, "n_threads must be >= 1");
            Args a{X, indptr, indices, data, t, s, lam, wa, wm, c};
            require(X.ndim() == 2, "X must be 2-D");
            if (init) require(init->size() == X.shape(1), "init must have D entries");
            EigOptions opt;
            opt.nev = nev;
            opt.ncv = ncv;
            opt.max_iter = max_iter;
            opt.tol = tol;
            opt.init = init ? init->data() : nullptr;
            opt.dense = dense;
            const StopCheck stop = python_stop_check();
            // The typed problem is built with the GIL held (it touches Python objects);
            // only the kernels run without it.
            EigResult r = dispatch(a, [&](const auto& p) {
                return call_without_gil([&] {
                    check_graph_indices(p.graph);
                    return solver == "gram" ? recpca_fit_gram(p, opt, n_threads, stop)
                                            : recpca_fit_matrix_free(p, opt, n_threads, stop);
                });
            });
            return result_dict(std::move(r));
        },
        py::arg("X"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("t"), py::arg("s"),
        py::arg("lam"), py::arg("wa"), py::arg("wm"), py::arg("c"), py::arg("nev"), py::arg("ncv"),
        py::arg("max_iter"), py::arg("tol"), py::arg("init"), py::arg("solver"), py::arg("dense"),
        py::arg("n_threads"),
        "Top-nev eigenpairs of M = X^T T' X - a mu^T - mu a^T + c mu mu^T (private; see tfllmer_fast.RecPCA).");

    m.def(
        "recpca_gram",
        [](py::array X, py::array indptr, py::array indices, py::array data, py::array t, py::array s, double lam,
           std::optional<py::array> wa, std::optional<py::array> wm, double c, int n_threads) {
            require(n_threads >= 1, "n_threads must be >= 1");
            Args a{X, indptr, indices, data, t, s, lam, wa, wm, c};
            const StopCheck stop = python_stop_check();
            Eigen::VectorXd mu;
            Eigen::MatrixXd M = dispatch(a, [&](const auto& p) {
                return call_without_gil([&] {
                    check_graph_indices(p.graph);
                    return recpca_gram(p, n_threads, stop, &mu);
                });
            });
            return py::make_tuple(std::move(M), std::move(mu));
        },
        py::arg("X"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("t"), py::arg("s"),
        py::arg("lam"), py::arg("wa"), py::arg("wm"), py::arg("c"), py::arg("n_threads"),
        "The centred D x D matrix M and the mean X^T wm (private).");

    m.def(
        "recpca_eig",
        [](const Eigen::MatrixXd& M, int64_t nev, int64_t ncv, int64_t max_iter, double tol,
           std::optional<Eigen::VectorXd> init, bool dense, int n_threads) {
            require(n_threads >= 1, "n_threads must be >= 1");
            require(M.rows() == M.cols(), "M must be square");
            if (init) require(init->size() == M.rows(), "init must have D entries");
            EigOptions opt;
            opt.nev = nev;
            opt.ncv = ncv;
            opt.max_iter = max_iter;
            opt.tol = tol;
            opt.init = init ? init->data() : nullptr;
            opt.dense = dense;
            const StopCheck stop = python_stop_check();
            EigResult r = call_without_gil([&] { return eig_symmetric(M, opt, n_threads, stop); });
            r.mean = Eigen::VectorXd::Zero(M.rows());
            return result_dict(std::move(r));
        },
        py::arg("M"), py::arg("nev"), py::arg("ncv"), py::arg("max_iter"), py::arg("tol"), py::arg("init"),
        py::arg("dense"), py::arg("n_threads"),
        "Top-nev eigenpairs of a symmetric M given whole, as recpca_fit's Gram path solves it (private).");

    m.def(
        "shifted_graph_matmat",
        [](py::array X, py::array indptr, py::array indices, py::array data, py::array t, py::array s, double lam,
           int n_threads) {
            require(n_threads >= 1, "n_threads must be >= 1");
            Args a{X, indptr, indices, data, t, s, lam, std::nullopt, std::nullopt, 0.0};
            py::array Y(X.dtype(), {X.shape(0), X.shape(1)});
            void* out = Y.mutable_data();
            dispatch(a, [&](const auto& p) {
                using T = std::remove_const_t<std::remove_pointer_t<decltype(p.X)>>;
                return call_without_gil([&] {
                    check_graph_indices(p.graph);
                    shifted_graph_matmat(p.graph, p.X, p.D, static_cast<T*>(out), n_threads);
                    return 0;
                });
            });
            return Y;
        },
        py::arg("X"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("t"), py::arg("s"),
        py::arg("lam"), py::arg("n_threads"),
        "Y = (diag(t) + lam diag(s) A diag(s)) X with OpenMP (private).");
}
