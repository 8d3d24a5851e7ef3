// Row norms (see row_norms.hpp).
#include "row_norms.hpp"

#include <cmath>
#include <cstdint>

namespace tfllmer {
namespace {

// Sum of squares of one row in double. Sixteen independent partial sums let the compiler
// vectorise the loop (a single running sum cannot be reordered) and keep the summation
// order fixed, so the result does not depend on the thread count.
template <class T>
double row_squared_norm(const T* x, int64_t D) {
    constexpr int64_t L = 16;
    double part[L] = {};
    int64_t k = 0;
    for (; k + L <= D; k += L)
        for (int64_t l = 0; l < L; ++l) part[l] += double(x[k + l]) * double(x[k + l]);
    double sum = 0.0;
    for (; k < D; ++k) sum += double(x[k]) * double(x[k]);
    for (int64_t l = 0; l < L; ++l) sum += part[l];
    return sum;
}

}  // namespace

template <class T>
void row_norms(const T* X, int64_t n, int64_t D, double* out, int n_threads) {
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t i = 0; i < n; ++i) out[i] = std::sqrt(row_squared_norm(X + i * D, D));
}

template void row_norms<float>(const float*, int64_t, int64_t, double*, int);
template void row_norms<double>(const double*, int64_t, int64_t, double*, int);

}  // namespace tfllmer
