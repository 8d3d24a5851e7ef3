// Co-occurrence counting: a row-wise (Gustavson) sparse product that never forms the
// user-item matrix.
//
// 1. Occurrence index: for every item i, the positions (and users) where it occurs, in user
//    order (a parallel counting sort; only the most recent max_history positions of a user).
// 2. Rows of A in parallel: for each occurrence (u, p) of item i, add the weight of every
//    partner position q of user u into a dense per-thread accumulator; then emit the row in
//    column order (a bitmap scan for heavy rows, a sorted touched-list for light ones).
// 3. Finish: round to float32, min_count, symmetric top-k; or, when streaming, merge the
//    chunk's exact sums into the accumulated ones.
// Every entry is an exact integer sum (uint64 counts, 64.64 fixed point for 1/d), so the
// result does not depend on the order in which contributions arrive.
#include "cooccurrence.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <atomic>

#include "cooccurrence_parallel.hpp"

namespace tfllmer {
namespace {

using cooc_detail::BigVector;
using cooc_detail::run_tasks;

// TFLLMER_COOC_PROFILE=1 prints the time of each phase to stderr (development aid).
struct PhaseTimer {
    static bool enabled() {
        static const bool on = [] {
            const char* e = std::getenv("TFLLMER_COOC_PROFILE");
            return e && *e && *e != '0';
        }();
        return on;
    }
    std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now();
    void lap(const char* what) {
        if (!enabled()) return;
        const auto now = std::chrono::steady_clock::now();
        std::fprintf(stderr, "[cooc] %-10s %8.3f s\n", what, std::chrono::duration<double>(now - t).count());
        t = now;
    }
};
using cooc_detail::split_point;
using cooc_detail::TaskContext;

// 64.64 fixed point: 1/d is stored as floor(2^64 / d); sums of up to 2^63 terms cannot overflow.
using Fixed = unsigned __int128;

inline float to_float(uint32_t x) { return static_cast<float>(x); }
inline float to_float(uint64_t x) { return static_cast<float>(x); }
inline float to_float(Fixed x) {
    const double hi = static_cast<double>(static_cast<uint64_t>(x >> 64));
    const double lo = static_cast<double>(static_cast<uint64_t>(x)) * 0x1p-64;
    return static_cast<float>(hi + lo);
}

struct Chunk {
    const int64_t* offsets;
    int64_t n_users;
    const int32_t* items;
    int64_t max_history;
    const int64_t* ends = nullptr;  // if set, user u's positions are [offsets[u], ends[u])
    // Positions of user u that take part: [lo, hi), the most recent max_history of them.
    void range(int64_t u, int64_t& lo, int64_t& hi) const {
        lo = offsets[u];
        hi = ends ? ends[u] : offsets[u + 1];
        if (max_history > 0 && hi - lo > max_history) lo = hi - max_history;
    }
};

struct Occurrence {
    int64_t pos;  // global position in items
    int64_t tag;  // the user index within the chunk, or (OccurrenceTag::End) the user's end
};

enum class OccurrenceTag { User, End };

struct OccurrenceIndex {
    std::vector<int64_t> start;  // n_items + 1; occurrences of item i: [start[i], start[i+1])
    BigVector<Occurrence> occ;
};

// Parallel counting sort by item; within an item, occurrences stay in (user, position) order
// because every thread owns a contiguous range of users and writes after the threads before it.
OccurrenceIndex build_occurrences(const Chunk& c, int64_t n_items, int n_threads, OccurrenceTag tag,
                                  const StopCheck& stop) {
    const int64_t total = c.offsets[c.n_users];
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(n_threads, c.n_users));
    std::vector<int64_t> bound(parts + 1);
    for (int64_t k = 0; k <= parts; ++k) {
        const int64_t target = split_point(total, parts, k);
        bound[k] = std::lower_bound(c.offsets, c.offsets + c.n_users + 1, target) - c.offsets;
    }
    bound[0] = 0;
    bound[parts] = c.n_users;

