// Finishing kernels of the co-occurrence graph (see cooccurrence_finish.hpp).
#include "cooccurrence_finish.hpp"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cooccurrence_parallel.hpp"
#include "cooccurrence_profile.hpp"

namespace tfllmer::cooc_detail {
namespace {

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

}  // namespace

TopKStats top_k_stats(const CoocGraph& g, int64_t top_k, int n_threads, const StopCheck& stop) {
    const int64_t n = g.n;
    TopKStats st;
    st.capped.assign(n, 0);
    st.kth_w.assign(n, 0);
    st.kth_col.assign(n, 0);
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
            st.capped[r] = 1;
            st.kth_w[r] = g.data[kth];
            st.kth_col[r] = g.indices[kth];
        }
    });
    throw_if_stopped(stop);
    return st;
}

CoocGraph filter_top_k(const CoocGraph& g, int64_t row_begin, const TopKRef& st, int n_threads,
                       const StopCheck& stop) {
    const int64_t n = g.n;  // rows of this block; st covers every row of the whole graph
    auto in_top = [&](int64_t r, float w, int64_t col) {
        return !st.capped[r] || w > st.kth_w[r] || (w == st.kth_w[r] && col <= st.kth_col[r]);
    };
    auto keep = [&](int64_t r, int64_t k) {
        const int64_t row = row_begin + r;
        return in_top(row, g.data[k], g.indices[k]) || in_top(g.indices[k], g.data[k], row);
    };
    CoocGraph out;
    out.n = n;
    out.indptr.assign(n + 1, 0);
    const int64_t tasks = n_row_tasks(n, n_threads);
    run_tasks(n_threads, tasks, stop, [&](TaskContext& ctx, int64_t t) {
        for (int64_t r = split_point(n, tasks, t); r < split_point(n, tasks, t + 1); ++r) {
            int64_t kept = 0;
            for (int64_t k = g.indptr[r]; k < g.indptr[r + 1]; ++k) kept += keep(r, k);
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
                if (!keep(r, k)) continue;
                out.indices[o] = g.indices[k];
                out.data[o] = g.data[k];
                ++o;
            }
        }
    });
    return out;
}

// Keeps (i, j) when j is in the top_k of row i or i is in the top_k of row j (larger weight
// first, ties to the smaller column). Relies on the graph being symmetric with bitwise-equal
// mirror weights, so "i in the top_k of row j" is a comparison with row j's k-th entry.
static CoocGraph finish_top_k(const CoocGraph& g, int64_t top_k, int n_threads, const StopCheck& stop) {
    const TopKStats st = top_k_stats(g, top_k, n_threads, stop);
    return filter_top_k(g, 0, TopKRef{st.capped.data(), st.kth_w.data(), st.kth_col.data()}, n_threads, stop);
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

template CoocGraph finish<uint32_t>(const RowView<uint32_t>&, const CoocFinish&, int, const StopCheck&);
template CoocGraph finish<uint64_t>(const RowView<uint64_t>&, const CoocFinish&, int, const StopCheck&);
template CoocGraph finish<Fixed>(const RowView<Fixed>&, const CoocFinish&, int, const StopCheck&);

}  // namespace tfllmer::cooc_detail
