// Partial co-occurrence sums: check, merge, mirror into row blocks, finish (see
// cooccurrence_partial.hpp).
#include "cooccurrence_partial.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cooccurrence_finish.hpp"
#include "cooccurrence_sums.hpp"

// Fixed-point entries travel as (low, high) 64-bit words, which is their memory layout here.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "partial sums assume a little-endian machine");

namespace tfllmer {
namespace {

using cooc_detail::Fixed;

template <class Acc>
inline Acc load(const uint64_t* v, int64_t k) {
    if constexpr (std::is_same_v<Acc, Fixed>)
        return (static_cast<Fixed>(v[2 * k + 1]) << 64) | static_cast<Fixed>(v[2 * k]);
    else
        return v[k];
}

template <class Acc>
inline void store(uint64_t* v, int64_t k, Acc x) {
    if constexpr (std::is_same_v<Acc, Fixed>) {
        v[2 * k] = static_cast<uint64_t>(x);
        v[2 * k + 1] = static_cast<uint64_t>(x >> 64);
    } else {
        v[k] = x;
    }
}

template <class F>
decltype(auto) by_words(int words, F&& f) {
    if (words == 1) return f(uint64_t{});
    if (words == 2) return f(Fixed{});
    throw std::invalid_argument("partial sums: words must be 1 or 2, got " + std::to_string(words));
}

template <class Acc>
CoocSums merge_typed(const std::vector<CoocSumsView>& parts, int n_threads) {
    const CoocSumsView& f = parts.front();
    const int64_t rows = f.rows(), k = static_cast<int64_t>(parts.size());
    CoocSums out;
    out.n = f.n;
    out.row_begin = f.row_begin;
    out.row_end = f.row_end;
    out.upper = f.upper;
    out.words = f.words;
    out.indptr.assign(rows + 1, 0);
    // Two passes over a k-way merge of each row: count the distinct columns, then write.
    auto merge_row = [&](int64_t r, std::vector<int64_t>& at, bool write, int64_t o) {
        for (int64_t p = 0; p < k; ++p) at[p] = parts[p].indptr[r];
        int64_t count = 0;
        while (true) {
            int32_t col = INT32_MAX;
            bool any = false;
            for (int64_t p = 0; p < k; ++p)
                if (at[p] < parts[p].indptr[r + 1]) {
                    col = std::min(col, parts[p].cols[at[p]]);
                    any = true;
                }
            if (!any) break;
            Acc sum = 0;
            for (int64_t p = 0; p < k; ++p)
                if (at[p] < parts[p].indptr[r + 1] && parts[p].cols[at[p]] == col) {
                    if (write) sum += load<Acc>(parts[p].vals, at[p]);
                    ++at[p];
                }
            if (write) {
                out.cols[o + count] = col;
                store<Acc>(out.vals.data(), o + count, sum);
            }
            ++count;
        }
        return count;
    };
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<int64_t> at(k);
#pragma omp for schedule(dynamic, 1024)
        for (int64_t r = 0; r < rows; ++r) out.indptr[r + 1] = merge_row(r, at, false, 0);
    }
    for (int64_t r = 0; r < rows; ++r) out.indptr[r + 1] += out.indptr[r];
    out.cols.resize(out.indptr[rows]);
    out.vals.resize(out.indptr[rows] * out.words);
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<int64_t> at(k);
#pragma omp for schedule(dynamic, 1024)
        for (int64_t r = 0; r < rows; ++r) merge_row(r, at, true, out.indptr[r]);
    }
    return out;
}

}  // namespace

CoocSumsView view_of(const CoocSums& s) {
    CoocSumsView v;
    v.n = s.n;
    v.row_begin = s.row_begin;
    v.row_end = s.row_end;
    v.upper = s.upper;
    v.words = s.words;
    v.indptr = s.indptr.data();
    v.cols = s.cols.data();
    v.vals = s.vals.data();
    return v;
}

void check_sums(const CoocSumsView& s, int n_threads) {
    if (s.words != 1 && s.words != 2) throw std::invalid_argument("partial sums: words must be 1 or 2");
    if (s.n < 0 || s.n > INT32_MAX || s.row_begin < 0 || s.row_begin > s.row_end || s.row_end > s.n)
        throw std::invalid_argument("partial sums: need 0 <= row_begin <= row_end <= n < 2^31");
    const int64_t rows = s.rows();
    if (s.indptr[0] != 0) throw std::invalid_argument("partial sums: indptr must start at 0");
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) bad += s.indptr[r + 1] < s.indptr[r];
    if (bad) throw std::invalid_argument("partial sums: indptr must be non-decreasing");
#pragma omp parallel for schedule(dynamic, 1024) reduction(+ : bad) num_threads(n_threads)
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = s.row_begin + r;
        const int64_t lo = s.upper ? row + 1 : 0;
        int64_t prev = lo - 1;
        for (int64_t k = s.indptr[r]; k < s.indptr[r + 1]; ++k) {
            const int64_t c = s.cols[k];
            bad += c <= prev || c >= s.n || c == row;
            prev = c;
        }
    }
    if (bad)
        throw std::invalid_argument("partial sums: column ids must lie in [0, n), increase within a row, "
                                    "skip the diagonal and lie above it in upper-triangle sums");
}