    std::vector<int64_t> cursor(static_cast<size_t>(parts * n_items), 0);
    run_tasks(n_threads, parts, stop, [&](TaskContext& ctx, int64_t k) {
        int64_t* cnt = cursor.data() + k * n_items;
        for (int64_t u = bound[k]; u < bound[k + 1]; ++u) {
            if ((u & 4095) == 0 && ctx.tick()) return;
            int64_t lo, hi;
            c.range(u, lo, hi);
            for (int64_t q = lo; q < hi; ++q) ++cnt[c.items[q]];
        }
    });

    OccurrenceIndex index;
    index.start.assign(n_items + 1, 0);
    int64_t running = 0;
    for (int64_t i = 0; i < n_items; ++i) {
        index.start[i] = running;
        for (int64_t k = 0; k < parts; ++k) {
            const int64_t n = cursor[k * n_items + i];
            cursor[k * n_items + i] = running;
            running += n;
        }
    }
    index.start[n_items] = running;
    index.occ.resize(running);

    throw_if_stopped(stop);
    run_tasks(n_threads, parts, stop, [&](TaskContext& ctx, int64_t k) {
        int64_t* cur = cursor.data() + k * n_items;
        Occurrence* occ = index.occ.data();
        for (int64_t u = bound[k]; u < bound[k + 1]; ++u) {
            if ((u & 4095) == 0 && ctx.tick()) return;
            int64_t lo, hi;
            c.range(u, lo, hi);
            const int64_t t = tag == OccurrenceTag::User ? u : hi;
            for (int64_t q = lo; q < hi; ++q) occ[cur[c.items[q]]++] = Occurrence{q, t};
        }
    });
    return index;
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

// Users' (truncated) histories as sorted distinct items with multiplicities: the whole-history
// count is then sum_u mult_u(i) * mult_u(j), and binary is 1 per user, for i < j. Each user
// keeps its slot [begin[u], begin[u] + truncated length) and uses the first ends[u] - begin[u].
struct DistinctChunk {
    std::vector<int64_t> begin;  // n_users + 1
    std::vector<int64_t> ends;   // n_users
    BigVector<int32_t> items;
    BigVector<uint32_t> mult;    // only when some user repeats an item
    bool repeats = false;
};

DistinctChunk distinct_items(const Chunk& c, int n_threads, const StopCheck& stop) {
    const int64_t n_users = c.n_users;
    DistinctChunk d;
    d.begin.assign(n_users + 1, 0);
    d.ends.assign(n_users, 0);
    bool repeats = false;
    for (int64_t u = 0; u < n_users; ++u) {
        int64_t lo, hi;
        c.range(u, lo, hi);
        if (hi - lo > static_cast<int64_t>(UINT32_MAX))
            throw std::length_error("a user has more than 2^32 - 1 interactions in one chunk: set max_history");
        d.begin[u + 1] = d.begin[u] + (hi - lo);
    }
    d.items.resize(d.begin[n_users]);
    const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(n_users, 64 * static_cast<int64_t>(n_threads)));
    std::vector<int64_t> bound(tasks + 1);
    for (int64_t t = 0; t <= tasks; ++t)
        bound[t] = std::lower_bound(d.begin.begin(), d.begin.end(), split_point(d.begin[n_users], tasks, t)) -
                   d.begin.begin();
    bound[0] = 0;
    bound[tasks] = n_users;
    for (auto& b : bound) b = std::min(b, n_users);
    // Pass 1: sort each user's items into its slot and find whether any repeats.
    std::atomic<bool> any_repeat{false};
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        bool rep = false;
        for (int64_t u = bound[t]; u < bound[t + 1]; ++u) {
            if ((u & 1023) == 0 && ctx.tick()) return;
            int64_t lo, hi;
            c.range(u, lo, hi);
            int32_t* seg = d.items.data() + d.begin[u];
            std::copy(c.items + lo, c.items + hi, seg);
            std::sort(seg, seg + (hi - lo));
            for (int64_t k = 1; k < hi - lo && !rep; ++k) rep = seg[k] == seg[k - 1];
        }
        if (rep) any_repeat.store(true);
    });
    repeats = any_repeat.load();
    d.repeats = repeats;
    if (repeats) d.mult.resize(d.begin[n_users]);
    // Pass 2: run-length encode each slot in place.
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t u = bound[t]; u < bound[t + 1]; ++u) {
            int32_t* seg = d.items.data() + d.begin[u];
            const int64_t len = d.begin[u + 1] - d.begin[u];
            if (!repeats) {
                d.ends[u] = d.begin[u + 1];
                continue;
            }
            uint32_t* mult = d.mult.data() + d.begin[u];
            int64_t o = 0;
            for (int64_t k = 0; k < len;) {
                int64_t e = k + 1;
                while (e < len && seg[e] == seg[k]) ++e;
                seg[o] = seg[k];
                mult[o] = static_cast<uint32_t>(e - k);
                ++o;
                k = e;
            }
            d.ends[u] = d.begin[u] + o;
        }
    });
    return d;
}

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

