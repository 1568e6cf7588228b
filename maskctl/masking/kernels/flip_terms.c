/* The compiled term of served masks: a task's flips (maskctl/masking/flips.py) read directly.
 *
 * A served layer holds W * R (R: its reference mask) and, for the weights R removes, their values
 * (rp/rc/rv: per output row, columns and values).  A task's flips against R come as two byte
 * streams: per output row the count of weights it removes and of weights it adds back, then
 * the column gaps of the removes and the gaps between the adds' positions in the row's removed
 * list.  A run length is coded as bytes of 255 ("255 more") ended by a byte below 255.
 *
 *   flip_terms  y[rows of g] += x[rows of g] C_g^T for every group g of token rows, where
 *               C_g = -W*R at a removed position and +W at an added one.  Each group's rows are
 *               transposed once (features x rows, padded to 8) so that every flip is a few
 *               contiguous vector multiply-adds over the group's rows; output rows go in tiles
 *               of 8 so that the result is added back as whole vectors; groups whose transposed
 *               rows fit L2 together sweep the weight rows once.
 *   flips_apply / flips_undo
 *               write a task's flips into the weight in place (saving what the removes zero)
 *               and undo it bit for bit: a single-task batch or a long group runs one dense
 *               product on the task's exact weight.
 *
 * Why C and not numba: one shared object with no runtime beyond libc (numba and LLVM cost
 * ~100 MB of a serving process), compiled once at install (hatch_build.py), with clones for
 * AVX-512, AVX2 and plain x86-64 chosen at load time.  maskctl/masking/kernels/reference.py
 * holds the plain-PyTorch twin every function here is tested against.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MASKCTL_KERNEL_VERSION 2
#define TILE 16     /* output rows per tile (one cache line per token row when added back) */
#define CHUNK 32    /* token rows per pass over a row's flips (four 8-wide accumulators) */
#define L2_BUDGET (384 * 1024)  /* bytes of transposed rows swept together over the weight rows */
#define MAX_PASS 64

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#define AI static inline __attribute__((always_inline))

typedef float v8 __attribute__((vector_size(32), aligned(4)));

int maskctl_kernel_version(void) { return MASKCTL_KERNEL_VERSION; }

AI int64_t read_run(const uint8_t **p) {
    uint8_t b = *(*p)++;
    if (__builtin_expect(b < 255, 1)) return b;  /* nearly every run fits one byte */
    int64_t value = 255;
    while ((b = *(*p)++) == 255) value += 255;
    return value + b;
}

