/* int8 x int8 matrix-vector products for decoding on x86 CPUs with AVX512-VNNI.
 *
 * Built on first use by chatrec/backends/native.py with the system C compiler; without a compiler
 * or without VNNI the local backend keeps torch's own int8 kernels.
 *
 * Weights: int8 per row with a float scale per row (symmetric), stored +128 as uint8 and packed in
 * groups of 16 rows: for group g, k-quad q and row r of the group,
 *     wp[(g * K / 4 + q) * 64 + r * 4 + j] = w[16 g + r][4 q + j] + 128.
 * One 64-byte load then feeds VPDPBUSD for 16 rows at once (4 inputs each), so the weights stream
 * through memory in order and no horizontal sums are needed.
 * Activations: quantised on the fly to int8 in blocks of 32 values, each with its own scale (the
 * scheme llama.cpp calls Q8_0), which keeps the product within ~1e-5 cosine of the float one.
 *     y[n] = sw[n] * sum_b sx[b] * sum_{k in b} (w[n][k] + 128) * xq[k]  -  sw[n] * C,
 *     C = 128 * sum_b sx[b] * sum_{k in b} xq[k]          (the +128 offset, the same for every row)
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static inline __m512 load16(const void *x, int bf16, int k) {
    if (bf16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)x + k));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)x + k);
}

static inline void store16(void *y, int bf16, int n, __m512 v) {
    if (bf16) { /* round to nearest even */
        __m512i i = _mm512_castps_si512(v);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(i, 16), _mm512_set1_epi32(1));
        i = _mm512_add_epi32(i, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
        _mm256_storeu_si256((__m256i *)((uint16_t *)y + n), _mm512_cvtepi32_epi16(_mm512_srli_epi32(i, 16)));
    } else {
        _mm512_storeu_ps((float *)y + n, v);
    }
}

/* Quantise one row of K values (K a multiple of 32); returns C. */
static float quantize_row(const void *x, int bf16, int K, int8_t *xq, float *sx) {
    float c = 0.0f;
    for (int b = 0; b < K / 32; b++) {
        __m512 lo = load16(x, bf16, 32 * b), hi = load16(x, bf16, 32 * b + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
        float scale = amax / 127.0f;
        sx[b] = scale;
        if (!(scale > 0.0f) || !isfinite(scale)) { /* zeros, or inf/nan that nothing can represent */
            _mm256_storeu_si256((__m256i *)(xq + 32 * b), _mm256_setzero_si256());
            sx[b] = scale > 0.0f ? scale : 0.0f;
            continue;
        }
        __m512 inv = _mm512_set1_ps(1.0f / scale);
        __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, inv)); /* round to nearest */
        __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, inv));
        _mm_storeu_si128((__m128i *)(xq + 32 * b), _mm512_cvtsepi32_epi8(qlo));
        _mm_storeu_si128((__m128i *)(xq + 32 * b + 16), _mm512_cvtsepi32_epi8(qhi));
        c += 128.0f * scale * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
    }
    return c;
}

/* Up to four 16-row groups starting at group g0, one input row. */
static void groups(const uint8_t *wp, const float *sw, const float *bias, int K, const int8_t *xq,
                   const float *sx, float c, void *y, int y_bf16, int g0, int ng) {
    const int nb = K / 32;
    const uint8_t *w[4];
    __m512 f[4];
    for (int r = 0; r < ng; r++) {
        w[r] = wp + (size_t)(g0 + r) * 16 * K;
        f[r] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const int32_t *xb = (const int32_t *)(xq + 32 * b);
        const size_t off = (size_t)b * 512;
        __m512 s = _mm512_set1_ps(sx[b]);
        if (ng == 4) {
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < 8; j++) {
                __m512i xv = _mm512_set1_epi32(xb[j]);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512((const void *)(w[0] + off + 64 * j)), xv);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512((const void *)(w[1] + off + 64 * j)), xv);
                a2 = _mm512_dpbusd_epi32(a2, _mm512_loadu_si512((const void *)(w[2] + off + 64 * j)), xv);
                a3 = _mm512_dpbusd_epi32(a3, _mm512_loadu_si512((const void *)(w[3] + off + 64 * j)), xv);
            }
            f[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), s, f[0]);
            f[1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1), s, f[1]);
            f[2] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), s, f[2]);
            f[3] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a3), s, f[3]);
        } else {
            for (int r = 0; r < ng; r++) {
                __m512i a = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++)
                    a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512((const void *)(w[r] + off + 64 * j)),
                                            _mm512_set1_epi32(xb[j]));
                f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, f[r]);
            }
        }
    }
    const __m512 cv = _mm512_set1_ps(c);
    for (int r = 0; r < ng; r++) {
        const int n = (g0 + r) * 16;
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(f[r], cv), _mm512_loadu_ps(sw + n));
        if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n));
        store16(y, y_bf16, n, v);
    }
}

/* y[M, N] = x[M, K] @ w^T (+ bias). N a multiple of 16, K a multiple of 32; x and y float32 or
 * bfloat16 (row-major, contiguous); bias float32 or NULL. Returns 0, or -1 if out of memory. */
int q8_matmul(const uint8_t *wp, const float *sw, const float *bias, int N, int K, int M,
              const void *x, int x_bf16, void *y, int y_bf16, int nthreads) {
    int8_t *xq = (int8_t *)malloc((size_t)K);
    float *sx = (float *)malloc(sizeof(float) * (size_t)(K / 32));
    if (!xq || !sx) {
        free(xq);
        free(sx);
        return -1;
    }
    const int ngroups = N / 16, quads = (ngroups + 3) / 4;
    const size_t esize_x = x_bf16 ? 2 : 4, esize_y = y_bf16 ? 2 : 4;
    for (int m = 0; m < M; m++) {
        const void *xm = (const char *)x + (size_t)m * K * esize_x;
        void *ym = (char *)y + (size_t)m * N * esize_y;
        float c = quantize_row(xm, x_bf16, K, xq, sx);
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int q = 0; q < quads; q++) {
            int g0 = 4 * q, ng = ngroups - g0 < 4 ? ngroups - g0 : 4;
            groups(wp, sw, bias, K, xq, sx, c, ym, y_bf16, g0, ng);
        }
    }
    free(xq);
    free(sx);
    return 0;
}