// Exact partial sums of one chunk as row blocks, and whether they hold only the upper triangle.
template <class Acc>
struct ChunkSums {
    std::vector<RowBlock<Acc>> blocks;
    bool upper = false;
};

// upper_wanted: the caller only needs the upper triangle (a streaming update).
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

// Row-range tasks of roughly equal size for the cheap linear passes below.
inline int64_t n_row_tasks(int64_t n, int n_threads) {
    return std::max<int64_t>(1, std::min<int64_t>(n, 16 * static_cast<int64_t>(n_threads)));
}

// Float32 graph from exact sums: drop weights < min_count.
template <class Acc>
CoocGraph finish_min_count(const RowView<Acc>& v, double min_count, int n_threads, const StopCheck& stop) {
    const int64_t n = v.n;
    CoocGraph g;
    g.n = n;
    g.indptr.assign(n + 1, 0);
    const int64_t tasks = n_row_tasks(n, n_threads);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            int64_t kept = 0;
            for (int64_t k = 0; k < v.len[r]; ++k) kept += static_cast<double>(to_float(v.vals[r][k])) >= min_count;
            g.indptr[r + 1] = kept;
        }
    });
    for (int64_t r = 0; r < n; ++r) g.indptr[r + 1] += g.indptr[r];
    g.indices.resize(g.indptr[n]);
    g.data.resize(g.indptr[n]);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            int64_t out = g.indptr[r];
            for (int64_t k = 0; k < v.len[r]; ++k) {
                const float w = to_float(v.vals[r][k]);
                if (static_cast<double>(w) < min_count) continue;
                g.indices[out] = v.cols[r][k];
                g.data[out] = w;
                ++out;
            }
        }
    });
    return g;
}

