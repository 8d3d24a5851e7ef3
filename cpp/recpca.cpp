// Rec-PCA solvers: the blocked Gram pass and the matrix-free Spectra operator.
#include "recpca.hpp"

#include <Eigen/Eigenvalues>
#include <Spectra/SymEigsSolver.h>
#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tfllmer {

namespace {

// Rows per block of the Gram pass: Y_R = (T' X)_R is a buffer of about 4M elements (16 MB in
// float32), X_R^T Y_R is then a product with inner dimension in the thousands, which keeps
// Eigen's GEMM near its peak while Y never has to exist for all n rows.
int64_t gram_block_rows(int64_t n, int64_t D) {
    const int64_t b = std::clamp<int64_t>((int64_t(1) << 22) / std::max<int64_t>(D, 1), 256, 8192);
    return std::min(b, n);
}

// Width of the square tiles of M that threads compute independently. It depends on D only,
// so the summation order (and the result, bit for bit) does not depend on the thread count.
int64_t gram_tile_width(int64_t D) { return D >= 1024 ? 256 : (D >= 256 ? 128 : 64); }

// Eigen parallelises a GEMM itself when it sees an OpenMP team of one thread, and then picks
// other blocking sizes (other rounding): keep it serial while the tiles run, so M is the same
// bit for bit whatever n_threads is. Restores Eigen's default (all OpenMP threads) after.
struct EigenSerialGemm {
    EigenSerialGemm() { Eigen::setNbThreads(1); }
    ~EigenSerialGemm() { Eigen::setNbThreads(0); }
};

// Spectra's operator for a dense symmetric matrix stored whole (both triangles): y_i is
// column i dotted with x, split over the threads. M (8 MB at D = 1024) is re-read from
// memory for every product, which two threads do in about half the time; below D = 256 a
// product is too short to be worth waking them. Every y_i is one dot product in a fixed
// order, so the result does not depend on the thread count. Checks for Ctrl-C every few
// products (it runs on the calling thread).
struct DenseSymOp {
    using Scalar = double;
    const Eigen::MatrixXd& M;
    int n_threads;
    const StopCheck& stop;
    mutable int64_t calls = 0;

    Eigen::Index rows() const { return M.rows(); }
    Eigen::Index cols() const { return M.cols(); }
    void perform_op(const double* x_in, double* y_out) const {
        if ((++calls & 15) == 0) throw_if_stopped(stop);
        const Eigen::Index D = M.cols();
        Eigen::Map<const Eigen::VectorXd> x(x_in, D);
#pragma omp parallel for schedule(static) num_threads(n_threads) if (D >= 256)
        for (Eigen::Index i = 0; i < D; ++i) y_out[i] = M.col(i).dot(x);
    }
};

// v -> M v = X^T T' (X v) - a (mu.v) - mu (a.v) + c mu (mu.v), never forming M or X_c.
template <class T, class W>
struct MatrixFreeOp {
    using Scalar = double;
    const RecPCAProblem<T, W>& p;
    const Eigen::VectorXd& a;
    const Eigen::VectorXd& mu;
    int n_threads;
    const StopCheck& stop;
    mutable Eigen::VectorXd z, w;
    mutable Eigen::MatrixXd partial;  // D x n_threads: per-thread sums of X^T w

    MatrixFreeOp(const RecPCAProblem<T, W>& p_, const Eigen::VectorXd& a_, const Eigen::VectorXd& mu_,
                 int nt, const StopCheck& stop_)
        : p(p_), a(a_), mu(mu_), n_threads(nt), stop(stop_), z(p_.n), w(p_.n), partial(p_.D, nt) {}

    Eigen::Index rows() const { return p.D; }
    Eigen::Index cols() const { return p.D; }

    void perform_op(const double* x_in, double* y_out) const {
        throw_if_stopped(stop);
        const int64_t n = p.n, D = p.D;
        ConstRowMap<T> X(p.X, n, D);
        Eigen::Map<const Eigen::VectorXd> v(x_in, D);
        Eigen::Map<Eigen::VectorXd> y(y_out, D);
        // Both streams over X convert its entries to double on the fly: the operator is then
        // exact to double rounding for float32 X too, so Spectra's tolerance stays reachable.
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int64_t i = 0; i < n; ++i) z[i] = X.row(i).template cast<double>().dot(v.transpose());
        shifted_graph_vector(p.graph, z.data(), w.data(), n_threads);
        partial.setZero();
#pragma omp parallel num_threads(n_threads)
        {
            auto acc = partial.col(omp_get_thread_num());
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; ++i)
                if (w[i] != 0.0) acc.noalias() += w[i] * X.row(i).transpose().template cast<double>();
        }
        y = partial.rowwise().sum();
        if (p.wa) {
            const double mv = mu.dot(v), av = a.dot(v);
            y -= a * mv + mu * av - p.c * mv * mu;
        }
    }
};

