// Row kernels of the co-occurrence count (see cooccurrence_rows.hpp): the per-thread scratch,
// the two row generators (position-aware full rows; whole-history upper-triangle rows over
// distinct items), and the parallel loop that cuts the rows into blocks of similar cost.
#include "cooccurrence_rows.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cooccurrence_parallel.hpp"
#include "cooccurrence_profile.hpp"

namespace tfllmer::cooc_detail {
namespace {

// How many occurrences ahead the row loops prefetch.
constexpr int64_t kAhead = 16;

// Per-thread dense accumulator for one row.
template <class Acc>
struct Scratch {
    std::vector<Acc> acc;
    std::vector<uint64_t> bits;
    std::vector<int64_t> mark;  // windowed binary: the last user that touched a column
    std::vector<int32_t> touched;
    bool ready = false;
    void init(int64_t n, bool marks) {
        if (ready) return;
        acc.assign(n, Acc(0));
        bits.assign((n + 63) / 64, 0);
        if (marks) mark.assign(n, -1);
        ready = true;
    }
    // Heavy rows flag columns in a bitmap (no branch), light rows keep a touched list.
    template <bool kBitmap>
    inline void add(int32_t j, Acc w) {
        if constexpr (kBitmap) {
            bits[j >> 6] |= uint64_t(1) << (j & 63);
        } else {
            if (acc[j] == Acc(0)) touched.push_back(j);
        }
        acc[j] += w;
    }
    // Appends the row's columns >= first_col except `row` to out, in order, and clears.
    template <bool kBitmap>
    void emit(RowBlock<Acc>& out, int64_t row, int64_t first_col) {
        auto take = [&](int32_t j) {
            const Acc v = acc[j];
            acc[j] = Acc(0);
            if (!mark.empty()) mark[j] = -1;
            if (j != row && j >= first_col) {
                out.cols.push_back(j);
                out.vals.push_back(v);
            }
        };
        if constexpr (kBitmap) {
            const int64_t n_words = static_cast<int64_t>(bits.size());
            for (int64_t w = first_col >> 6; w < n_words; ++w) {
                uint64_t x = bits[w];
                if (!x) continue;
                bits[w] = 0;
                do {
                    take(static_cast<int32_t>(w * 64 + __builtin_ctzll(x)));
                    x &= x - 1;
                } while (x);
            }
        } else {
            std::sort(touched.begin(), touched.end());
            for (int32_t j : touched) take(j);
            touched.clear();
        }
        out.ends.push_back(static_cast<int64_t>(out.cols.size()));
    }
};

// Full rows for the position-aware cases (a window, or 1/d weights): for each occurrence
// (u, p) of the row's item, every partner position q of user u.
template <CoocWeighting W, class Acc>
class WindowRows {
public:
    static constexpr bool kUpper = false;  // (for sizing: the work is that of full rows)
    static constexpr bool kMarks = W == CoocWeighting::Binary;

    // upper: emit only the columns > row (what a streaming counter keeps).
    WindowRows(const Chunk& c, const OccurrenceIndex& index, int64_t window, const std::vector<Fixed>& inv,
               bool upper)
        : c_(c), index_(index), window_(window), inv_(inv), upper_(upper) {}

    // Returns false when asked to give up (the partial state is thrown away then).
    template <bool kBitmap>
    bool row(int64_t row, Scratch<Acc>& s, RowBlock<Acc>& out, TaskContext& ctx) const {
        const Occurrence* occ = index_.occ.data();
        const int32_t* items = c_.items;
        const int64_t k_end = index_.start[row + 1];
        for (int64_t k = index_.start[row]; k < k_end; ++k) {
            if ((k & 63) == 0 && ctx.tick()) return false;
            if (k + kAhead < k_end) {
                __builtin_prefetch(items + std::max<int64_t>(occ[k + kAhead].pos - window_, 0));
                __builtin_prefetch(c_.offsets + occ[k + kAhead].tag);
            }
            const int64_t p = occ[k].pos, u = occ[k].tag;
            int64_t lo, hi;
            c_.range(u, lo, hi);
            if (window_ > 0) {
                lo = std::max(lo, p - window_);
                hi = std::min(hi, p + window_ + 1);
            }
            if constexpr (W == CoocWeighting::Count) {
                for (int64_t q = lo; q < hi; ++q) s.template add<kBitmap>(items[q], Acc(1));
            } else if constexpr (W == CoocWeighting::Binary) {
                for (int64_t q = lo; q < hi; ++q) {
                    const int32_t j = items[q];
                    if (s.mark[j] == u) continue;
                    s.mark[j] = u;
                    s.template add<kBitmap>(j, Acc(1));
                }
            } else {
                for (int64_t q = lo; q < p; ++q) s.template add<kBitmap>(items[q], inv_[p - q]);
                for (int64_t q = p + 1; q < hi; ++q) s.template add<kBitmap>(items[q], inv_[q - p]);
            }
        }
        s.template emit<kBitmap>(out, row, upper_ ? row + 1 : 0);
        return true;
    }

private:
    const Chunk& c_;
    const OccurrenceIndex& index_;
    int64_t window_;
    const std::vector<Fixed>& inv_;
    bool upper_;
};

// Upper-triangle rows for the whole history, count or binary: for each occurrence s of the
// row's item i in a user's sorted distinct items, the items after s (all > i).
template <CoocWeighting W, class Acc>
class WholeHistoryUpperRows {
public:
    static constexpr bool kUpper = true;
    static constexpr bool kMarks = false;

