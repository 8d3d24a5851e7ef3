// Rec-PCA: top eigenvectors of M = X_c^T T' X_c (no Python here).
//
// The caller prepares the graph operator T' = diag(t) + lam diag(s) A diag(s) (see
// graph_ops.hpp; it already contains the Laplacian kind, lam and the unit-norm row scaling)
// and the centring data. With a = X^T wa, mu = X^T wm and c = 1^T T 1 the centred matrix is
//     M = X^T T' X - a mu^T - mu a^T + c mu mu^T,
// i.e. centring enters as a rank-2 correction and X_c is never formed.
#pragma once

#include <Eigen/Core>

#include <cstdint>

#include "cancel.hpp"
#include "graph_ops.hpp"

namespace tfllmer {

template <class T, class W>
struct RecPCAProblem {
    const T* X = nullptr;  // n x D, row-major
    int64_t n = 0;
    int64_t D = 0;
    ShiftedGraph<W> graph;
    const double* wa = nullptr;  // a = X^T wa (n entries); null when not centring
    const double* wm = nullptr;  // mu = X^T wm (n entries); null when not centring
    double c = 0.0;
};

struct EigOptions {
    int64_t nev = 1;
    int64_t ncv = 0;
    int64_t max_iter = 1000;
    double tol = 1e-10;
    const double* init = nullptr;  // optional start vector (D entries)
    bool dense = false;            // full dense eigendecomposition instead of Spectra
};

struct EigResult {
    Eigen::VectorXd values;   // descending
    Eigen::MatrixXd vectors;  // D x nconv
    Eigen::VectorXd mean;     // mu (zeros when not centring)
    int64_t n_iter = 0;       // Spectra restarts (0 for the dense solver)
    int64_t n_matvec = 0;     // operator applications
    int64_t nconv = 0;
    bool converged = true;
};

// The full symmetric M (D x D, double) by the blocked Gram pass; mu receives X^T wm.
template <class T, class W>
Eigen::MatrixXd recpca_gram(const RecPCAProblem<T, W>& p, int n_threads, const StopCheck& stop,
                            Eigen::VectorXd* mu = nullptr);

// Top-nev eigenpairs of a symmetric matrix given whole, both triangles (Spectra, or dense
// when opt.dense).
EigResult eig_symmetric(const Eigen::MatrixXd& M, const EigOptions& opt, int n_threads, const StopCheck& stop);

template <class T, class W>
EigResult recpca_fit_gram(const RecPCAProblem<T, W>& p, const EigOptions& opt, int n_threads,
                          const StopCheck& stop);

template <class T, class W>
EigResult recpca_fit_matrix_free(const RecPCAProblem<T, W>& p, const EigOptions& opt, int n_threads,
                                 const StopCheck& stop);

// Y = T' X (n x D, same precision as X): the sparse x dense kernel on its own.
template <class T, class W>
void shifted_graph_matmat(const ShiftedGraph<W>& g, const T* X, int64_t D, T* Y, int n_threads);

}  // namespace tfllmer
