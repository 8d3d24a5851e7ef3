// Exact partial co-occurrence sums that can leave the process: the state of a counter, or
// a row range of it, as plain arrays. Because every entry is an exact integer (uint64
// counts, 64.64 fixed point for 1/d), partials counted on any split of the users and merged
// in any order finish into the same float32 graph, bit for bit (no Python in here).
#pragma once

#include <cstdint>
#include <vector>

#include "cancel.hpp"
#include "cooccurrence.hpp"

namespace tfllmer {

// Rows [row_begin, row_end) of the sums of an n x n graph: CSR with global column ids,
// strictly increasing within a row. words = 1: uint64 counts ("count", "binary"); words = 2:
// 64.64 fixed point ("inverse_distance"), the low then the high 64 bits of each entry.
struct CoocSums {
    int64_t n = 0, row_begin = 0, row_end = 0;
    bool upper = true;  // rows hold only their columns > row (a counter's storage)
    int words = 1;
    std::vector<int64_t> indptr;  // row_end - row_begin + 1 entries, starting at 0
    cooc_detail::BigVector<int32_t> cols;
    cooc_detail::BigVector<uint64_t> vals;  // words per entry
};

// The same, over arrays owned by someone else (numpy buffers).
struct CoocSumsView {
    int64_t n = 0, row_begin = 0, row_end = 0;
    bool upper = true;
    int words = 1;
    const int64_t* indptr = nullptr;
    const int32_t* cols = nullptr;
    const uint64_t* vals = nullptr;

    int64_t rows() const { return row_end - row_begin; }
    int64_t nnz() const { return indptr[rows()]; }
};

CoocSumsView view_of(const CoocSums& s);

// Throws std::invalid_argument unless s is well formed: 0 <= row_begin <= row_end <= n,
// indptr starts at 0 and never decreases, columns lie in [0, n), increase strictly within a
// row, and lie above the row when s.upper. One pass over the entries.
void check_sums(const CoocSumsView& s, int n_threads);

// Entry-wise sum of partials over the same rows, n, triangle and words (checked).
CoocSums merge_sums(const std::vector<CoocSumsView>& parts, int n_threads);

// From upper-triangle sums, the full rows (both triangles) of each block
// [bounds[b], bounds[b + 1]) that these sums contribute to: row r gets the mirrored entries
// (i, r), i < r, of every row i held, then its own row when held. bounds run from 0 to n.
std::vector<CoocSums> mirror_split(const CoocSumsView& s, const std::vector<int64_t>& bounds);

// Float32 rows from exact sums, dropping weights < min_count. Upper-triangle sums must cover
// every row and give the whole symmetric graph (then top_k applies too, as for a counter);
// full rows give those rows only (g.n = rows, global columns) and need top_k = 0: the top-k
// rule of a block needs the other blocks' statistics (top_k_stats / filter_top_k).
CoocGraph finish_sums(const CoocSumsView& s, const CoocFinish& f, int n_threads, const StopCheck& stop);

}  // namespace tfllmer