    WholeHistoryUpperRows(const DistinctChunk& d, const OccurrenceIndex& index) : d_(d), index_(index) {}

    template <bool kBitmap>
    bool row(int64_t row, Scratch<Acc>& s, RowBlock<Acc>& out, TaskContext& ctx) const {
        const Occurrence* occ = index_.occ.data();
        const int32_t* items = d_.items.data();
        const uint32_t* mult = d_.mult.data();
        const bool weighted = W == CoocWeighting::Count && d_.repeats;
        const int64_t k_end = index_.start[row + 1];
        for (int64_t k = index_.start[row]; k < k_end; ++k) {
            if ((k & 63) == 0 && ctx.tick()) return false;
            // Each occurrence jumps to another user: fetch a few ahead to overlap the misses.
            if (k + kAhead < k_end) {
                __builtin_prefetch(items + occ[k + kAhead].pos + 1);
                if (weighted) __builtin_prefetch(mult + occ[k + kAhead].pos);
            }
            const int64_t p = occ[k].pos, end = occ[k].tag;
            if (weighted) {
                const Acc m = mult[p];
                for (int64_t q = p + 1; q < end; ++q) s.template add<kBitmap>(items[q], static_cast<Acc>(m * mult[q]));
            } else {
                for (int64_t q = p + 1; q < end; ++q) s.template add<kBitmap>(items[q], 1);
            }
        }
        s.template emit<kBitmap>(out, row, row + 1);
        return true;
    }

private:
    const DistinctChunk& d_;
    const OccurrenceIndex& index_;
};

// The rows of one chunk as blocks, in parallel. `partners` estimates the updates per
// occurrence (to size the blocks and to pick each row's emission method).
template <class Rows, class Acc>
std::vector<RowBlock<Acc>> count_rows(const Rows& rows, const OccurrenceIndex& index, int64_t n, double partners,
                                      int n_threads, const StopCheck& stop) {
    const double n_words = static_cast<double>((n + 63) / 64);
    auto words = [&](int64_t i) { return Rows::kUpper ? n_words - static_cast<double>(i >> 6) : n_words; };
    auto updates = [&](int64_t i) { return static_cast<double>(index.start[i + 1] - index.start[i]) * partners; };
    double total_cost = 0;
    for (int64_t i = 0; i < n; ++i) total_cost += updates(i) + std::min(words(i), updates(i) * 8) / 8 + 1;
    const double target = std::max(1.0, total_cost / (64.0 * n_threads));
    std::vector<int64_t> block_start{0};
    double acc_cost = 0;
    for (int64_t i = 0; i < n; ++i) {
        acc_cost += updates(i) + std::min(words(i), updates(i) * 8) / 8 + 1;
        if (acc_cost >= target && i + 1 < n) {
            block_start.push_back(i + 1);
            acc_cost = 0;
        }
    }
    block_start.push_back(n);
    const int64_t n_blocks = static_cast<int64_t>(block_start.size()) - 1;

    std::vector<RowBlock<Acc>> blocks(n_blocks);
    std::vector<Scratch<Acc>> scratch(n_threads);
    run_tasks(n_threads, n_blocks, stop, [&](TaskContext& ctx, int64_t b) {
        Scratch<Acc>& s = scratch[ctx.thread];
        s.init(n, Rows::kMarks);
        RowBlock<Acc>& out = blocks[b];
        out.row_begin = block_start[b];
        out.row_end = block_start[b + 1];
        out.ends.reserve(out.row_end - out.row_begin);
        // Reserve an estimated upper bound: only the pages written are ever backed, while
        // growing by copies would touch (and zero) fresh memory again and again.
        double bound = 64;
        for (int64_t i = out.row_begin; i < out.row_end; ++i)
            bound += std::min(updates(i) * 1.25 + 16, static_cast<double>(n));
        out.cols.reserve(static_cast<size_t>(bound));
        out.vals.reserve(static_cast<size_t>(bound));
        for (int64_t i = out.row_begin; i < out.row_end; ++i) {
            const bool ok = updates(i) * 8 >= words(i) ? rows.template row<true>(i, s, out, ctx)
                                                       : rows.template row<false>(i, s, out, ctx);
            if (!ok || ctx.tick()) return;
        }
    });
    return blocks;
}

// Length statistics of the participating positions.
struct LengthStats {
    int64_t max_len = 0;
    double mean_partner_len = 0;  // length-weighted mean length
};

LengthStats length_stats(const Chunk& c) {
    LengthStats st;
    double sum_len = 0, sum_len2 = 0;
    for (int64_t u = 0; u < c.n_users; ++u) {
        int64_t lo, hi;
        c.range(u, lo, hi);
        const double l = static_cast<double>(hi - lo);
        sum_len += l;
        sum_len2 += l * l;
        st.max_len = std::max(st.max_len, hi - lo);
    }
    st.mean_partner_len = sum_len > 0 ? sum_len2 / sum_len : 0;
    return st;
}

}  // namespace

template <CoocWeighting W, class Acc>
ChunkSums<Acc> count_chunk(const CoocOptions& opt, const Chunk& c, bool upper_wanted, const StopCheck& stop) {
    const int64_t n = opt.n_items;
    const int n_threads = std::max(1, opt.n_threads);
    const LengthStats st = length_stats(c);
    ChunkSums<Acc> out;
    if constexpr (W != CoocWeighting::InverseDistance) {
        if (opt.window <= 0) {
            // Whole history, count or binary: half the work through the upper triangle.
            PhaseTimer timer;
            DistinctChunk d = distinct_items(c, n_threads, stop);
            timer.lap("distinct");
            const Chunk dc{d.begin.data(), c.n_users, d.items.data(), 0, d.ends.data()};
            OccurrenceIndex index = build_occurrences(dc, n, n_threads, OccurrenceTag::End, stop);
            throw_if_stopped(stop);
            timer.lap("index");
            WholeHistoryUpperRows<W, Acc> rows(d, index);
            out.blocks = count_rows<WholeHistoryUpperRows<W, Acc>, Acc>(rows, index, n, st.mean_partner_len / 2,
                                                                   n_threads, stop);
            timer.lap("rows");
            out.upper = true;
            return out;
        }
    }
    OccurrenceIndex index = build_occurrences(c, n, n_threads, OccurrenceTag::User, stop);
    throw_if_stopped(stop);
    double partners = st.mean_partner_len;
    if (opt.window > 0) partners = std::min(partners, 2.0 * static_cast<double>(opt.window) + 1);
    std::vector<Fixed> inv;
    if constexpr (W == CoocWeighting::InverseDistance) {
        const int64_t dmax = opt.window > 0 ? std::min(opt.window, st.max_len) : st.max_len;
        inv.assign(std::max<int64_t>(dmax, 0) + 1, 0);
        for (int64_t k = 1; k <= dmax; ++k) inv[k] = (Fixed(1) << 64) / static_cast<uint64_t>(k);
    }
    WindowRows<W, Acc> rows(c, index, opt.window, inv, upper_wanted);
    out.blocks = count_rows<WindowRows<W, Acc>, Acc>(rows, index, n, partners, n_threads, stop);
    out.upper = upper_wanted;
    return out;
}

template ChunkSums<uint32_t> count_chunk<CoocWeighting::Count, uint32_t>(const CoocOptions&, const Chunk&, bool,
                                                                       const StopCheck&);
template ChunkSums<uint64_t> count_chunk<CoocWeighting::Count, uint64_t>(const CoocOptions&, const Chunk&, bool,
                                                                       const StopCheck&);
template ChunkSums<uint32_t> count_chunk<CoocWeighting::Binary, uint32_t>(const CoocOptions&, const Chunk&, bool,
                                                                        const StopCheck&);
template ChunkSums<uint64_t> count_chunk<CoocWeighting::Binary, uint64_t>(const CoocOptions&, const Chunk&, bool,
                                                                        const StopCheck&);
template ChunkSums<Fixed> count_chunk<CoocWeighting::InverseDistance, Fixed>(const CoocOptions&, const Chunk&, bool,
                                                                           const StopCheck&);

}  // namespace tfllmer::cooc_detail
