// Co-occurrence counting: the entry points and the streaming counter. The phases live in
// their own files:
//
// 1. Occurrence index (cooccurrence_index.cpp): for every item i, the positions (and users)
//    where it occurs, in user order (a parallel counting sort; only the most recent
//    max_history positions of a user).
// 2. Rows of A in parallel (cooccurrence_rows.cpp): for each occurrence (u, p) of item i, add
//    the weight of every partner position q of user u into a dense per-thread accumulator;
//    then emit the row in column order (a bitmap scan for heavy rows, a sorted touched-list
//    for light ones).
// 3. Finish (cooccurrence_finish.cpp): round to float32, min_count, symmetric top-k; or, when
//    streaming, merge the chunk's exact sums into the accumulated ones (here).
// Every entry is an exact integer sum (uint64 counts, 64.64 fixed point for 1/d), so the
// result does not depend on the order in which contributions arrive.
#include "cooccurrence.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cooccurrence_finish.hpp"
#include "cooccurrence_index.hpp"
#include "cooccurrence_parallel.hpp"
#include "cooccurrence_partial.hpp"
#include "cooccurrence_rows.hpp"
#include "cooccurrence_sums.hpp"

namespace tfllmer {
namespace {

using cooc_detail::AccCsr;
using cooc_detail::Chunk;
using cooc_detail::ChunkSums;
using cooc_detail::count_chunk;
using cooc_detail::finish;
using cooc_detail::Fixed;
using cooc_detail::n_row_tasks;
using cooc_detail::restrict_to_upper;
using cooc_detail::RowView;
using cooc_detail::run_tasks;
using cooc_detail::split_point;
using cooc_detail::TaskContext;
using cooc_detail::view_of;

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

CoocSums CooccurrenceCounter::take_sums() {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    const int64_t n = impl_->opt.n_items;
    CoocSums s;
    s.n = n;
    s.row_begin = 0;
    s.row_end = n;
    s.upper = true;
    auto take_index = [&](auto& acc) {
        s.indptr = acc.indptr.empty() ? std::vector<int64_t>(n + 1, 0) : std::move(acc.indptr);
        s.cols = std::move(acc.cols);
    };
    if (impl_->opt.weighting == CoocWeighting::InverseDistance) {
        s.words = 2;
        take_index(impl_->fixed);
        s.vals.resize(2 * impl_->fixed.vals.size());
        // Little-endian __int128: the low 64 bits first, as CoocSums stores them.
        std::memcpy(s.vals.data(), static_cast<const void*>(impl_->fixed.vals.data()), 16 * impl_->fixed.vals.size());
        impl_->fixed = {};
    } else {
        s.words = 1;
        take_index(impl_->counts);
        s.vals = std::move(impl_->counts.vals);
        impl_->counts = {};
    }
    return s;
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