// The full symmetric float32 graph from upper-triangle sums, dropping weights < min_count:
// row i = its lower part (the transpose, built by a parallel counting scatter in which each
// thread owns a contiguous range of source rows, so columns stay sorted) + its upper part.
template <class Acc>
CoocGraph assemble_upper(const RowView<Acc>& v, double min_count, int n_threads, const StopCheck& stop) {
    const int64_t n = v.n;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(n, n_threads));
    std::vector<int64_t> row_nnz_prefix(n + 1, 0);
    for (int64_t r = 0; r < n; ++r) row_nnz_prefix[r + 1] = row_nnz_prefix[r] + v.len[r] + 1;
    std::vector<int64_t> bound(parts + 1);
    for (int64_t t = 0; t <= parts; ++t)
        bound[t] = std::lower_bound(row_nnz_prefix.begin(), row_nnz_prefix.end(),
                                    split_point(row_nnz_prefix[n], parts, t)) - row_nnz_prefix.begin();
    bound[0] = 0;
    bound[parts] = n;
    row_nnz_prefix = {};

    std::vector<int64_t> upper_kept(n, 0);
    std::vector<int64_t> lower(static_cast<size_t>(parts * n), 0);  // per part: entries per column
    run_tasks(n_threads, parts, stop, [&](TaskContext& ctx, int64_t t) {
        int64_t* low = lower.data() + t * n;
        for (int64_t r = bound[t]; r < bound[t + 1]; ++r) {
            if ((r & 255) == 0 && ctx.tick()) return;
            int64_t kept = 0;
            for (int64_t k = 0; k < v.len[r]; ++k) {
                if (static_cast<double>(to_float(v.vals[r][k])) < min_count) continue;
                ++kept;
                ++low[v.cols[r][k]];
            }
            upper_kept[r] = kept;
        }
    });
    throw_if_stopped(stop);
    CoocGraph g;
    g.n = n;
    g.indptr.assign(n + 1, 0);
    std::vector<int64_t> upper_at(n);
    for (int64_t i = 0; i < n; ++i) {
        int64_t at = g.indptr[i];
        for (int64_t t = 0; t < parts; ++t) {
            const int64_t c = lower[t * n + i];
            lower[t * n + i] = at;  // becomes part t's write cursor in row i
            at += c;
        }
        upper_at[i] = at;
        g.indptr[i + 1] = at + upper_kept[i];
    }
    g.indices.resize(g.indptr[n]);
    g.data.resize(g.indptr[n]);
    run_tasks(n_threads, parts, stop, [&](TaskContext& ctx, int64_t t) {
        int64_t* cursor = lower.data() + t * n;
        // Upper parts: sequential copies.
        for (int64_t r = bound[t]; r < bound[t + 1]; ++r) {
            if ((r & 255) == 0 && ctx.tick()) return;
            int64_t up = upper_at[r];
            for (int64_t k = 0; k < v.len[r]; ++k) {
                const float w = to_float(v.vals[r][k]);
                if (static_cast<double>(w) < min_count) continue;
                g.indices[up] = v.cols[r][k];
                g.data[up++] = w;
            }
        }
        // Lower parts: a scatter into one open cache line per destination row. Done in
        // column tiles so that those lines (two arrays) stay within about 1 MiB of cache.
        const int64_t tile = std::max<int64_t>(1024, (int64_t(1) << 20) / 128);
        std::vector<int64_t> next(bound[t + 1] - bound[t], 0);  // per row: first entry not yet scattered
        for (int64_t c0 = 0; c0 < n; c0 += tile) {
            const int64_t c1 = std::min(n, c0 + tile);
            for (int64_t r = bound[t]; r < bound[t + 1] && r < c1; ++r) {
                if ((r & 1023) == 0 && ctx.tick()) return;
                int64_t k = next[r - bound[t]];
                const int64_t len = v.len[r];
                const int32_t* cols = v.cols[r];
                for (; k < len && cols[k] < c1; ++k) {
                    const float w = to_float(v.vals[r][k]);
                    if (static_cast<double>(w) < min_count) continue;
                    const int64_t at = cursor[cols[k]]++;
                    g.indices[at] = static_cast<int32_t>(r);
                    g.data[at] = w;
                }
                next[r - bound[t]] = k;
            }
        }
    });
    return g;
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

// Keeps (i, j) when j is in the top_k of row i or i is in the top_k of row j (larger weight
// first, ties to the smaller column). Relies on the graph being symmetric with bitwise-equal
// mirror weights, so "i in the top_k of row j" is a comparison with row j's k-th entry.
CoocGraph finish_top_k(const CoocGraph& g, int64_t top_k, int n_threads, const StopCheck& stop) {
    const int64_t n = g.n;
    std::vector<char> capped(n, 0);      // row has more than top_k entries
    std::vector<float> kth_w(n, 0);      // its k-th best entry
    std::vector<int64_t> kth_col(n, 0);
    const int64_t tasks = n_row_tasks(n, n_threads);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        std::vector<int64_t> order;
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            const int64_t b = g.indptr[r], e = g.indptr[r + 1];
            if (e - b <= top_k) continue;
            if (ctx.tick()) return;
            order.resize(e - b);
            std::iota(order.begin(), order.end(), b);
            std::nth_element(order.begin(), order.begin() + (top_k - 1), order.end(),
                             [&](int64_t x, int64_t y) {
                                 return g.data[x] > g.data[y] || (g.data[x] == g.data[y] && g.indices[x] < g.indices[y]);
                             });
            const int64_t kth = order[top_k - 1];
            capped[r] = 1;
            kth_w[r] = g.data[kth];
            kth_col[r] = g.indices[kth];
        }
    });
    auto in_top = [&](int64_t r, float w, int64_t col) {
        return !capped[r] || w > kth_w[r] || (w == kth_w[r] && col <= kth_col[r]);
    };
    CoocGraph out;
    out.n = n;
    out.indptr.assign(n + 1, 0);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            int64_t kept = 0;
            for (int64_t k = g.indptr[r]; k < g.indptr[r + 1]; ++k)
                kept += in_top(r, g.data[k], g.indices[k]) || in_top(g.indices[k], g.data[k], r);
            out.indptr[r + 1] = kept;
        }
    });
    for (int64_t r = 0; r < n; ++r) out.indptr[r + 1] += out.indptr[r];
    out.indices.resize(out.indptr[n]);
    out.data.resize(out.indptr[n]);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            int64_t o = out.indptr[r];
            for (int64_t k = g.indptr[r]; k < g.indptr[r + 1]; ++k) {
                if (!(in_top(r, g.data[k], g.indices[k]) || in_top(g.indices[k], g.data[k], r))) continue;
                out.indices[o] = g.indices[k];
                out.data[o] = g.data[k];
                ++o;
            }
        }
    });
    return out;
}