// X^T [w0 w1] in one parallel pass (double accumulation), for the centring vectors.
template <class T>
std::pair<Eigen::VectorXd, Eigen::VectorXd> weighted_column_sums(const ConstRowMap<T>& X, const double* w0,
                                                                  const double* w1, int n_threads) {
    const int64_t n = X.rows(), D = X.cols();
    Eigen::MatrixXd part0 = Eigen::MatrixXd::Zero(D, n_threads), part1 = Eigen::MatrixXd::Zero(D, n_threads);
#pragma omp parallel num_threads(n_threads)
    {
        const int tid = omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            const Eigen::VectorXd row = X.row(i).transpose().template cast<double>();
            part0.col(tid) += w0[i] * row;
            part1.col(tid) += w1[i] * row;
        }
    }
    return {part0.rowwise().sum(), part1.rowwise().sum()};
}

void check_problem(int64_t n, int64_t D, int64_t graph_n) {
    if (n < 1 || D < 1) throw std::invalid_argument("X must have at least one row and one column");
    if (graph_n != n) throw std::invalid_argument("graph size does not match the number of rows of X");
}

}  // namespace

template <class T, class W>
Eigen::MatrixXd recpca_gram(const RecPCAProblem<T, W>& p, int n_threads, const StopCheck& stop,
                            Eigen::VectorXd* mu_out) {
    check_problem(p.n, p.D, p.graph.n);
    const int64_t n = p.n, D = p.D;
    const bool center = p.wa != nullptr;
    ConstRowMap<T> X(p.X, n, D);
    const int64_t B = gram_block_rows(n, D);
    const int64_t bw = gram_tile_width(D);
    const int64_t nb = (D + bw - 1) / bw;
    std::vector<std::pair<int64_t, int64_t>> tiles;  // (I, J), I >= J: the lower triangle
    for (int64_t I = 0; I < nb; ++I)
        for (int64_t J = 0; J <= I; ++J) tiles.emplace_back(I, J);
    // Full tiles first, the half-cost diagonal ones last: better load balance.
    std::stable_sort(tiles.begin(), tiles.end(),
                     [](auto& x, auto& y) { return (x.first != x.second) > (y.first != y.second); });
    const int64_t col_chunk = 64, n_col_chunks = (D + col_chunk - 1) / col_chunk;

    Eigen::MatrixXd M = Eigen::MatrixXd::Zero(D, D);
    Eigen::VectorXd a = Eigen::VectorXd::Zero(D), mu = Eigen::VectorXd::Zero(D);
    RowMajor<T> Y(B, D);
    ParallelErrors errors;
    const EigenSerialGemm serial_gemm;

    for (int64_t r0 = 0; r0 < n; r0 += B) {
        throw_if_stopped(stop);
        const int64_t rows = std::min(B, n - r0);
        const auto XR = X.middleRows(r0, rows);
        const auto YR = Y.topRows(rows);
#pragma omp parallel num_threads(n_threads)
        {
#pragma omp for schedule(dynamic, 32)
            for (int64_t i = 0; i < rows; ++i)
                errors.run([&] { shifted_graph_row<T, W>(p.graph, X, r0 + i, Y.row(i).data()); });
            if (center) {
#pragma omp for schedule(static) nowait
                for (int64_t cc = 0; cc < n_col_chunks; ++cc) {
                    const int64_t c0 = cc * col_chunk, w = std::min(col_chunk, D - c0);
                    for (int64_t i = 0; i < rows; ++i) {
                        const auto seg = XR.row(i).segment(c0, w).transpose().template cast<double>();
                        a.segment(c0, w) += p.wa[r0 + i] * seg;
                        mu.segment(c0, w) += p.wm[r0 + i] * seg;
                    }
                }
            }
            Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> tile;
#pragma omp for schedule(dynamic, 1)
            for (size_t k = 0; k < tiles.size(); ++k) {
                errors.run([&] {
                    const int64_t I = tiles[k].first, J = tiles[k].second;
                    const int64_t i0 = I * bw, j0 = J * bw;
                    const int64_t wi = std::min(bw, D - i0), wj = std::min(bw, D - j0);
                    // Inside a parallel region Eigen's GEMM runs single-threaded.
                    if (I == J) {
                        tile.setZero(wi, wj);
                        tile.template triangularView<Eigen::Lower>() =
                            XR.middleCols(i0, wi).transpose() * YR.middleCols(j0, wj);
                        M.block(i0, j0, wi, wj).template triangularView<Eigen::Lower>() +=
                            tile.template cast<double>();
                    } else {
                        tile.noalias() = XR.middleCols(i0, wi).transpose() * YR.middleCols(j0, wj);
                        M.block(i0, j0, wi, wj) += tile.template cast<double>();
                    }
                });
            }
        }
        errors.rethrow();
    }
    throw_if_stopped(stop);
    if (center) {
        // Lower triangle only; mirrored below.
        for (int64_t j = 0; j < D; ++j)
            for (int64_t i = j; i < D; ++i) M(i, j) += -a[i] * mu[j] - mu[i] * a[j] + p.c * mu[i] * mu[j];
    }
    M.triangularView<Eigen::StrictlyUpper>() = M.transpose();
    if (mu_out) *mu_out = mu;
    return M;
}

