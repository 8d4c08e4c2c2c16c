/* The numba unrolled encoder (sklearn_wlsc/_backends/_numba.py,
 * unrolled_encode and simplex_threshold), line for line in C, for one
 * float type. Included by unrolled.c once per type with
 *   WLSC_T    the float type,
 *   WLSC_NAME the exported function's name,
 *   WLSC_THR  the name of the threshold helper.
 * Same algorithm, same data layout, same order of operations as written in
 * Python; the compiler (gcc, with the flags of benchmarks/compiled.py that
 * match numba's fast-math set) chooses the vectorization. */

static inline WLSC_T WLSC_THR(const WLSC_T *restrict v, long m, WLSC_T tau)
{
    WLSC_T total = 0, count = 0, previous = -1;
    for (long j = 0; j < m; j++) {
        int above = v[j] > tau;
        total += above ? v[j] : 0;
        count += above ? 1 : 0;
    }
    if (count == 0) {
        WLSC_T vmax = v[0];
        for (long j = 1; j < m; j++)
            vmax = vmax > v[j] ? vmax : v[j];
        tau = vmax - 1;
    } else {
        WLSC_T t_new = (total - 1) / count;
        if (t_new >= tau)
            previous = count;
        tau = t_new;
    }
    for (long pass = 0; pass <= m; pass++) {
        total = 0;
        count = 0;
        for (long j = 0; j < m; j++) {
            int above = v[j] > tau;
            total += above ? v[j] : 0;
            count += above ? 1 : 0;
        }
        if (count == 0)
            break;
        WLSC_T t_new = (total - 1) / count;
        if (count >= previous && previous > 0) {
            tau = t_new;
            break;
        }
        previous = count;
        tau = t_new;
    }
    return tau;
}

/* Rows start:stop of C (n × m, C order) into X; G_step = G·inv_L, m × m.
 * Rows with max |C_i·inv_L| >= 1 are flagged in far_rows and left alone, as
 * the numba kernel leaves them to its kernel for values far from zero. */
void WLSC_NAME(const WLSC_T *restrict G_step, const WLSC_T *restrict C, WLSC_T inv_L,
               const WLSC_T *restrict betas, long n_layers, WLSC_T *restrict X, long m,
               unsigned char *restrict far_rows, long start, long stop)
{
    size_t bytes = ((m * sizeof(WLSC_T) + 63) / 64) * 64;
    WLSC_T *z = aligned_alloc(64, bytes), *x = aligned_alloc(64, bytes);
    WLSC_T *v = aligned_alloc(64, bytes), *c = aligned_alloc(64, bytes);
    long *support = malloc(m * sizeof(long));
    for (long i = start; i < stop; i++) {
        WLSC_T c_max = -INFINITY, c_min = INFINITY;
        for (long j = 0; j < m; j++) {
            z[j] = 0;
            x[j] = 0;
            c[j] = C[i * m + j] * inv_L;
            c_max = c_max > c[j] ? c_max : c[j];
            c_min = c_min < c[j] ? c_min : c[j];
        }
        if ((c_max > -c_min ? c_max : -c_min) >= 1) {
            far_rows[i] = 1;
            continue;
        }
        long n_support = 0, n_stable = 0, n_nonzero = 0;
        WLSC_T tau = INFINITY;
        for (long k = 0; k < n_layers; k++) {
            /* v = z + c − Σ_r z_r G_step[r], four listed rows per sweep */
            long a = 0;
            if (n_support >= 4) {
                const WLSC_T *g0 = G_step + support[0] * m, *g1 = G_step + support[1] * m;
                const WLSC_T *g2 = G_step + support[2] * m, *g3 = G_step + support[3] * m;
                WLSC_T w0 = z[support[0]], w1 = z[support[1]];
                WLSC_T w2 = z[support[2]], w3 = z[support[3]];
                for (long j = 0; j < m; j++)
                    v[j] = (z[j] + c[j]) - ((w0 * g0[j] + w1 * g1[j]) + (w2 * g2[j] + w3 * g3[j]));
                a = 4;
            } else {
                for (long j = 0; j < m; j++)
                    v[j] = z[j] + c[j];
            }
            for (; a + 4 <= n_support; a += 4) {
                const WLSC_T *g0 = G_step + support[a] * m, *g1 = G_step + support[a + 1] * m;
                const WLSC_T *g2 = G_step + support[a + 2] * m, *g3 = G_step + support[a + 3] * m;
                WLSC_T w0 = z[support[a]], w1 = z[support[a + 1]];
                WLSC_T w2 = z[support[a + 2]], w3 = z[support[a + 3]];
                for (long j = 0; j < m; j++)
                    v[j] -= (w0 * g0[j] + w1 * g1[j]) + (w2 * g2[j] + w3 * g3[j]);
            }
            long rest = n_support - a;
            if (rest == 3) {
                const WLSC_T *g0 = G_step + support[a] * m, *g1 = G_step + support[a + 1] * m;
                const WLSC_T *g2 = G_step + support[a + 2] * m;
                WLSC_T w0 = z[support[a]], w1 = z[support[a + 1]], w2 = z[support[a + 2]];
                for (long j = 0; j < m; j++)
                    v[j] -= (w0 * g0[j] + w1 * g1[j]) + w2 * g2[j];
            } else if (rest == 2) {
                const WLSC_T *g0 = G_step + support[a] * m, *g1 = G_step + support[a + 1] * m;
                WLSC_T w0 = z[support[a]], w1 = z[support[a + 1]];
                for (long j = 0; j < m; j++)
                    v[j] -= w0 * g0[j] + w1 * g1[j];
            } else if (rest == 1) {
                const WLSC_T *g0 = G_step + support[a] * m;
                WLSC_T w0 = z[support[a]];
                for (long j = 0; j < m; j++)
                    v[j] -= w0 * g0[j];
            }
            /* z = z_r e_r with a vanishing step at r: v_r is exactly z_r */
            if (n_nonzero == 1) {
                for (long b = 0; b < n_support; b++) {
                    long r = support[b];
                    if (z[r] != 0 && c[r] - z[r] * G_step[r * m + r] == 0)
                        v[r] = z[r];
                }
            }
            tau = WLSC_THR(v, m, tau);
            WLSC_T beta = betas[k];
            long n_same = 0;
            n_nonzero = 0;
            for (long j = 0; j < m; j++) {
                WLSC_T d = v[j] - tau;
                WLSC_T xn = d > 0 ? d : 0;
                n_same += xn == x[j];
                WLSC_T zj = xn + beta * (xn - x[j]);
                n_nonzero += zj != 0;
                z[j] = zj;
                x[j] = xn;
            }
            if (n_same == m) {
                if (++n_stable == 2)
                    break;
            } else {
                n_stable = 0;
            }
            long n_listed = 0;
            for (long b = 0; b < n_support; b++)
                n_listed += z[support[b]] != 0;
            if (n_listed != n_nonzero || n_support > n_nonzero + 4) {
                n_support = 0;
                for (long j = 0; j < m; j++) {
                    support[n_support] = j;
                    n_support += z[j] != 0;
                }
            }
        }
        for (long j = 0; j < m; j++)
            X[i * m + j] = x[j];
    }
    free(z);
    free(x);
    free(v);
    free(c);
    free(support);
}
