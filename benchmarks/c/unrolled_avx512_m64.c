/* The unrolled encoder for float64 and m = 64 only, hand-vectorized with
 * AVX-512: how much faster can a layer get than compiled code? A reference
 * point for benchmarks/compiled.py, not part of the library.
 *
 * Same algorithm as the numba kernel: v = z + c − Σ_r z_r G_step[r] over the
 * nonzero z_r, the threshold by Michelot steps from the previous layer's,
 * the clamp in the momentum pass, a fixed point ending a row early, and the
 * exact vertex where the step vanishes. What differs is the code:
 *   - v stays in eight 512-bit registers through the layer: the product
 *     sweeps every listed row of G_step once, with no load or store of v,
 *     and the threshold's passes run on the registers;
 *   - comparisons give bit masks: counts are popcounts, and the list of
 *     nonzero entries of z is rebuilt every layer from a 64-bit mask;
 *   - two samples are encoded layer by layer side by side, so that the
 *     processor overlaps their dependency chains.
 * The sums over the listed rows run in another order than the numba
 * kernel's four-row sweeps, so codes agree to rounding, not bit for bit. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define M 64
#define NV (M / 8)

typedef struct {
    double z[M] __attribute__((aligned(64)));
    double x[M] __attribute__((aligned(64)));
    double c[M] __attribute__((aligned(64)));
    int support[M];
    int n_support;
    int n_stable;
    double tau;
} row_state;

/* Returns 1 for a row far from zero (max |c| >= 1), which is left alone, as
 * the numba kernel leaves it to its kernel for such rows. */
static inline int start_row(row_state *s, const double *c_row, double inv_L)
{
    const __m512d zero = _mm512_setzero_pd();
    __m512d big = zero;
    for (int q = 0; q < NV; q++) {
        const __m512d cq = _mm512_mul_pd(_mm512_loadu_pd(c_row + 8 * q), _mm512_set1_pd(inv_L));
        big = _mm512_max_pd(big, _mm512_abs_pd(cq));
        _mm512_store_pd(s->c + 8 * q, cq);
        _mm512_store_pd(s->z + 8 * q, zero);
        _mm512_store_pd(s->x + 8 * q, zero);
    }
    s->n_support = 0;
    s->n_stable = 0;
    s->tau = INFINITY;
    return _mm512_reduce_max_pd(big) >= 1.0;
}

/* Σ of the entries of v above tau, and their number. */
static inline double above(const __m512d *v, double tau, double *count)
{
    const __m512d t = _mm512_set1_pd(tau);
    __m512d acc = _mm512_setzero_pd();
    int n = 0;
    for (int q = 0; q < NV; q++) {
        __mmask8 k = _mm512_cmp_pd_mask(v[q], t, _CMP_GT_OQ);
        acc = _mm512_mask_add_pd(acc, k, acc, v[q]);
        n += __builtin_popcount(k);
    }
    *count = n;
    return _mm512_reduce_add_pd(acc);
}

/* One layer of one row; returns 1 once the row has reached a fixed point. */
static inline __attribute__((always_inline)) int layer(row_state *restrict s, const double *restrict G_step,
                                                       double beta)
{
    const __m512d zero = _mm512_setzero_pd();
    __m512d v[NV];
    for (int q = 0; q < NV; q++)
        v[q] = _mm512_add_pd(_mm512_load_pd(s->z + 8 * q), _mm512_load_pd(s->c + 8 * q));
    for (int a = 0; a < s->n_support; a++) {
        const int r = s->support[a];
        const __m512d w = _mm512_set1_pd(s->z[r]);
        const double *g = G_step + r * M;
        for (int q = 0; q < NV; q++)
            v[q] = _mm512_fnmadd_pd(w, _mm512_load_pd(g + 8 * q), v[q]);
    }
    if (s->n_support == 1) {
        const int r = s->support[0];
        if (s->c[r] - s->z[r] * G_step[r * M + r] == 0.0)
            v[r >> 3][r & 7] = s->z[r];
    }
    double tau = s->tau, count, previous = -1.0;
    double total = above(v, tau, &count);
    if (count == 0) {
        __m512d vmax = v[0];
        for (int q = 1; q < NV; q++)
            vmax = _mm512_max_pd(vmax, v[q]);
        tau = _mm512_reduce_max_pd(vmax) - 1.0;
    } else {
        const double t_new = (total - 1.0) / count;
        if (t_new >= tau)
            previous = count;
        tau = t_new;
    }
    for (int pass = 0; pass <= M; pass++) {
        total = above(v, tau, &count);
        if (count == 0)
            break;
        const double t_new = (total - 1.0) / count;
        if (count >= previous && previous > 0) {
            tau = t_new;
            break;
        }
        previous = count;
        tau = t_new;
    }
    s->tau = tau;
    const __m512d t = _mm512_set1_pd(tau), b = _mm512_set1_pd(beta);
    uint64_t nonzero = 0;
    int n_same = 0;
    for (int q = 0; q < NV; q++) {
        const __m512d xn = _mm512_max_pd(_mm512_sub_pd(v[q], t), zero);
        const __m512d xo = _mm512_load_pd(s->x + 8 * q);
        n_same += __builtin_popcount(_mm512_cmp_pd_mask(xn, xo, _CMP_EQ_OQ));
        const __m512d zq = _mm512_fmadd_pd(b, _mm512_sub_pd(xn, xo), xn);
        nonzero |= (uint64_t)_mm512_cmp_pd_mask(zq, zero, _CMP_NEQ_UQ) << (8 * q);
        _mm512_store_pd(s->z + 8 * q, zq);
        _mm512_store_pd(s->x + 8 * q, xn);
    }
    int n = 0;
    while (nonzero) {
        s->support[n++] = __builtin_ctzll(nonzero);
        nonzero &= nonzero - 1;
    }
    s->n_support = n;
    if (n_same == M)
        return ++s->n_stable == 2;
    s->n_stable = 0;
    return 0;
}

/* Rows start:stop of C (n × 64, C order) into X; G_step = G·inv_L, 64 × 64,
 * on a 64-byte boundary. */
void wlsc_unrolled_avx512_m64(const double *restrict G_step, const double *restrict C, double inv_L,
                              const double *restrict betas, long n_layers, double *restrict X,
                              unsigned char *restrict far_rows, long start, long stop)
{
    row_state a, b;
    long i = start;
    for (; i + 1 < stop; i += 2) {
        int done_a = start_row(&a, C + i * M, inv_L);
        int done_b = start_row(&b, C + (i + 1) * M, inv_L);
        far_rows[i] = (unsigned char)done_a;
        far_rows[i + 1] = (unsigned char)done_b;
        for (long k = 0; k < n_layers && !(done_a && done_b); k++) {
            if (!done_a)
                done_a = layer(&a, G_step, betas[k]);
            if (!done_b)
                done_b = layer(&b, G_step, betas[k]);
        }
        for (int j = 0; j < M; j++) {
            if (!far_rows[i])
                X[i * M + j] = a.x[j];
            if (!far_rows[i + 1])
                X[(i + 1) * M + j] = b.x[j];
        }
    }
    for (; i < stop; i++) {
        if ((far_rows[i] = (unsigned char)start_row(&a, C + i * M, inv_L)))
            continue;
        for (long k = 0; k < n_layers; k++)
            if (layer(&a, G_step, betas[k]))
                break;
        for (int j = 0; j < M; j++)
            X[i * M + j] = a.x[j];
    }
}
