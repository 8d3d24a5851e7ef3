// Euclidean norms of the rows of a dense matrix, accumulated in double (no Python here):
// what Rec-PCA's unit-norm row scaling and the embedding normalisation divide by.
#pragma once

#include <cstdint>

namespace tfllmer {

// out[i] = ||X.row(i)|| for the n x D row-major X; bitwise the same for any n_threads.
// Instantiated for T = float and double.
template <class T>
void row_norms(const T* X, int64_t n, int64_t D, double* out, int n_threads);

}  // namespace tfllmer