AI v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
AI void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* rows r[0..7] of an 8x8 block become its columns */
AI void transpose8(v8 r[8]) {
    v8 t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[2 * k + 1] = __builtin_shufflevector(r[2 * k], r[2 * k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int k = 0; k < 2; k++)
        for (int h = 0; h < 2; h++) {
            u[4 * k + 2 * h] = __builtin_shufflevector(t[4 * k + h], t[4 * k + 2 + h], 0, 1, 8, 9, 4, 5, 12, 13);
            u[4 * k + 2 * h + 1] = __builtin_shufflevector(t[4 * k + h], t[4 * k + 2 + h], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int k = 0; k < 4; k++) {
        r[k] = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        r[k + 4] = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* xt (in x npad, row-major) = the n rows of x (stride in) transposed, zero beyond n */
AI void transpose_rows(const float *x, int64_t n, int64_t in, float *xt, int64_t npad) {
    int64_t r0 = 0;
    for (; r0 + 8 <= n; r0 += 8) {
        int64_t j0 = 0;
        for (; j0 + 8 <= in; j0 += 8) {
            v8 b[8];
            for (int k = 0; k < 8; k++) b[k] = load8(x + (r0 + k) * in + j0);
            transpose8(b);
            for (int k = 0; k < 8; k++) store8(xt + (j0 + k) * npad + r0, b[k]);
        }
        for (; j0 < in; j0++)
            for (int k = 0; k < 8; k++) xt[j0 * npad + r0 + k] = x[(r0 + k) * in + j0];
    }
    for (int64_t j = 0; j < in; j++) {
        for (int64_t r = r0; r < n; r++) xt[j * npad + r] = x[r * in + j];
        for (int64_t r = n; r < npad; r++) xt[j * npad + r] = 0.0f;
    }
}

/* One output row's term over NV*8 token rows: the removes (-W*R gathered from the row), then
 * the adds (W from the removed list); two accumulator sets so that successive flips do not wait
 * on each other's multiply-add. */
#define ROW_TERM(NV)                                                                                  \
    AI void row_term_##NV(const uint8_t **gaps, int64_t removes, int64_t adds, const float *wrow,    \
                          int64_t first, const uint16_t *rc, const float *rv, const float *xt,        \
                          int64_t npad, float *dst) {                                                 \
        v8 a[NV], b[NV];                                                                              \
        _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) a[q] = b[q] = (v8){0};                   \
        const uint8_t *p = *gaps;                                                                     \
        int64_t j = -1, t = 0;                                                                        \
        for (; t + 2 <= removes; t += 2) {                                                            \
            j += read_run(&p) + 1;                                                                    \
            float v = -wrow[j];                                                                       \
            const float *xv = xt + j * npad;                                                          \
            j += read_run(&p) + 1;                                                                    \
            float w = -wrow[j];                                                                       \
            const float *xw = xt + j * npad;                                                          \
            _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) {                                    \
                a[q] += v * load8(xv + 8 * q);                                                        \
                b[q] += w * load8(xw + 8 * q);                                                        \
            }                                                                                         \
        }                                                                                             \
        if (t < removes) {                                                                            \
            j += read_run(&p) + 1;                                                                    \
            float v = -wrow[j];                                                                       \
            _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) a[q] += v * load8(xt + j * npad + 8 * q); \
        }                                                                                             \
        int64_t k = first - 1;                                                                        \
        for (t = 0; t + 2 <= adds; t += 2) {                                                          \
            k += read_run(&p) + 1;                                                                    \
            float v = rv[k];                                                                          \
            const float *xv = xt + (int64_t)rc[k] * npad;                                             \
            k += read_run(&p) + 1;                                                                    \
            float w = rv[k];                                                                          \
            const float *xw = xt + (int64_t)rc[k] * npad;                                             \
            _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) {                                    \
                a[q] += v * load8(xv + 8 * q);                                                        \
                b[q] += w * load8(xw + 8 * q);                                                        \
            }                                                                                         \
        }                                                                                             \
        if (t < adds) {                                                                               \
            k += read_run(&p) + 1;                                                                    \
            float v = rv[k];                                                                          \
            const float *xv = xt + (int64_t)rc[k] * npad;                                             \
            _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) a[q] += v * load8(xv + 8 * q);       \
        }                                                                                             \
        *gaps = p;                                                                                    \
        _Pragma("GCC unroll 4") for (int q = 0; q < NV; q++) store8(dst + 8 * q, a[q] + b[q]);        \
    }
ROW_TERM(1)
ROW_TERM(2)
ROW_TERM(3)
ROW_TERM(4)

static __thread float *scratch = 0;
static __thread size_t scratch_floats = 0;

static float *scratch_for(size_t floats) {
    if (floats > scratch_floats) {
        free(scratch);
        scratch = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
        scratch_floats = scratch ? floats : 0;
    }
    return scratch;
}

/* tile[TILE][CHUNK] (output row x token row) added to y rows [0, rows) and columns [i0, i0+width) */
AI void add_tile(float tile[TILE][CHUNK], int64_t vectors, int64_t rows, int64_t width, float *y, int64_t out) {
    if (width == TILE) {
        for (int64_t q = 0; q < vectors; q++) {
            v8 b[TILE / 8][8];
            for (int h = 0; h < TILE / 8; h++) {
                for (int k = 0; k < 8; k++) b[h][k] = load8(tile[8 * h + k] + 8 * q);
                transpose8(b[h]);
            }
            int64_t here = rows - 8 * q < 8 ? rows - 8 * q : 8;
            for (int k = 0; k < here; k++) {
                float *yp = y + (8 * q + k) * out;
                for (int h = 0; h < TILE / 8; h++) store8(yp + 8 * h, load8(yp + 8 * h) + b[h][k]);
            }
        }
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < width; i++) y[r * out + i] += tile[i][r];
}

/* The groups first, first + step, ... of a call (see flip_terms). */
typedef struct {
    const int64_t *groups;
    int64_t n_groups, first, step, out, in;
    const float *wr, *rv, *x;
    const int32_t *rp;
    const uint16_t *rc;
    float *y;
} Terms;

#define START(g) t->groups[4 * (g)]
#define STOP(g) t->groups[4 * (g) + 1]

