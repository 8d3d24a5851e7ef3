// Idle OpenMP threads that make the GNU OpenMP runtime (libgomp) wait passively.
//
// libgomp lets an idle thread spin before it sleeps: about 300000 polls when OMP_WAIT_POLICY
// is unset, enough to bridge the gaps between torch's small parallel regions, so its workers
// never sleep. On cores that other processes share, a spinning worker is preempted while the
// team's master waits for it at a barrier, and each region then costs a scheduler time slice
// (training 5-30x slower). libgomp documents one runtime switch besides the environment:
// while it manages more threads than the process has CPUs, every wait spins only ~100 polls
// and then sleeps (GOMP_SPINCOUNT in its manual). An IdleTeam supplies those extra threads:
// a parked thread owning a pool of `workers` OpenMP threads, all asleep, for its lifetime.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace tfllmer {

class IdleTeam {
   public:
    explicit IdleTeam(int workers);
    ~IdleTeam();
    IdleTeam(const IdleTeam&) = delete;
    IdleTeam& operator=(const IdleTeam&) = delete;

    // Ends the parked thread; its OpenMP pool is freed with it. Idempotent.
    void release();
    // Workers the parked thread's pool got (what the runtime counts).
    int workers() const { return workers_; }

   private:
    int workers_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool released_ = false;
    std::thread thread_;
};

// Path of the OpenMP runtime library this module's OpenMP calls resolve to.
std::string openmp_library();

}  // namespace tfllmer
