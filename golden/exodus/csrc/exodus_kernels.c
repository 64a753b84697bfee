/*
 * Fused CPU loops of EXODUS (see golden/exodus/kernels.py, which builds and
 * calls this file through ctypes). Plain C, no Python or torch headers, so
 * it compiles in about a second with the system C compiler.
 *
 * Tensors are contiguous and time-major: element (t, i) is at t * n + i.
 *
 * Compiled with -ffp-contract=off and without -ffast-math: every
 * multiplication and addition is rounded on its own, in the same order as
 * the torch reference, so the forward spikes are bit-identical to it.
 */
#include <stdint.h>

#define DEFINE_KERNELS(REAL, SUFFIX)                                                        \
/* u[t] = alpha u[t-1] + z[t] - theta s[t-1]   (after_decay)                          \
 * u[t] = alpha (u[t-1] - theta s[t-1]) + z[t] (before decay); optional lower clamp \
 * with mask[t] = (unclamped u >= u_min); s[t] = (u[t] >= theta). */                    \
void lif_forward_##SUFFIX(const REAL *z, const REAL *u0, REAL *u, REAL *s, uint8_t *mask, \
                          int64_t T, int64_t n, REAL alpha, REAL theta, int after_decay,   \
                          int has_clamp, REAL u_min) {                                     \
    for (int64_t t = 0; t < T; ++t) {                                                      \
        const REAL *up = t ? u + (t - 1) * n : u0;                                         \
        const REAL *sp = t ? s + (t - 1) * n : 0;                                          \
        const REAL *zt = z + t * n;                                                        \
        REAL *ut = u + t * n, *st = s + t * n;                                             \
        for (int64_t i = 0; i < n; ++i) {                                                  \
            REAL reset = sp ? sp[i] * theta : (REAL)0;                                     \
            REAL v;                                                                        \
            if (after_decay) {                                                             \
                v = up[i] * alpha;                                                         \
                v = v + zt[i];                                                             \
                v = v - reset;                                                             \
            } else {                                                                       \
                v = up[i] - reset;                                                         \
                v = v * alpha;                                                             \
                v = v + zt[i];                                                             \
            }                                                                              \
            if (has_clamp) {                                                               \
                mask[t * n + i] = v >= u_min;                                              \
                if (v < u_min) v = u_min;                                                  \
            }                                                                              \
            ut[i] = v;                                                                     \
            st[i] = v >= theta ? (REAL)1 : (REAL)0;                                        \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
/* lambda[t] = m[t] (f'[t] g[t] + c[t] lambda[t+1]), lambda[T] = 0, with              \
 * c = alpha - theta f' (mode 0), alpha (1 - theta f') (mode 1), alpha (mode 2). */      \
void chi_scan_##SUFFIX(const REAL *fprime, const REAL *g, const uint8_t *mask, REAL *lam,  \
                       int64_t T, int64_t n, REAL alpha, REAL theta, int mode) {           \
    for (int64_t t = T - 1; t >= 0; --t) {                                                 \
        const REAL *f = fprime + t * n, *gt = g + t * n;                                   \
        const REAL *next = t + 1 < T ? lam + (t + 1) * n : 0;                              \
        REAL *out = lam + t * n;                                                           \
        for (int64_t i = 0; i < n; ++i) {                                                  \
            REAL c = mode == 0 ? alpha - theta * f[i]                                      \
                   : mode == 1 ? alpha * ((REAL)1 - theta * f[i]) : alpha;                 \
            REAL v = f[i] * gt[i] + (next ? c * next[i] : (REAL)0);                        \
            out[i] = (mask && !mask[t * n + i]) ? (REAL)0 : v;                             \
        }                                                                                  \
    }                                                                                      \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