CLONES static int add_group_terms(const Terms *t) {
    const int64_t out = t->out, in = t->in;
    size_t need = 0;
    for (int64_t g = t->first; g < t->n_groups; g += t->step) need += (size_t)in * (size_t)((STOP(g) - START(g) + 7) & ~7);
    float *xt_all = scratch_for(need);
    if (need && !xt_all) return -1;
    float tile[TILE][CHUNK] __attribute__((aligned(32)));
    const uint8_t *counts[MAX_PASS], *gaps[MAX_PASS];
    float *xts[MAX_PASS];
    int64_t ids[MAX_PASS];
    size_t used = 0;
    for (int64_t g = t->first; g < t->n_groups;) {
        /* a pass: groups whose transposed rows fit L2 together (at least one) */
        int64_t n_pass = 0;
        size_t bytes = 0;
        for (; g < t->n_groups && n_pass < MAX_PASS; g += t->step) {
            size_t b = (size_t)in * (size_t)((STOP(g) - START(g) + 7) & ~7) * sizeof(float);
            if (n_pass && bytes + b > L2_BUDGET) break;
            bytes += b;
            ids[n_pass++] = g;
        }
        for (int64_t k = 0; k < n_pass; k++) {
            int64_t h = ids[k], n = STOP(h) - START(h), npad = (n + 7) & ~7;
            xts[k] = xt_all + used;
            used += (size_t)in * (size_t)npad;
            transpose_rows(t->x + START(h) * in, n, in, xts[k], npad);
            counts[k] = (const uint8_t *)(uintptr_t)t->groups[4 * h + 2];
            gaps[k] = (const uint8_t *)(uintptr_t)t->groups[4 * h + 3];
        }
        for (int64_t i0 = 0; i0 < out; i0 += TILE) {
            int64_t width = out - i0 < TILE ? out - i0 : TILE;
            for (int64_t k = 0; k < n_pass; k++) {
                int64_t h = ids[k], n = STOP(h) - START(h), npad = (n + 7) & ~7;
                const uint8_t *cp = counts[k], *gp = gaps[k];
                for (int64_t c0 = 0; c0 < npad; c0 += CHUNK) {
                    int64_t vectors = npad - c0 >= CHUNK ? CHUNK / 8 : (npad - c0) / 8;
                    const float *xc = xts[k] + c0;
                    int any = 0;
                    cp = counts[k];
                    gp = gaps[k];
                    for (int64_t i = i0; i < i0 + width; i++) {
                        int64_t removes = read_run(&cp), adds = read_run(&cp);
                        float *dst = tile[i - i0];
                        if (removes + adds == 0) {
                            memset(dst, 0, sizeof(float) * 8 * (size_t)vectors);
                            continue;
                        }
                        any = 1;
                        const float *wrow = t->wr + i * in;
                        switch (vectors) {
                            case 4: row_term_4(&gp, removes, adds, wrow, t->rp[i], t->rc, t->rv, xc, npad, dst); break;
                            case 3: row_term_3(&gp, removes, adds, wrow, t->rp[i], t->rc, t->rv, xc, npad, dst); break;
                            case 2: row_term_2(&gp, removes, adds, wrow, t->rp[i], t->rc, t->rv, xc, npad, dst); break;
                            default: row_term_1(&gp, removes, adds, wrow, t->rp[i], t->rc, t->rv, xc, npad, dst); break;
                        }
                    }
                    if (any) {
                        int64_t rows = n - c0 < CHUNK ? n - c0 : CHUNK;
                        add_tile(tile, vectors, rows, width, t->y + (START(h) + c0) * out + i0, out);
                    }
                }
                counts[k] = cp;
                gaps[k] = gp;
            }
        }
    }
    return 0;
}
#undef START
#undef STOP

/* A small pool of worker threads: a call's groups are dealt out in turn, the calling thread
 * takes the first share.  Workers sleep on a condition variable between calls (they never spin:
 * the dense products between two calls need every core). */
#define MAX_THREADS 64
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_go = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_size = 0, pool_pending = 0, pool_failed = 0, pool_active = 0;
static unsigned long pool_generation = 0;
static Terms pool_job[MAX_THREADS];
static unsigned long pool_born[MAX_THREADS];  /* the generation current when worker k was created */
static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;  /* one parallel call at a time */

