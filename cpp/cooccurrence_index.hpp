// The input of one co-occurrence chunk and the indexes built from it: where every item occurs
// (the occurrence index), and each user's history as sorted distinct items.
#pragma once

#include <cstdint>
#include <vector>

#include "cancel.hpp"
#include "cooccurrence_alloc.hpp"

namespace tfllmer::cooc_detail {

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
// tag: what each occurrence carries besides its position (see Occurrence).
OccurrenceIndex build_occurrences(const Chunk& c, int64_t n_items, int n_threads, OccurrenceTag tag,
                                  const StopCheck& stop);

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

// Throws std::length_error when a user has more than 2^32 - 1 participating positions.
DistinctChunk distinct_items(const Chunk& c, int n_threads, const StopCheck& stop);

}  // namespace tfllmer::cooc_detail
