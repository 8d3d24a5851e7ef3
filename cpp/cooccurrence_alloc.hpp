// Allocation for the co-occurrence kernels' big arrays: no zero-filling on resize (every
// element is written by a parallel pass anyway, which also spreads the page faults over the
// threads), and optionally transparent huge pages for buffers of 4 MiB or more.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace tfllmer::cooc_detail {

// TFLLMER_COOC_HUGEPAGES=1 turns the huge-page hint on. Off by default: on the VMs measured,
// synchronous compaction cost more system time than the fewer TLB misses saved.
inline bool hugepages_wanted() {
    static const bool on = [] {
        const char* e = std::getenv("TFLLMER_COOC_HUGEPAGES");
        return e && e[0] == '1';
    }();
    return on;
}

template <class T>
struct BigAllocator {
    using value_type = T;
    BigAllocator() noexcept = default;
    template <class U>
    BigAllocator(const BigAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        constexpr std::size_t kHuge = std::size_t(2) << 20;
        if (bytes >= 2 * kHuge) {
            const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
            void* p = std::aligned_alloc(kHuge, rounded);
            if (!p) throw std::bad_alloc();
            if (hugepages_wanted()) madvise(p, rounded, MADV_HUGEPAGE);
            return static_cast<T*>(p);
        }
        void* p = std::malloc(bytes ? bytes : 1);
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) noexcept { std::free(p); }

    // Default-initialise (leave trivial types uninitialised) instead of value-initialising.
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        if constexpr (sizeof...(Args) == 0)
            ::new (static_cast<void*>(p)) U;
        else
            ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }

    friend bool operator==(const BigAllocator&, const BigAllocator&) noexcept { return true; }
    friend bool operator!=(const BigAllocator&, const BigAllocator&) noexcept { return false; }
};

template <class T>
using BigVector = std::vector<T, BigAllocator<T>>;

}  // namespace tfllmer::cooc_detail
