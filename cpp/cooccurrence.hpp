// Item-item co-occurrence graph of per-user item sequences (no Python in here).
//
// A user's sequence is items[offsets[u]:offsets[u+1]], oldest first. Every ordered pair of
// positions (p, q), p != q, of the same user (restricted to the most recent `max_history`
// positions, and to |p - q| <= window when a window is set) whose items i != j differ adds a
// weight to A[i, j]: 1 ("count"), 1/|p - q| ("inverse_distance"), or, for "binary", each
// user adds at most 1 to A[i, j]. A is symmetric with an empty diagonal.
//
// Sums are exact (uint64 counts; 64.64 fixed point for 1/d), so results are bitwise identical
// whatever the thread count or the way users are split into chunks; weights are rounded to
// float32 only when a result is produced.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "cancel.hpp"
#include "cooccurrence_alloc.hpp"

namespace tfllmer {

struct CoocSums;  // cooccurrence_partial.hpp

enum class CoocWeighting { Count, InverseDistance, Binary };

struct CoocOptions {
    int64_t n_items = 0;
    int64_t window = 0;       // 0: the whole (truncated) history
    int64_t max_history = 0;  // 0: keep every position; K > 0: only each user's last K
    CoocWeighting weighting = CoocWeighting::Count;
    int n_threads = 1;
};

// A finished graph: CSR with sorted column indices, float32 weights.
struct CoocGraph {
    int64_t n = 0;
    cooc_detail::BigVector<int64_t> indptr;   // n + 1
    cooc_detail::BigVector<int32_t> indices;  // nnz (n_items < 2^31)
    cooc_detail::BigVector<float> data;       // nnz
};

// An index array of a graph (indptr or indices) as another integer type, for the caller's
// index dtype; every value must fit in To.
template <class To, class From>
cooc_detail::BigVector<To> cast_index(const cooc_detail::BigVector<From>& v) {
    cooc_detail::BigVector<To> out(v.size());
    std::transform(v.begin(), v.end(), out.begin(), [](From x) { return static_cast<To>(x); });
    return out;
}

// Throws std::invalid_argument unless offsets (n_users + 1 entries) start at 0, never decrease
// and end at n_interactions, and every item lies in [0, n_items).
void check_cooccurrence_input(const CoocOptions& opt, const int64_t* offsets, int64_t n_users,
                              const int32_t* items, int64_t n_interactions);

// Drop entries whose float32 weight is < min_count, then (top_k > 0) keep an edge (i, j) when j
// is among the top_k heaviest neighbours of i or i among those of j (ties: smaller column).
struct CoocFinish {
    double min_count = 1.0;
    int64_t top_k = 0;  // 0: keep all
};

// One call: count, finish, return.
CoocGraph cooccurrence(const CoocOptions& opt, const int64_t* offsets, int64_t n_users,
                       const int32_t* items, const CoocFinish& finish, const StopCheck& stop);

// Streaming: feed chunks of whole users, ask for the graph at any time. Memory: the exact
// accumulated sums of the upper triangle (12 bytes per item pair for count/binary, 20 for
// inverse_distance), plus one chunk's partial sums and a merged copy while an update runs.
class CooccurrenceCounter {
public:
    explicit CooccurrenceCounter(const CoocOptions& opt);
    ~CooccurrenceCounter();
    CooccurrenceCounter(const CooccurrenceCounter&) = delete;
    CooccurrenceCounter& operator=(const CooccurrenceCounter&) = delete;

    void update(const int64_t* offsets, int64_t n_users, const int32_t* items, const StopCheck& stop);
    CoocGraph result(const CoocFinish& finish, const StopCheck& stop) const;
    // Moves the exact accumulated sums out (upper triangle, every row), leaving the counter
    // with no pairs; the counts of users and interactions seen stay.
    CoocSums take_sums();

    const CoocOptions& options() const;
    int64_t n_interactions_seen() const;
    int64_t n_users_seen() const;
    int64_t nnz() const;  // stored entries (both triangles)

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Jobs with less than this many elementary steps per thread use fewer threads (starting
// threads costs milliseconds on a busy machine). Returns the previous value; tests set 0.
double set_cooccurrence_min_parallel_work(double work);
// Chunks with fewer position pairs than this use 32-bit sums (capped at 4e9; tests set 0 to
// exercise the 64-bit path). Returns the previous value.
double set_cooccurrence_narrow_max_pairs(double pairs);

}  // namespace tfllmer
