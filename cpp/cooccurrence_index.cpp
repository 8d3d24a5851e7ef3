// The occurrence index and the distinct-items view of a chunk (see cooccurrence_index.hpp).
#include "cooccurrence_index.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "cooccurrence_parallel.hpp"

namespace tfllmer::cooc_detail {

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

}  // namespace tfllmer::cooc_detail
