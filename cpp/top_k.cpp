// Row-wise top-k (see top_k.hpp).
#include "top_k.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace tfllmer {
namespace {

// Columns are read in blocks of this many: once the row's k best are known, a block whose
// maximum does not beat the k-th best is skipped after one vectorisable max (most blocks).
constexpr int64_t kBlock = 16;

// Insert (v, j) into the best-first list vals/cols of size m (m < k: grows; m == k: drops
// the last). Scanning columns in ascending order and moving an entry down only past
// strictly smaller values keeps equal scores in column order.
inline void insert(float v, int64_t j, float* vals, int64_t* cols, int64_t& m, int64_t k) {
    int64_t p = m < k ? m++ : k - 1;
    while (p > 0 && vals[p - 1] < v) {
        vals[p] = vals[p - 1];
        cols[p] = cols[p - 1];
        --p;
    }
    vals[p] = v;
    cols[p] = j;
}

void top_k_row(const float* s, int64_t n, int64_t k, float* vals, int64_t* cols) {
    int64_t m = 0;
    for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
        const int64_t end = std::min(n, j0 + kBlock);
        if (m == k && end - j0 == kBlock) {
            float mx = s[j0];
            for (int64_t q = 1; q < kBlock; ++q) mx = std::max(mx, s[j0 + q]);  // NaN never wins
            if (!(mx > vals[k - 1])) continue;
        }
        for (int64_t j = j0; j < end; ++j) {
            const float v = s[j];
            if (std::isnan(v)) continue;
            if (m < k || v > vals[k - 1]) insert(v, j, vals, cols, m, k);
        }
    }
    for (; m < k; ++m) {
        vals[m] = -std::numeric_limits<float>::infinity();
        cols[m] = -1;
    }
}

}  // namespace

void top_k_rows(const float* scores, int64_t rows, int64_t cols, int64_t ld, int64_t k, float* out_vals,
                int64_t* out_cols, int n_threads) {
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t r = 0; r < rows; ++r) top_k_row(scores + r * ld, cols, k, out_vals + r * k, out_cols + r * k);
}

}  // namespace tfllmer