template <class Acc>
CoocGraph finish(const RowView<Acc>& v, const CoocFinish& f, int n_threads, const StopCheck& stop) {
    PhaseTimer timer;
    CoocGraph g = v.upper ? assemble_upper(v, f.min_count, n_threads, stop)
                          : finish_min_count(v, f.min_count, n_threads, stop);
    timer.lap("assemble");
    if (f.top_k > 0) g = finish_top_k(g, f.top_k, n_threads, stop);
    return g;
}

// acc + chunk, row by row (both sorted): exact sums, so the order of chunks does not matter.
template <class Acc, class Add>
AccCsr<Acc> merge(const AccCsr<Acc>& acc, const RowView<Add>& add, int n_threads, const StopCheck& stop) {
    const int64_t n = add.n;
    const RowView<Acc> old = view_of(acc, n);
    AccCsr<Acc> out;
    out.indptr.assign(n + 1, 0);
    const int64_t tasks = n_row_tasks(n, n_threads);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            const int32_t *a = old.cols[r], *b = add.cols[r];
            int64_t i = 0, j = 0, k = 0;
            const int64_t na = old.len[r], nb = add.len[r];
            while (i < na && j < nb) {
                const int32_t ca = a[i], cb = b[j];
                i += ca <= cb;
                j += cb <= ca;
                ++k;
            }
            out.indptr[r + 1] = k + (na - i) + (nb - j);
        }
    });
    for (int64_t r = 0; r < n; ++r) out.indptr[r + 1] += out.indptr[r];
    out.cols.resize(out.indptr[n]);
    out.vals.resize(out.indptr[n]);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            const int32_t *a = old.cols[r], *b = add.cols[r];
            const Acc* va = old.vals[r];
            const Add* vb = add.vals[r];
            const int64_t na = old.len[r], nb = add.len[r];
            int64_t i = 0, j = 0, o = out.indptr[r];
            while (i < na || j < nb) {
                if (j >= nb || (i < na && a[i] < b[j])) {
                    out.cols[o] = a[i];
                    out.vals[o++] = va[i++];
                } else if (i >= na || b[j] < a[i]) {
                    out.cols[o] = b[j];
                    out.vals[o++] = static_cast<Acc>(vb[j++]);
                } else {
                    out.cols[o] = a[i];
                    out.vals[o++] = va[i++] + static_cast<Acc>(vb[j++]);
                }
            }
        }
    });
    return out;
}

void check_options(const CoocOptions& opt) {
    if (opt.n_items < 0 || opt.n_items > INT32_MAX)
        throw std::invalid_argument("n_items must lie in [0, 2^31 - 1], got " + std::to_string(opt.n_items));
    if (opt.window < 0) throw std::invalid_argument("window must be >= 1 (or 0 for the whole history)");
    if (opt.max_history < 0) throw std::invalid_argument("max_history must be >= 1 (or 0 for no limit)");
    if (opt.n_threads < 1) throw std::invalid_argument("n_threads must be >= 1");
}