static void *pool_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool_lock);
    unsigned long seen = pool_born[id];  /* a call made while it started is still its to run */
    for (;;) {
        while (pool_generation == seen) pthread_cond_wait(&pool_go, &pool_lock);
        seen = pool_generation;
        if (id >= pool_active) continue;  /* this call uses fewer threads */
        Terms job = pool_job[id];
        pthread_mutex_unlock(&pool_lock);
        int failed = job.n_groups > job.first ? add_group_terms(&job) : 0;
        pthread_mutex_lock(&pool_lock);
        pool_failed |= failed;
        if (--pool_pending == 0) pthread_cond_signal(&pool_done);
    }
    return NULL;
}

static void pool_forget(void) {  /* in a forked child: the workers did not come along */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t go = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
    pool_lock = fresh;
    call_lock = fresh;
    pool_go = go;
    pool_done = done;
    pool_size = pool_pending = pool_failed = pool_active = 0;
}

static int pool_grow(int workers) {
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, pool_forget);
        registered = 1;
    }
    while (pool_size < workers) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pool_born[pool_size + 1] = pool_generation;
        int failed = pthread_create(&thread, &attr, pool_worker, (void *)(intptr_t)(pool_size + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool_size++;
    }
    return pool_size;
}

/* groups[4 g .. 4 g + 3] = (first token row, end token row, address of the counts stream, of
 * the gaps stream) of group g; up to ``threads`` threads take the groups in turn.  Returns 0, or
 * -1 when scratch rows could not be allocated (some terms are then missing: the caller fails). */
int flip_terms(int64_t n_groups, const int64_t *groups, const float *wr, int64_t out, int64_t in,
               const int32_t *rp, const uint16_t *rc, const float *rv, const float *x, float *y, int64_t threads) {
    Terms base = {groups, n_groups, 0, 1, out, in, wr, rv, x, rp, rc, y};
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > n_groups) threads = n_groups;
    if (threads <= 1) return add_group_terms(&base);
    pthread_mutex_lock(&call_lock);
    pthread_mutex_lock(&pool_lock);
    threads = 1 + pool_grow((int)threads - 1);
    for (int k = 0; k < threads; k++) {
        pool_job[k] = base;
        pool_job[k].first = k;
        pool_job[k].step = threads;
    }
    pool_pending = (int)threads - 1;
    pool_active = (int)threads;
    pool_failed = 0;
    pool_generation++;
    pthread_cond_broadcast(&pool_go);
    pthread_mutex_unlock(&pool_lock);
    int failed = add_group_terms(&pool_job[0]);
    pthread_mutex_lock(&pool_lock);
    while (pool_pending) pthread_cond_wait(&pool_done, &pool_lock);
    failed |= pool_failed;
    pthread_mutex_unlock(&pool_lock);
    pthread_mutex_unlock(&call_lock);
    return failed ? -1 : 0;
}

/* weight := the task's exact weight; saved[t] = the value the t-th remove zeroed */
void flips_apply(const uint8_t *counts, const uint8_t *gaps, int64_t out, int64_t in, float *wr,
                 const int32_t *rp, const uint16_t *rc, const float *rv, float *saved) {
    int64_t s = 0;
    for (int64_t i = 0; i < out; i++) {
        int64_t removes = read_run(&counts), adds = read_run(&counts);
        float *row = wr + i * in;
        for (int64_t t = 0, j = -1; t < removes; t++) {
            j += read_run(&gaps) + 1;
            saved[s++] = row[j];
            row[j] = 0.0f;
        }
        for (int64_t t = 0, k = rp[i] - 1; t < adds; t++) {
            k += read_run(&gaps) + 1;
            row[rc[k]] = rv[k];
        }
    }
}

/* flips_apply undone: the removes get their saved values, the adds are zero again */
void flips_undo(const uint8_t *counts, const uint8_t *gaps, int64_t out, int64_t in, float *wr,
                const int32_t *rp, const uint16_t *rc, const float *saved) {
    int64_t s = 0;
    for (int64_t i = 0; i < out; i++) {
        int64_t removes = read_run(&counts), adds = read_run(&counts);
        float *row = wr + i * in;
        for (int64_t t = 0, j = -1; t < removes; t++) {
            j += read_run(&gaps) + 1;
            row[j] = saved[s++];
        }
        for (int64_t t = 0, k = rp[i] - 1; t < adds; t++) {
            k += read_run(&gaps) + 1;
            row[rc[k]] = 0.0f;
        }
    }
}
