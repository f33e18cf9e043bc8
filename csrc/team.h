/* team.h: the threads of one training call, and how they share a batch's work (batch.c, step.c).
 * Type-independent: included once, before the templated code. */
#ifndef FASTMLP_TEAM_H
#define FASTMLP_TEAM_H
#include <time.h>
#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif

/* How the threads of a call share a batch's work: parts claimed, not dealt.
 *
 * A call runs as a sequence of phases that every thread walks through in the same order (the
 * layers of forward and backward, the optimizer step, ...), and each phase is cut into the
 * call's parts (c->parts, fixed by the problem: the parts, not the threads, fix the bits). A
 * thread claims a part of its current phase, runs it and marks it done; a phase's part starts
 * only when what it reads is done: the same part's previous phase (FASTMLP_AFTER_OWN: it reads
 * only the rows its own part wrote) or every part's (FASTMLP_AFTER_ALL). A phase ends for a
 * thread when all its parts are handed out, not when all threads have arrived, so a thread the
 * kernel took off its core holds up the others only while it holds a part: the running thread
 * takes the parts its partner has not claimed and goes on, and a partner that wakes up late
 * finds the phases it missed handed out and skips them.
 * Thread tid claims its own parts tid, tid + nt, ... first (as a static split would deal them,
 * so on an idle machine each core keeps its rows and its slabs of W in cache from phase to
 * phase and from batch to batch) and another thread's only when that part's input is ready and
 * its owner has not claimed it for FASTMLP_GRACE rounds (~2 us: an owner that runs claims it
 * within a few hundred ns).
 * Per part, two counters: phases claimed (a CAS from phase to phase + 1 claims it, so no two
 * threads run the same part) and phases done (seq_cst store: whoever reads it also sees what
 * the part's task wrote). A thread that waits spins FASTMLP_SPIN rounds (~50 us here, 24 ns a
 * round), then sleeps on a futex, freeing its core: OpenMP's own barrier (libgomp) spins up to
 * ~300000 rounds, and with another process busy on the second core the waiting thread kept its
 * core while its partner waited for the other. Every claim and every done bumps the futex word
 * when someone sleeps (a waiter registers before its last check: no wake-up is lost). Where
 * there is no futex (not Linux) a waiter yields its core between rounds; without GCC atomics
 * (MSVC) each thread runs its own parts, with OpenMP's barrier before a phase that reads
 * another part's work. */
#define FASTMLP_SPIN 2000
#define FASTMLP_GRACE 100
#define FASTMLP_AFTER_OWN 0
#define FASTMLP_AFTER_ALL 1
#if defined(__GNUC__)
#define FASTMLP_CLAIMS 1
#endif

typedef struct {
    int64_t claimed;  /* phases of this part handed out */
    int64_t done;     /* phases of this part finished */
    char pad[64 - 2 * sizeof(int64_t)];  /* a cache line per part: owners write their own */
} fastmlp_part_state;

typedef struct {
    fastmlp_part_state *part;  /* (parts,), cache-line aligned in `memory` */
    void *memory;
    int parts;
    int word;       /* the futex word */
    int sleepers;   /* threads asleep (or about to be) on it */
} fastmlp_team;

/* One thread's place in the call's phases (its own: tid and the team size never change in it) */
typedef struct {
    int tid, nt;
    int64_t phase;  /* the phase it claims in */
#ifndef FASTMLP_CLAIMS
    int next;       /* its next own part, -1 before the phase's first */
#endif
} fastmlp_worker;

static int fastmlp_team_init(fastmlp_team *team, int parts)
{
    team->parts = parts;
    team->memory = calloc((size_t)parts + 1, sizeof(fastmlp_part_state));
    if (!team->memory) return 0;
    const uintptr_t at = ((uintptr_t)team->memory + 63) & ~(uintptr_t)63;
    team->part = (fastmlp_part_state *)at;
    return 1;
}