// Calls f(weighting constant, chunk accumulator, stored accumulator). Counts use uint32 for
// a chunk whose total number of position pairs (a bound on every entry) fits, else uint64.
template <class F>
decltype(auto) dispatch(CoocWeighting w, bool narrow, F&& f) {
    using CountW = std::integral_constant<CoocWeighting, CoocWeighting::Count>;
    using BinaryW = std::integral_constant<CoocWeighting, CoocWeighting::Binary>;
    using InvW = std::integral_constant<CoocWeighting, CoocWeighting::InverseDistance>;
    switch (w) {
        case CoocWeighting::Count:
            return narrow ? f(CountW{}, uint32_t{}, uint64_t{}) : f(CountW{}, uint64_t{}, uint64_t{});
        case CoocWeighting::Binary:
            return narrow ? f(BinaryW{}, uint32_t{}, uint64_t{}) : f(BinaryW{}, uint64_t{}, uint64_t{});
        case CoocWeighting::InverseDistance:
            return f(InvW{}, Fixed{}, Fixed{});
    }
    throw std::invalid_argument("unknown weighting");
}

// Waking OpenMP threads costs milliseconds on a busy machine: small jobs run on one thread
// (the result does not depend on the thread count).
std::atomic<double> g_min_parallel_work{250000.0};
// Chunks with fewer position pairs than this (a bound on every count) use uint32 sums.
std::atomic<double> g_narrow_max_pairs{4.0e9};

int threads_for(double work, int n_threads) {
    const double per_thread = g_min_parallel_work.load();
    const double wanted = per_thread > 0 ? std::floor(work / per_thread) : n_threads;
    return static_cast<int>(std::max(1.0, std::min<double>(n_threads, wanted)));
}

// Pair updates a chunk will cost, about.
double estimate_updates(const CoocOptions& opt, const Chunk& c) {
    double work = 0;
    for (int64_t u = 0; u < c.n_users; ++u) {
        int64_t lo, hi;
        c.range(u, lo, hi);
        const double l = static_cast<double>(hi - lo);
        work += l * (opt.window > 0 ? std::min(l, 2.0 * static_cast<double>(opt.window) + 1) : l);
    }
    return work + static_cast<double>(c.n_users);
}

CoocGraph empty_graph(int64_t n) {
    CoocGraph g;
    g.n = n;
    g.indptr.assign(n + 1, 0);
    return g;
}

}  // namespace

double set_cooccurrence_min_parallel_work(double work) { return g_min_parallel_work.exchange(work); }
double set_cooccurrence_narrow_max_pairs(double pairs) {
    return g_narrow_max_pairs.exchange(std::min(pairs, 4.0e9));
}

void check_cooccurrence_input(const CoocOptions& opt, const int64_t* offsets, int64_t n_users,
                              const int32_t* items, int64_t n_interactions) {
    check_options(opt);
    if (n_users < 0) throw std::invalid_argument("offsets must have at least one entry");
    if (offsets[0] != 0) throw std::invalid_argument("offsets[0] must be 0");
    if (offsets[n_users] != n_interactions)
        throw std::invalid_argument("offsets[-1] = " + std::to_string(offsets[n_users]) + " but there are " +
                                    std::to_string(n_interactions) + " items");
    int64_t bad_offset = 0, bad_item = 0;
#pragma omp parallel for num_threads(opt.n_threads) reduction(+ : bad_offset) schedule(static)
    for (int64_t u = 0; u < n_users; ++u) bad_offset += offsets[u + 1] < offsets[u];
    if (bad_offset) throw std::invalid_argument("offsets must be non-decreasing");
    const int64_t n = opt.n_items;
#pragma omp parallel for num_threads(opt.n_threads) reduction(+ : bad_item) schedule(static)
    for (int64_t q = 0; q < n_interactions; ++q) bad_item += items[q] < 0 || items[q] >= n;
    if (bad_item)
        throw std::invalid_argument(std::to_string(bad_item) + " item id(s) outside [0, n_items) = [0, " +
                                    std::to_string(n) + ")");
}

