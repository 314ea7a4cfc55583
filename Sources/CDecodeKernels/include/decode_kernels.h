// Kernels for one decoding step of a recurrent model, and a small team of threads that runs
// such a step together. C, because the loops need the machine's widest vector instructions
// chosen at run time (AVX-512, AVX2 + FMA, or portable C), which Swift cannot select per
// function; the Swift side (LongConvRecurrence's FusedDecoder) decides what runs where.
#ifndef DECODE_KERNELS_H
#define DECODE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// `y[r] = dot(W[r, :], x) + (bias ? bias[r] : 0)` for `r < rows`; `W` row-major `[rows, cols]`.
typedef void (*lck_gemv_fn)(const float *W, long rows, long cols, const float *x, const float *bias,
                            float *y);

/// The same product with `W` in bfloat16 (the upper 16 bits of a Float32): each weight is
/// widened exactly to Float32 and the sums are the Float32 ones of `lck_gemv_fn`, so the result
/// is the Float32 product of the rounded weights. Half the bytes of a memory-bound step.
typedef void (*lck_gemv_bf16_fn)(const uint16_t *W, long rows, long cols, const float *x,
                                 const float *bias, float *y);

/// One step of a diagonal recurrence for channels `first ..< end` of a layer: channel `c` has
/// the complex states `offsets[c] ..< offsets[c + 1]` and input `x[c]`;
/// `s_n = p_n s_n + x[c]`, `y[c] = Re(sum_n r_n s_n) + (skip ? skip[c] x[c] : 0)` (state and
/// poles Double, residues Float32, the sum in Double). With `shared_poles` every channel uses
/// the poles at offset 0.
typedef void (*lck_channels_fn)(long first, long end, const long *offsets, int shared_poles,
                                const double *poles_re, const double *poles_im,
                                const float *residues_re, const float *residues_im,
                                const float *skip, double *state_re, double *state_im,
                                const float *x, float *y);

/// One step of ETSC's recurrence in the folded basis (LongConvRecurrence's `FoldedGrid`) for
/// channels `first ..< end`: channel `c` has the `m` slots `a = slots + c m` and the reversed
/// kernel `w = window + c m`. With `rescale != 1` every slot is first multiplied by it; then
/// `a[q] += in_scale x[c]` and
/// `y[c] = out_scale (sum_(p <= q) w[m - 1 - q + p] a[p] + sum_(p > q) w[p - q - 1] a[p])
///         + (skip ? skip[c] x[c] : 0)`
/// (the sums in Float32; the scaling and the skip, rounded to Float32, in Double).
typedef void (*lck_folded_fn)(long first, long end, long m, long q, float rescale, float in_scale,
                              double out_scale, const float *window, const float *skip,
                              float *slots, const float *x, float *y);

/// The kernels of one instruction set. A decoder keeps its own (chosen when it is made), so
/// no process-wide switch changes what runs under another decoder.
typedef struct {
  lck_gemv_fn gemv;
  lck_gemv_bf16_fn gemv_bf16;
  lck_channels_fn channels;
  lck_folded_fn folded;
  const char *isa;  ///< "avx512", "avx2" or "portable"
} lck_kernels;

/// The kernels of `isa` ("avx512", "avx2", "portable", or "best" for the machine's widest) in
/// `kernels`; returns 0 (and leaves `kernels` alone) when this machine lacks `isa`.
int lck_kernels_named(const char *isa, lck_kernels *kernels);

/// The instruction set of the machine's widest kernels: "avx512", "avx2" or "portable".
const char *lck_kernel_isa(void);

/// Memory for a decoder's weights and states, freed all at once: 64-byte aligned blocks cut from
/// chunks of 2 MB pages where the kernel allows (a step reads tens of megabytes; with 4 KB pages
/// it also walks thousands of page-table entries).
typedef struct lck_arena lck_arena;

/// An empty arena.
lck_arena *lck_arena_create(void);

/// `bytes` of zeroed memory that lives as long as the arena; `NULL` if memory is exhausted.
void *lck_arena_allocate(lck_arena *arena, size_t bytes);

/// Frees every block of the arena and the arena.
void lck_arena_destroy(lck_arena *arena);

/// A team of threads that run one function together: the caller is member 0.
typedef struct lck_team lck_team;

/// A team of `threads` members (at least 1); `NULL` if a thread could not be started.
lck_team *lck_team_create(int threads);

/// Stops and joins the team's threads and frees it.
void lck_team_destroy(lck_team *team);

/// Members in the team.
int lck_team_size(const lck_team *team);

/// Runs `body(context, member)` on every member at once and returns when all have returned.
/// Idle members spin briefly after a run (the next step usually follows at once), then sleep.
/// One run at a time per team.
void lck_team_run(lck_team *team, void (*body)(void *context, int member), void *context);

/// Whether every member's thread has started and none is asleep (idle for a while): otherwise a
/// run would first wait for them, which takes a millisecond or more on some virtual machines.
int lck_team_ready(lck_team *team);

/// Wakes the sleeping members without a run, so that they spin for the next one; returns at once.
void lck_team_wake(lck_team *team);

/// How many times a member woke from `lck_team_wake` alone (tests, diagnostics).
long lck_team_nudged_wakeups(lck_team *team);

/// Waits until every member of the running team has reached this barrier (spinning). Call
/// only from inside `body`, the same number of times on every member.
void lck_team_barrier(lck_team *team);

#ifdef __cplusplus
}
#endif

#endif