static inline void fastmlp_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#ifdef FASTMLP_CLAIMS
static inline int64_t fastmlp_atomic_load(const int64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* Wake whoever sleeps: after a claim or a done (both seq_cst, before this read) */
static inline void fastmlp_notify(fastmlp_team *team)
{
    if (__atomic_load_n(&team->sleepers, __ATOMIC_SEQ_CST) > 0) {
        __atomic_add_fetch(&team->word, 1, __ATOMIC_SEQ_CST);
#if defined(__linux__)
        syscall(SYS_futex, &team->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
    }
}

/* One round of a wait whose condition was false after `word` was read: spin, then register as
 * a sleeper (and check again), then sleep until the word moves. */
static void fastmlp_rest(fastmlp_team *team, int *rounds, int word)
{
    if (*rounds < FASTMLP_SPIN) {
        fastmlp_pause();
    } else if (*rounds == FASTMLP_SPIN) {
        /* a notifier that claims or finishes after our next check reads sleepers > 0 (all
         * seq_cst), and FUTEX_WAIT returns at once once the word is no longer `word` */
        __atomic_add_fetch(&team->sleepers, 1, __ATOMIC_SEQ_CST);
    } else {
#if defined(__linux__)
        syscall(SYS_futex, &team->word, FUTEX_WAIT_PRIVATE, word, NULL, NULL, 0);
#elif defined(__unix__) || defined(__APPLE__)
        (void)word;
        sched_yield();
#else
        (void)word;
        fastmlp_pause();
#endif
    }
    ++*rounds;
}

static inline void fastmlp_rested(fastmlp_team *team, int rounds)
{
    if (rounds > FASTMLP_SPIN) __atomic_sub_fetch(&team->sleepers, 1, __ATOMIC_SEQ_CST);
}

/* Whether what part `part` of phase `phase` reads is done */
static int fastmlp_ready(const fastmlp_team *team, int part, int64_t phase, int after)
{
    if (after == FASTMLP_AFTER_OWN) return fastmlp_atomic_load(&team->part[part].done) >= phase;
    for (int p = 0; p < team->parts; p++)
        if (fastmlp_atomic_load(&team->part[p].done) < phase) return 0;
    return 1;
}

static void fastmlp_wait_ready(fastmlp_team *team, int part, int64_t phase, int after)
{
    int rounds = 0;
    for (;;) {
        const int word = __atomic_load_n(&team->word, __ATOMIC_SEQ_CST);
        if (fastmlp_ready(team, part, phase, after)) break;
        fastmlp_rest(team, &rounds, word);
    }
    fastmlp_rested(team, rounds);
}

static inline int fastmlp_try_claim(fastmlp_team *team, int part, int64_t phase)
{
    int64_t expected = phase;
    if (__atomic_load_n(&team->part[part].claimed, __ATOMIC_RELAXED) != phase) return 0;
    if (!__atomic_compare_exchange_n(&team->part[part].claimed, &expected, phase + 1, 0,
                                     __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        return 0;
    fastmlp_notify(team);
    return 1;
}

/* The part of the worker's phase it runs next, its input done; or -1 once every part of the
 * phase is handed out, and the worker goes on to the next phase. */
static int fastmlp_claim(fastmlp_team *team, fastmlp_worker *w, int after)
{
    const int64_t phase = w->phase;
    for (int p = w->tid; p < team->parts; p += w->nt)
        if (fastmlp_try_claim(team, p, phase)) {
            fastmlp_wait_ready(team, p, phase, after);
            return p;
        }
    /* the other parts: one whose input is ready and whose owner has not claimed it within
     * FASTMLP_GRACE rounds is taken; while none is ready, wait for a claim or a done */
    int rounds = 0, ready_rounds = 0;
    for (;;) {
        const int word = __atomic_load_n(&team->word, __ATOMIC_SEQ_CST);
        int open = 0, candidate = -1;
        for (int p = 0; p < team->parts; p++) {
            if (fastmlp_atomic_load(&team->part[p].claimed) != phase) continue;
            open = 1;
            if (candidate < 0 && fastmlp_ready(team, p, phase, after)) candidate = p;
        }
        if (!open) break;
        if (candidate < 0) {
            fastmlp_rest(team, &rounds, word);
        } else if (ready_rounds++ < FASTMLP_GRACE) {
            fastmlp_pause();
        } else if (fastmlp_try_claim(team, candidate, phase)) {
            fastmlp_rested(team, rounds);
            return candidate;
        }
    }
    fastmlp_rested(team, rounds);
    w->phase++;
    return -1;
}

static inline void fastmlp_done(fastmlp_team *team, const fastmlp_worker *w, int part)
{
    __atomic_store_n(&team->part[part].done, w->phase + 1, __ATOMIC_SEQ_CST);
    fastmlp_notify(team);
}

/* Wait until every part has finished the phases before the worker's current one */
static void fastmlp_wait_all(fastmlp_team *team, const fastmlp_worker *w)
{
    fastmlp_wait_ready(team, 0, w->phase, FASTMLP_AFTER_ALL);
}
#else  /* no GCC atomics (MSVC): each thread its own parts, OpenMP's barrier where needed */
static int fastmlp_claim(fastmlp_team *team, fastmlp_worker *w, int after)
{
    if (w->next < 0) {
        if (after == FASTMLP_AFTER_ALL) {
            _Pragma("omp barrier")
        }
        w->next = w->tid;
    } else {
        w->next += w->nt;
    }
    if (w->next < team->parts) return w->next;
    w->next = -1;
    w->phase++;
    return -1;
}
static inline void fastmlp_done(fastmlp_team *team, const fastmlp_worker *w, int part)
{
    (void)team; (void)w; (void)part;
}
static void fastmlp_wait_all(fastmlp_team *team, const fastmlp_worker *w)
{
    (void)team; (void)w;
    _Pragma("omp barrier")
}
#endif

/* Every part of the worker's current phase that it claims, its input done, as `part` (a
 * `continue` in the body still marks the part done) */
#define FASTMLP_EACH_PART(team, w, part, after) \
    for (int part; ((part) = fastmlp_claim((team), (w), (after))) >= 0; \
         fastmlp_done((team), (w), (part)))

/* A value one part's task changes while other threads may read it (the call's last batch) */
static inline int64_t fastmlp_read(const int64_t *p)
{
    int64_t value;
#ifdef _OPENMP
#pragma omp atomic read
#endif
    value = *p;
    return value;
}
static inline void fastmlp_write(int64_t *p, int64_t value)
{
#ifdef _OPENMP
#pragma omp atomic write
#endif
    *p = value;
}

/* Seconds on a monotonic clock where there is one */
static inline double fastmlp_seconds(void)
{
#if defined(_OPENMP)
    return omp_get_wtime();
#elif defined(CLOCK_MONOTONIC)
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
#else
    struct timespec now;
    timespec_get(&now, TIME_UTC);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
#endif
}

/* This thread's worker in the call's parallel region, at the call's first phase */
static inline fastmlp_worker fastmlp_worker_here(void)
{
    fastmlp_worker w = {0, 1, 0};
#ifdef _OPENMP
    w.tid = omp_get_thread_num();
    w.nt = omp_get_num_threads();
#endif
#ifndef FASTMLP_CLAIMS
    w.next = -1;
#endif
    return w;
}
#endif /* FASTMLP_TEAM_H */