CoocGraph cooccurrence(const CoocOptions& opt, const int64_t* offsets, int64_t n_users, const int32_t* items,
                       const CoocFinish& finish_opt, const StopCheck& stop) {
    check_cooccurrence_input(opt, offsets, n_users, items, offsets[n_users]);
    if (opt.n_items == 0 || n_users == 0) return empty_graph(opt.n_items);
    const Chunk c{offsets, n_users, items, opt.max_history};
    CoocOptions run = opt;
    const double pairs = estimate_updates(opt, c);
    run.n_threads = threads_for(pairs + static_cast<double>(opt.n_items), opt.n_threads);
    return dispatch(opt.weighting, pairs < g_narrow_max_pairs.load(), [&](auto w, auto acc_type, auto) {
        using Acc = decltype(acc_type);
        ChunkSums<Acc> sums = count_chunk<decltype(w)::value, Acc>(run, c, false, stop);
        return finish(view_of(sums.blocks, run.n_items, sums.upper), finish_opt, run.n_threads, stop);
    });
}

struct CooccurrenceCounter::Impl {
    CoocOptions opt;
    std::atomic<int64_t> seen{0}, users{0};  // read without the mutex while an update runs
    AccCsr<uint64_t> counts;  // count and binary
    AccCsr<Fixed> fixed;      // inverse_distance
    mutable std::mutex mutex;

    template <class Acc>
    AccCsr<Acc>& sums() {
        if constexpr (std::is_same_v<Acc, Fixed>) return fixed; else return counts;
    }
    template <class Acc>
    const AccCsr<Acc>& sums() const {
        if constexpr (std::is_same_v<Acc, Fixed>) return fixed; else return counts;
    }
};

CooccurrenceCounter::CooccurrenceCounter(const CoocOptions& opt) : impl_(new Impl) {
    check_options(opt);
    impl_->opt = opt;
}

CooccurrenceCounter::~CooccurrenceCounter() = default;

void CooccurrenceCounter::update(const int64_t* offsets, int64_t n_users, const int32_t* items,
                                 const StopCheck& stop) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const CoocOptions& opt = impl_->opt;
    check_cooccurrence_input(opt, offsets, n_users, items, offsets[n_users]);
    if (opt.n_items > 0 && n_users > 0) {
        const Chunk c{offsets, n_users, items, opt.max_history};
        const double pairs = estimate_updates(opt, c);
        dispatch(opt.weighting, pairs < g_narrow_max_pairs.load(), [&](auto w, auto acc_type, auto stored_type) {
            using Acc = decltype(acc_type);
            AccCsr<decltype(stored_type)>& sums = impl_->sums<decltype(stored_type)>();
            CoocOptions run = opt;
            run.n_threads = threads_for(pairs + static_cast<double>(opt.n_items + sums.cols.size()), opt.n_threads);
            ChunkSums<Acc> chunk = count_chunk<decltype(w)::value, Acc>(run, c, true, stop);
            RowView<Acc> add = view_of(chunk.blocks, run.n_items, chunk.upper);
            restrict_to_upper(add);  // the counter keeps the upper triangle only
            // All-or-nothing: a cancelled merge leaves the accumulated sums untouched.
            auto merged = merge(sums, add, run.n_threads, stop);
            sums = std::move(merged);
            return 0;
        });
    }
    impl_->seen += offsets[n_users];
    impl_->users += n_users;
}

CoocGraph CooccurrenceCounter::result(const CoocFinish& f, const StopCheck& stop) const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const CoocOptions& opt = impl_->opt;
    return dispatch(opt.weighting, false, [&](auto, auto, auto stored_type) {
        const auto& sums = impl_->sums<decltype(stored_type)>();
        const int n_threads = threads_for(static_cast<double>(opt.n_items + 2 * sums.cols.size()), opt.n_threads);
        return finish(view_of(sums, opt.n_items), f, n_threads, stop);
    });
}

const CoocOptions& CooccurrenceCounter::options() const { return impl_->opt; }
int64_t CooccurrenceCounter::n_interactions_seen() const { return impl_->seen; }
int64_t CooccurrenceCounter::n_users_seen() const { return impl_->users; }
int64_t CooccurrenceCounter::nnz() const {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    // Stored: the upper triangle; reported: the entries of the full symmetric graph.
    const size_t upper = impl_->opt.weighting == CoocWeighting::InverseDistance ? impl_->fixed.cols.size()
                                                                                : impl_->counts.cols.size();
    return 2 * static_cast<int64_t>(upper);
}

}  // namespace tfllmer
