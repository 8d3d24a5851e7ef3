// Sparse graph operators applied to dense rows, parallel with OpenMP (no Python here).
//
// Rec-PCA needs T X for T = I - lam L and a dense n x D matrix X. Every variant it uses
// (normalised or combinatorial Laplacian, rows of X rescaled to unit norm on the fly) is of
// the form
//     T' = diag(t) + lam * diag(s) A diag(s)
// with A the symmetric co-occurrence graph in CSR form and t, s per-item vectors prepared by
// the caller. Folding the row scaling into t and s lets the kernels read X as given (float32
// or float64, read-only or memory-mapped) without a normalised copy.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>

namespace tfllmer {

// Neighbour rows accumulated together by the Gram pass's sparse product (see below).
constexpr int kGatherWay = 8;

template <class W>
struct ShiftedGraph {
    int64_t n = 0;
    const int64_t* indptr = nullptr;  // n + 1 entries
    const int32_t* indices = nullptr;
    const W* data = nullptr;
    const double* t = nullptr;  // diagonal term, n entries
    const double* s = nullptr;  // symmetric scaling of A, n entries
    double lam = 0.0;
};

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMajor<T>>;

// Y.row(i - begin) = (T' X).row(i) for i in [begin, end). Called inside a parallel region by
// the caller's worksharing loop, or serially.
template <class T, class W>
inline void shifted_graph_row(const ShiftedGraph<W>& g, const ConstRowMap<T>& X, int64_t i,
                              T* y_out) {
    const Eigen::Index D = X.cols();
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> y(y_out, D);
    y.noalias() = T(g.t[i]) * X.row(i);
    const double si = g.lam * g.s[i];
    if (si == 0.0) return;
    const int64_t end = g.indptr[i + 1];
    // The neighbours' rows are scattered over X and each costs a trip to memory. Summing
    // kGatherWay of them in one sweep over the columns keeps that many independent miss
    // streams in flight (a row at a time, the core waits on one); 1.3x faster on the
    // 200k x 1024 benchmark, 8 rows being the best of 1, 4, 8, 16 there. The additions
    // into each y[k] still happen in neighbour order.
    constexpr int K = kGatherWay;
    const T* Xd = X.data();
    int64_t p = g.indptr[i];
    for (; p + K <= end; p += K) {
        const T* x[K];
        T w[K];
        for (int q = 0; q < K; ++q) {
            const int32_t j = g.indices[p + q];
            x[q] = Xd + int64_t(j) * D;
            w[q] = T(si * double(g.data[p + q]) * g.s[j]);
        }
        for (Eigen::Index k = 0; k < D; ++k) {
            T acc = y_out[k];
#pragma GCC unroll 8
            for (int q = 0; q < K; ++q) acc += w[q] * x[q][k];
            y_out[k] = acc;
        }
    }
    for (; p < end; ++p) {
        const int32_t j = g.indices[p];
        y.noalias() += T(si * double(g.data[p]) * g.s[j]) * X.row(j);
    }
}

// w = T' z for n-vectors (the graph part of a matrix-free product), in double.
template <class W>
inline void shifted_graph_vector(const ShiftedGraph<W>& g, const double* z, double* w, int n_threads) {
#pragma omp parallel for schedule(dynamic, 1024) num_threads(n_threads)
    for (int64_t i = 0; i < g.n; ++i) {
        double acc = 0.0;
        const double si = g.lam * g.s[i];
        if (si != 0.0) {
            for (int64_t p = g.indptr[i]; p < g.indptr[i + 1]; ++p) {
                const int32_t j = g.indices[p];
                acc += double(g.data[p]) * g.s[j] * z[j];
            }
        }
        w[i] = g.t[i] * z[i] + si * acc;
    }
}

// Throws std::invalid_argument unless g.indptr is non-decreasing and every column index lies
// in [0, n): the kernels above index X and s by them unchecked. A pass over the graph, so
// callers run it without the GIL.
template <class W>
void check_graph_indices(const ShiftedGraph<W>& g) {
    const int32_t* idx = g.indices;
    const int64_t m = g.indptr[g.n], n = g.n;
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok &= g.indptr[i] <= g.indptr[i + 1];
    if (!ok) throw std::invalid_argument("indptr must be non-decreasing");
    for (int64_t k = 0; k < m; ++k) ok &= (idx[k] >= 0) & (idx[k] < n);
    if (!ok) throw std::invalid_argument("graph column indices out of range");
}

// max |A_ij - A_ji| over the stored entries of a square CSR matrix whose rows have sorted,
// duplicate-free column indices (checked: the binary search below needs them); an entry
// without its mirror counts in full. Each entry finds its mirror by binary search in row j,
// so no transpose is ever built.
template <class W>
double csr_max_asymmetry(int64_t n, const int64_t* indptr, const int32_t* indices, const W* data,
                         int n_threads) {
    for (int64_t i = 0; i < n; ++i)
        if (indptr[i] > indptr[i + 1]) throw std::invalid_argument("indptr must be non-decreasing");
    bool in_range = true, sorted = true;
#pragma omp parallel for schedule(static) reduction(&& : in_range, sorted) num_threads(n_threads)
    for (int64_t i = 0; i < n; ++i)
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            in_range = in_range && indices[p] >= 0 && indices[p] < n;
            sorted = sorted && (p == indptr[i] || indices[p] > indices[p - 1]);
        }
    if (!in_range) throw std::invalid_argument("graph column indices out of range");
    if (!sorted) throw std::invalid_argument("graph rows must have sorted column indices without duplicates");
    double worst = 0.0;
#pragma omp parallel for schedule(dynamic, 1024) reduction(max : worst) num_threads(n_threads)
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const int64_t j = indices[p];
            const int32_t* begin = indices + indptr[j];
            const int32_t* end = indices + indptr[j + 1];
            const int32_t* q = std::lower_bound(begin, end, int32_t(i));
            const double mirror = (q != end && *q == i) ? double(data[indptr[j] + (q - begin)]) : 0.0;
            worst = std::max(worst, std::abs(double(data[p]) - mirror));
        }
    }
    return worst;
}

// Exceptions must not escape an OpenMP region: remember the first one and rethrow it on
// the calling thread once the region has ended.
class ParallelErrors {
  public:
    template <class Fn>
    void run(Fn&& fn) noexcept {
        try {
            fn();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!error_) error_ = std::current_exception();
        }
    }
    void rethrow() {
        if (error_) std::rethrow_exception(error_);
    }

  private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

}  // namespace tfllmer
