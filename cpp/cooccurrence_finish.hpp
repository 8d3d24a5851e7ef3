// Finishing exact co-occurrence sums into a float32 graph: round, drop weights < min_count,
// assemble the symmetric graph when only the upper triangle was counted, then the symmetric
// top-k.
#pragma once

#include <cstdint>
#include <vector>

#include "cancel.hpp"
#include "cooccurrence.hpp"
#include "cooccurrence_sums.hpp"

namespace tfllmer::cooc_detail {

// Instantiated for Acc = uint32_t, uint64_t and Fixed.
template <class Acc>
CoocGraph finish(const RowView<Acc>& v, const CoocFinish& f, int n_threads, const StopCheck& stop);

// The symmetric top-k rule split in two, so that it can run on row blocks of a graph held
// in pieces: the k-th heaviest entry of every row (ties: smaller column), then the filter
// of a block's rows against the statistics of every row of the whole graph.
struct TopKStats {
    std::vector<uint8_t> capped;   // row has more than top_k entries
    std::vector<float> kth_w;      // its k-th entry's weight
    std::vector<int32_t> kth_col;  // and column
};
struct TopKRef {
    const uint8_t* capped;
    const float* kth_w;
    const int32_t* kth_col;
};

// Statistics of g's rows (row r of g is row r of the result arrays).
TopKStats top_k_stats(const CoocGraph& g, int64_t top_k, int n_threads, const StopCheck& stop);
// Rows [row_begin, row_begin + g.n) of the whole graph; st indexed by global row.
CoocGraph filter_top_k(const CoocGraph& g, int64_t row_begin, const TopKRef& st, int n_threads,
                       const StopCheck& stop);

}  // namespace tfllmer::cooc_detail