// Top-nev eigenpairs by largest algebraic eigenvalue with Spectra's Lanczos solver, for any
// operator (the dense Gram matrix or the matrix-free product): one place for the settings.
template <class Op>
EigResult run_lanczos(Op& op, const EigOptions& opt) {
    Spectra::SymEigsSolver<Op> eigs(op, opt.nev, opt.ncv);
    if (opt.init) eigs.init(opt.init); else eigs.init();
    EigResult res;
    res.nconv = eigs.compute(Spectra::SortRule::LargestAlge, opt.max_iter, opt.tol, Spectra::SortRule::LargestAlge);
    res.converged = eigs.info() == Spectra::CompInfo::Successful;
    res.n_iter = eigs.num_iterations();
    res.n_matvec = eigs.num_operations();
    if (res.converged) {
        res.values = eigs.eigenvalues();
        res.vectors = eigs.eigenvectors();
    }
    return res;
}

EigResult eig_symmetric(const Eigen::MatrixXd& M, const EigOptions& opt, int n_threads, const StopCheck& stop) {
    const int64_t D = M.rows();
    if (opt.nev < 1 || opt.nev > D) throw std::invalid_argument("n_components must lie in 1..D");
    EigResult res;
    if (opt.dense || opt.nev >= D) {
        Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(M);
        if (es.info() != Eigen::Success) throw std::runtime_error("dense symmetric eigensolver failed");
        res.values = es.eigenvalues().tail(opt.nev).reverse();
        res.vectors = es.eigenvectors().rightCols(opt.nev).rowwise().reverse();
        res.nconv = opt.nev;
        return res;
    }
    if (!(opt.ncv > opt.nev && opt.ncv <= D)) throw std::invalid_argument("ncv must satisfy n_components < ncv <= D");
    DenseSymOp op{M, n_threads, stop};
    return run_lanczos(op, opt);
}

template <class T, class W>
EigResult recpca_fit_gram(const RecPCAProblem<T, W>& p, const EigOptions& opt, int n_threads,
                          const StopCheck& stop) {
    Eigen::VectorXd mu;
    const Eigen::MatrixXd M = recpca_gram(p, n_threads, stop, &mu);
    EigResult res = eig_symmetric(M, opt, n_threads, stop);
    res.mean = mu;
    return res;
}

template <class T, class W>
EigResult recpca_fit_matrix_free(const RecPCAProblem<T, W>& p, const EigOptions& opt, int n_threads,
                                 const StopCheck& stop) {
    check_problem(p.n, p.D, p.graph.n);
    if (!(opt.ncv > opt.nev && opt.ncv <= p.D))
        throw std::invalid_argument("ncv must satisfy n_components < ncv <= D");
    ConstRowMap<T> X(p.X, p.n, p.D);
    Eigen::VectorXd a = Eigen::VectorXd::Zero(p.D), mu = Eigen::VectorXd::Zero(p.D);
    if (p.wa) std::tie(a, mu) = weighted_column_sums(X, p.wa, p.wm, n_threads);
    throw_if_stopped(stop);
    MatrixFreeOp<T, W> op(p, a, mu, n_threads, stop);
    EigResult res = run_lanczos(op, opt);
    res.mean = mu;
    return res;
}

template <class T, class W>
void shifted_graph_matmat(const ShiftedGraph<W>& g, const T* X, int64_t D, T* Y, int n_threads) {
    ConstRowMap<T> Xm(X, g.n, D);
    ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 64) num_threads(n_threads)
    for (int64_t i = 0; i < g.n; ++i) errors.run([&] { shifted_graph_row<T, W>(g, Xm, i, Y + i * D); });
    errors.rethrow();
}

#define TFLLMER_INSTANTIATE(T, W)                                                                        \
    template Eigen::MatrixXd recpca_gram<T, W>(const RecPCAProblem<T, W>&, int, const StopCheck&,        \
                                                Eigen::VectorXd*);                                       \
    template EigResult recpca_fit_gram<T, W>(const RecPCAProblem<T, W>&, const EigOptions&, int,         \
                                             const StopCheck&);                                          \
    template EigResult recpca_fit_matrix_free<T, W>(const RecPCAProblem<T, W>&, const EigOptions&, int,  \
                                                    const StopCheck&);                                   \
    template void shifted_graph_matmat<T, W>(const ShiftedGraph<W>&, const T*, int64_t, T*, int);

TFLLMER_INSTANTIATE(float, float)
TFLLMER_INSTANTIATE(float, double)
TFLLMER_INSTANTIATE(double, float)
TFLLMER_INSTANTIATE(double, double)

}  // namespace tfllmer
