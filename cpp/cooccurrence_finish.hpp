// Finishing exact co-occurrence sums into a float32 graph: round, drop weights < min_count,
// assemble the symmetric graph when only the upper triangle was counted, then the symmetric
// top-k.
#pragma once

#include "cancel.hpp"
#include "cooccurrence.hpp"
#include "cooccurrence_sums.hpp"

namespace tfllmer::cooc_detail {

// Instantiated for Acc = uint32_t, uint64_t and Fixed.
template <class Acc>
CoocGraph finish(const RowView<Acc>& v, const CoocFinish& f, int n_threads, const StopCheck& stop);

}  // namespace tfllmer::cooc_detail