CoocSums merge_sums(const std::vector<CoocSumsView>& parts, int n_threads) {
    if (parts.empty()) throw std::invalid_argument("merge_sums: no partials");
    const CoocSumsView& f = parts.front();
    for (const auto& p : parts)
        if (p.n != f.n || p.row_begin != f.row_begin || p.row_end != f.row_end || p.upper != f.upper ||
            p.words != f.words)
            throw std::invalid_argument("merge_sums: partials must share n, rows, triangle and value type");
    return by_words(f.words, [&](auto acc) { return merge_typed<decltype(acc)>(parts, n_threads); });
}

std::vector<CoocSums> mirror_split(const CoocSumsView& s, const std::vector<int64_t>& bounds) {
    if (!s.upper) throw std::invalid_argument("mirror_split needs upper-triangle sums");
    const int64_t n = s.n, nb = static_cast<int64_t>(bounds.size()) - 1;
    if (nb < 1 || bounds.front() != 0 || bounds.back() != n || !std::is_sorted(bounds.begin(), bounds.end()))
        throw std::invalid_argument("mirror_split: bounds must rise from 0 to n");
    const int64_t rows = s.rows(), w = s.words;
    // Per destination row: its entry count, then its write cursor (local to its block).
    std::vector<int64_t> at(n, 0);
    for (int64_t k = 0; k < s.nnz(); ++k) ++at[s.cols[k]];
    auto own_len = [&](int64_t r) {
        return (r >= s.row_begin && r < s.row_end) ? s.indptr[r - s.row_begin + 1] - s.indptr[r - s.row_begin] : 0;
    };
    std::vector<CoocSums> out(nb);
    for (int64_t b = 0; b < nb; ++b) {
        CoocSums& o = out[b];
        o.n = n;
        o.row_begin = bounds[b];
        o.row_end = bounds[b + 1];
        o.upper = false;
        o.words = s.words;
        o.indptr.assign(o.row_end - o.row_begin + 1, 0);
        for (int64_t r = o.row_begin; r < o.row_end; ++r) {
            const int64_t lower = at[r];
            at[r] = o.indptr[r - o.row_begin];
            o.indptr[r - o.row_begin + 1] = at[r] + lower + own_len(r);
        }
        o.cols.resize(o.indptr.back());
        o.vals.resize(o.indptr.back() * w);
    }
    auto block_of = [&](int64_t r) { return std::upper_bound(bounds.begin(), bounds.end(), r) - bounds.begin() - 1; };
    // Mirrored entries, in order of their source row: each destination row stays sorted.
    for (int64_t r = 0; r < rows; ++r) {
        const int32_t src = static_cast<int32_t>(s.row_begin + r);
        for (int64_t k = s.indptr[r]; k < s.indptr[r + 1]; ++k) {
            const int32_t dst = s.cols[k];
            CoocSums& o = out[block_of(dst)];
            const int64_t pos = at[dst]++;
            o.cols[pos] = src;
            std::memcpy(o.vals.data() + pos * w, s.vals + k * w, sizeof(uint64_t) * w);
        }
    }
    // Own rows after their mirrored parts (columns > row > every mirrored column).
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = s.row_begin + r;
        CoocSums& o = out[block_of(row)];
        const int64_t pos = at[row], len = s.indptr[r + 1] - s.indptr[r];
        std::copy(s.cols + s.indptr[r], s.cols + s.indptr[r + 1], o.cols.begin() + pos);
        std::memcpy(o.vals.data() + pos * w, s.vals + s.indptr[r] * w, sizeof(uint64_t) * w * len);
    }
    return out;
}

CoocGraph finish_sums(const CoocSumsView& s, const CoocFinish& f, int n_threads, const StopCheck& stop) {
    if (s.upper && (s.row_begin != 0 || s.row_end != s.n))
        throw std::invalid_argument("finish_sums: upper-triangle sums must cover every row");
    if (!s.upper && f.top_k > 0)
        throw std::invalid_argument("finish_sums: top_k on a row block needs top_k_stats and filter_top_k");
    const int64_t rows = s.rows();
    return by_words(s.words, [&](auto acc) {
        using Acc = decltype(acc);
        cooc_detail::RowView<Acc> v;
        v.n = rows;
        v.upper = s.upper;
        v.cols.resize(rows);
        v.vals.resize(rows);
        v.len.resize(rows);
        cooc_detail::BigVector<Fixed> fixed;  // 16-byte aligned copy: numpy buffers are 8-aligned
        const Acc* vals;
        if constexpr (std::is_same_v<Acc, Fixed>) {
            fixed.resize(s.nnz());
            std::memcpy(static_cast<void*>(fixed.data()), s.vals, sizeof(Fixed) * s.nnz());
            vals = fixed.data();
        } else {
            vals = s.vals;
        }
        for (int64_t r = 0; r < rows; ++r) {
            v.cols[r] = s.cols + s.indptr[r];
            v.vals[r] = vals + s.indptr[r];
            v.len[r] = s.indptr[r + 1] - s.indptr[r];
        }
        return cooc_detail::finish(v, f, n_threads, stop);
    });
}

}  // namespace tfllmer
