// Exact partial sums of the co-occurrence kernels and the row views the later phases read
// them through. Every entry is an exact integer (uint32/uint64 counts, 64.64 fixed point for
// 1/d), so no result depends on the order in which contributions arrive; weights become
// float32 only when a graph is finished.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cooccurrence_alloc.hpp"

namespace tfllmer::cooc_detail {

// 64.64 fixed point: 1/d is stored as floor(2^64 / d); sums of up to 2^63 terms cannot overflow.
using Fixed = unsigned __int128;

inline float to_float(uint32_t x) { return static_cast<float>(x); }
inline float to_float(uint64_t x) { return static_cast<float>(x); }
inline float to_float(Fixed x) {
    const double hi = static_cast<double>(static_cast<uint64_t>(x >> 64));
    const double lo = static_cast<double>(static_cast<uint64_t>(x)) * 0x1p-64;
    return static_cast<float>(hi + lo);
}

// Rows [row_begin, row_end) of a partial result, columns sorted within each row.
template <class Acc>
struct RowBlock {
    int64_t row_begin = 0, row_end = 0;
    std::vector<int64_t> ends;  // ends[r - row_begin]: one past row r's last entry
    BigVector<int32_t> cols;
    BigVector<Acc> vals;
};

// Read-only view of a row-wise result, whatever holds it (blocks or an accumulated CSR).
template <class Acc>
struct RowView {
    int64_t n = 0;
    bool upper = false;  // rows hold only their columns > row (the upper triangle)
    std::vector<const int32_t*> cols;
    std::vector<const Acc*> vals;
    std::vector<int64_t> len;
};

template <class Acc>
struct AccCsr {
    std::vector<int64_t> indptr;
    BigVector<int32_t> cols;
    BigVector<Acc> vals;
};

template <class Acc>
RowView<Acc> view_of(const std::vector<RowBlock<Acc>>& blocks, int64_t n, bool upper) {
    RowView<Acc> v;
    v.n = n;
    v.upper = upper;
    v.cols.assign(n, nullptr);
    v.vals.assign(n, nullptr);
    v.len.assign(n, 0);
    for (const auto& b : blocks) {
        int64_t begin = 0;
        for (int64_t r = b.row_begin; r < b.row_end; ++r) {
            const int64_t end = b.ends[r - b.row_begin];
            v.cols[r] = b.cols.data() + begin;
            v.vals[r] = b.vals.data() + begin;
            v.len[r] = end - begin;
            begin = end;
        }
    }
    return v;
}

// The accumulated sums of a counter always hold the upper triangle only.
template <class Acc>
RowView<Acc> view_of(const AccCsr<Acc>& a, int64_t n) {
    RowView<Acc> v;
    v.n = n;
    v.upper = true;
    v.cols.assign(n, nullptr);
    v.vals.assign(n, nullptr);
    v.len.assign(n, 0);
    if (a.indptr.empty()) return v;
    for (int64_t r = 0; r < n; ++r) {
        v.cols[r] = a.cols.data() + a.indptr[r];
        v.vals[r] = a.vals.data() + a.indptr[r];
        v.len[r] = a.indptr[r + 1] - a.indptr[r];
    }
    return v;
}

// Drops each row's columns <= row: the upper triangle of a full-row view.
template <class Acc>
void restrict_to_upper(RowView<Acc>& v) {
    if (v.upper) return;
    for (int64_t r = 0; r < v.n; ++r) {
        const int32_t* b = v.cols[r];
        const int64_t k = std::upper_bound(b, b + v.len[r], static_cast<int32_t>(r)) - b;
        v.cols[r] += k;
        v.vals[r] += k;
        v.len[r] -= k;
    }
    v.upper = true;
}

}  // namespace tfllmer::cooc_detail
