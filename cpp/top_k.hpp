// The k best entries of every row of a score matrix (no Python here): what serving ranks
// items by, in one pass over the scores instead of torch.topk and two sorts.
#pragma once

#include <cstdint>

namespace tfllmer {

// For the rows x cols row-major `scores` (row stride `ld` floats), out_vals / out_cols
// (rows x k, row-major) get each row's k best entries under the total order "score
// descending, column ascending" (equal scores go to the smaller column). NaN is never
// chosen; a row with fewer than k non-NaN entries is padded with -inf and column -1.
// Requires 1 <= k and ld >= cols. The result does not depend on n_threads.
void top_k_rows(const float* scores, int64_t rows, int64_t cols, int64_t ld, int64_t k, float* out_vals,
                int64_t* out_cols, int n_threads);

}  // namespace tfllmer
