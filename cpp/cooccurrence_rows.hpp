// The rows of one co-occurrence chunk as exact partial sums: a row-wise (Gustavson) sparse
// product that never forms the user-item matrix. For each occurrence (u, p) of the row's item,
// the weight of every partner position q of user u goes into a dense per-thread accumulator;
// the row is then emitted in column order.
#pragma once

#include <vector>

#include "cancel.hpp"
#include "cooccurrence.hpp"
#include "cooccurrence_index.hpp"
#include "cooccurrence_sums.hpp"

namespace tfllmer::cooc_detail {

// Exact partial sums of one chunk as row blocks, and whether they hold only the upper triangle.
template <class Acc>
struct ChunkSums {
    std::vector<RowBlock<Acc>> blocks;
    bool upper = false;
};

// Exact sums of chunk c under opt (n_items, window, n_threads; c carries max_history).
// upper_wanted: the caller only needs the upper triangle (a streaming update). Instantiated
// for the accumulators the entry points use: W = Count or Binary with uint32_t or uint64_t,
// W = InverseDistance with Fixed.
template <CoocWeighting W, class Acc>
ChunkSums<Acc> count_chunk(const CoocOptions& opt, const Chunk& c, bool upper_wanted, const StopCheck& stop);

}  // namespace tfllmer::cooc_detail
