/* int8 x int8 matrix-vector products (and whole decoder layers) for decoding on x86 CPUs, in two
 * instruction sets from one source: AVX512-VNNI (built with -mavx512vnni ...) and AVX2 + FMA (built
 * with -mavx2 -mfma; what most laptops have). native.py builds the one the CPU runs best, with the
 * system C compiler, on first use; without a compiler the local backend keeps torch's int8 kernels.
 *
 * Weights: int8 per row with a float scale per row (symmetric, in [-127, 127]), packed in groups of
 * R rows (R = q8_group_rows(): 16 for AVX512, 32 for AVX2), each made of sub-groups of V rows
 * (V = q8_sub_rows(): 16, 8). For group g, block b of 32 inputs, k-quad j, sub-group r and row i:
 *     wp[g R K + b 32 R + j 4 R + r 4 V + i 4 + t] = w[R g + V r + i][32 b + 4 j + t] + OFFSET
 * (OFFSET = q8_weight_offset()). One 4V-byte load holds 4 inputs of V rows, a group's weights are
 * one sequential stream, and no horizontal sums are needed.
 *   AVX512-VNNI: VPDPBUSD multiplies unsigned bytes by signed ones and adds 4 products into int32,
 *                so weights are stored +128 (OFFSET 128) and the offset is taken out once per row:
 *                y[n] = sw[n] * (sum_b sx[b] * sum_{k in b} (w[n][k] + 128) * xq[k]  -  C),
 *                C = 128 * sum_b sx[b] * sum_{k in b} xq[k]   (the same for every row).
 *   AVX2:        VPMADDUBSW multiplies unsigned by signed bytes into saturating int16 pairs; with
 *                |x| as the unsigned side and sign(x) moved onto the weight (VPSIGNB) every pair
 *                stays within 2 * 127 * 127 < 32767, so nothing saturates; VPMADDWD then adds the
 *                pairs into int32. Weights are stored signed (OFFSET 0) and C is 0.
 * Activations: quantised on the fly to int8 in blocks of 32 values, each with its own scale (the
 * scheme llama.cpp calls Q8_0), which keeps the product within ~1e-5 cosine of the float one.
 * Also here: f16_scores, a float16 matrix times a float32 vector (a large catalog's dense scores).
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

/* This thread's contiguous share of `ngroups` groups (threads get equal shares, +-1). */
static void share(int ngroups, int *begin, int *end) {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    *begin = (int)((long)ngroups * t / nt);
    *end = (int)((long)ngroups * (t + 1) / nt);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
/* ================================ AVX512-VNNI: 16 floats per vector ================================ */
#define GROUP 16
#define SUB 16
#define OFFSET 128
#define ISA "avx512vnni"

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

/* One block of 32 inputs for n groups (n a constant where called: the accumulators stay in registers). */
static inline __attribute__((always_inline)) void block(const uint8_t *const *w, size_t off, const int32_t *xb,
                                                        __m512 s, __m512 *f, const int n) {
    __m512i a[12];
    for (int r = 0; r < n; r++) a[r] = _mm512_setzero_si512();
    for (int j = 0; j < 8; j++) {
        const __m512i xv = _mm512_set1_epi32(xb[j]);
        for (int r = 0; r < n; r++)
            a[r] = _mm512_dpbusd_epi32(a[r], _mm512_loadu_si512((const void *)(w[r] + off + 64 * j)), xv);
    }
    for (int r = 0; r < n; r++) f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r]), s, f[r]);
}

/* Up to twelve 16-row groups starting at group g0, one input row. More groups at a time keep more
 * weight streams in flight per thread. Measured over the 0.5B shape's large products (interleaved
 * runs, grouped by what the bandwidth probe read at the time): 4 -> 8 groups 40.3 -> 44.8 GB/s when
 * the host's memory reads ~58 GB/s, 31.5 -> 32.9 at ~35; 8 -> 12 groups 42.3 -> 45.5 at ~52 and
 * 32.1 -> 33.2 at ~34; 16 groups spill registers and lose (42.8 and 31.1 against 44.9 and 31.9). */
static void groups(const uint8_t *wp, const float *sw, const float *bias, int K, const int8_t *xq,
                   const float *sx, float c, void *y, int y_bf16, int g0, int ng) {
    const int nb = K / 32;
    const uint8_t *w[12];
    __m512 f[12];
    for (int r = 0; r < ng; r++) {
        w[r] = wp + (size_t)(g0 + r) * 16 * K;
        f[r] = _mm512_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const int32_t *xb = (const int32_t *)(xq + 32 * b);
        const size_t off = (size_t)b * 512;
        __m512 s = _mm512_set1_ps(sx[b]);
        if (ng == 12) {
            block(w, off, xb, s, f, 12);
        } else if (ng == 8) {
            block(w, off, xb, s, f, 8);
        } else if (ng == 4) {
            block(w, off, xb, s, f, 4);
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

/* Groups [g_begin, g_end) of one matrix: twelve at a time, then eight, four, what is left. */
static void group_range(const uint8_t *wp, const float *sw, const float *bias, int K, const int8_t *xq,
                        const float *sx, float c, void *y, int y_bf16, int g_begin, int g_end) {
    for (int g = g_begin; g < g_end;) {
        const int left = g_end - g, ng = left >= 12 ? 12 : left >= 8 ? 8 : left >= 4 ? 4 : left;
        groups(wp, sw, bias, K, xq, sx, c, y, y_bf16, g, ng);
        g += ng;
    }
}

/* exp for 16 floats: range reduction to 2^n * e^r, |r| <= ln2/2, degree-6 polynomial (~1 ulp) */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static void rmsnorm(const float *x, const float *w, int D, float eps, float *out) {
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < D; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)D + eps));
    for (int i = 0; i < D; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv), _mm512_loadu_ps(w + i)));
}

static void store_row(void *dst, int bf16, const float *src, int n) {
    for (int i = 0; i < n; i += 16) store16(dst, bf16, i, _mm512_loadu_ps(src + i));
}

/* h += x (n floats) */
static void add_into(float *h, const float *x, int n) {
    for (int i = 0; i < n; i += 16) _mm512_storeu_ps(h + i, _mm512_add_ps(_mm512_loadu_ps(h + i), _mm512_loadu_ps(x + i)));
}

/* g = SiLU(g) * u = g * u / (1 + e^-g) (n floats) */
static void silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i += 16) {
        const __m512 gv = _mm512_loadu_ps(g + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        _mm512_storeu_ps(g + i, _mm512_div_ps(_mm512_mul_ps(gv, _mm512_loadu_ps(u + i)),
                                              _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
}

/* One query head over S cached positions (K, V: S rows of hd, the cache's dtype) -> out (hd floats). */
static void attend(const float *q, const void *K, const void *V, int S, int hd, int bf16, float scale,
                   float *scores, float *out) {
    const size_t es = bf16 ? 2 : 4;
    float mx = -INFINITY;
    for (int s = 0; s < S; s++) {
        const char *ks = (const char *)K + (size_t)s * hd * es;
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), load16(ks, bf16, i), acc);
        scores[s] = _mm512_reduce_add_ps(acc) * scale;
        mx = scores[s] > mx ? scores[s] : mx;
    }
    int s = 0;
    __m512 sum16 = _mm512_setzero_ps();
    for (; s + 16 <= S; s += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(scores + s), _mm512_set1_ps(mx)));
        _mm512_storeu_ps(scores + s, e);
        sum16 = _mm512_add_ps(sum16, e);
    }
    float sum = _mm512_reduce_add_ps(sum16);
    for (; s < S; s++) {
        scores[s] = expf(scores[s] - mx);
        sum += scores[s];
    }
    for (int i = 0; i < hd; i += 16) _mm512_storeu_ps(out + i, _mm512_setzero_ps());
    for (int t = 0; t < S; t++) {
        const char *vs = (const char *)V + (size_t)t * hd * es;
        const __m512 p = _mm512_set1_ps(scores[t] / sum);
        for (int i = 0; i < hd; i += 16)
            _mm512_storeu_ps(out + i, _mm512_fmadd_ps(p, load16(vs, bf16, i), _mm512_loadu_ps(out + i)));
    }
}

/* Four rows of float16 against a float32 query: four independent FMA chains hide the latency. */
static void dot4_f16(const uint16_t *m, long stride, const float *q, int d, float *out) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int k = 0;
    for (; k + 16 <= d; k += 16) {
        const __m512 x = _mm512_loadu_ps(q + k);
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(m + k))), x, a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(m + stride + k))), x, a1);
        a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(m + 2 * stride + k))), x, a2);
        a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(m + 3 * stride + k))), x, a3);
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
    for (; k < d; k++)
        for (int r = 0; r < 4; r++) out[r] += _cvtsh_ss(m[r * stride + k]) * q[k];
}

#elif defined(__AVX2__) && defined(__FMA__)
/* ==================================== AVX2 + FMA: 8 floats per vector ==================================== */
#define GROUP 32
#define SUB 8
#ifndef STREAMS
#define STREAMS 4 /* groups each thread reads side by side (see group32xS) */
#endif
#define OFFSET 0
#define ISA "avx2"

static inline __m256 load8(const void *x, int bf16, int k) {
    if (bf16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)x + k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)x + k);
}

static inline void store8(void *y, int bf16, int n, __m256 v) {
    if (bf16) { /* round to nearest even */
        __m256i i = _mm256_castps_si256(v);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(i, 16), _mm256_set1_epi32(1));
        i = _mm256_srli_epi32(_mm256_add_epi32(i, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
        _mm_storeu_si128((__m128i *)((uint16_t *)y + n),
                         _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1)));
    } else {
        _mm256_storeu_ps((float *)y + n, v);
    }
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

static inline __m256 abs8(__m256 v) { return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF))); }

/* Quantise one row of K values (K a multiple of 32); returns C (0: the weights carry no offset). */
static float quantize_row(const void *x, int bf16, int K, int8_t *xq, float *sx) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undo the packs' lane interleaving */
    for (int b = 0; b < K / 32; b++) {
        __m256 v0 = load8(x, bf16, 32 * b), v1 = load8(x, bf16, 32 * b + 8);
        __m256 v2 = load8(x, bf16, 32 * b + 16), v3 = load8(x, bf16, 32 * b + 24);
        float amax = hmax8(_mm256_max_ps(_mm256_max_ps(abs8(v0), abs8(v1)), _mm256_max_ps(abs8(v2), abs8(v3))));
        float scale = amax / 127.0f;
        sx[b] = scale;
        if (!(scale > 0.0f) || !isfinite(scale)) { /* zeros, or inf/nan that nothing can represent */
            _mm256_storeu_si256((__m256i *)(xq + 32 * b), _mm256_setzero_si256());
            sx[b] = scale > 0.0f ? scale : 0.0f;
            continue;
        }
        __m256 inv = _mm256_set1_ps(1.0f / scale);
        __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv)), q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
        __m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv)), q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
        __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256((__m256i *)(xq + 32 * b), _mm256_permutevar8x32_epi32(q, order));
    }
    return 0.0f;
}

/* STREAMS groups of 32 rows each (a group: four 8-row sub-groups, interleaved so that its weights are
 * one sequential stream: per block of 32 inputs, 1 KiB = 8 k-quads x 4 sub-groups x 8 rows x 4
 * bytes), in lockstep: STREAMS weight streams in flight per thread (4 * STREAMS accumulators: some
 * live on the stack, which costs less than the memory waits the extra streams hide).
 * Measured on this AVX2 host, an EPYC whose memory read 13-24 GB/s from minute to minute (so only
 * large differences show), with one process per variant, alternated, 5 x 16 one-token steps of the
 * 0.5B shape each, ratio = bytes per step / fastest step / the bandwidth probe just before (mean of
 * all steps-sets): one stream per thread 0.714, two 0.786 (three rounds); two 0.758, four 0.831 (five
 * rounds, four ahead or level in each); four 0.857, 0.779, 0.741 (medians) against six 0.652, 0.648,
 * 0.775 and eight 0.736, 0.534, 0.54 (three rounds: the spills then cost more). With one stream the products ran as fast with the arithmetic
 * taken out (loads and adds only: 0.68 of the probe against 0.66): bound by memory, not by
 * VPMADDUBSW; software prefetching 2-64 KiB ahead was within the noise and is left out. */
static void group32xS(const int8_t *const *wg, const float *sw, const float *bias, int K,
                      const int8_t *xq, const float *sx, void *y, int y_bf16, const int *n0) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[4 * STREAMS];
    for (int r = 0; r < 4 * STREAMS; r++) f[r] = _mm256_setzero_ps();
    for (int b = 0; b < K / 32; b++) {
        const int32_t *xb = (const int32_t *)(xq + 32 * b);
        __m256i a[4 * STREAMS];
        for (int r = 0; r < 4 * STREAMS; r++) a[r] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            const __m256i xv = _mm256_set1_epi32(xb[j]);
            const __m256i ax = _mm256_sign_epi8(xv, xv);
            for (int r = 0; r < 4 * STREAMS; r++) {
                const __m256i *p = (const __m256i *)(wg[r >> 2] + (size_t)b * 1024 + 128 * j) + (r & 3);
                a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(
                           ax, _mm256_sign_epi8(_mm256_loadu_si256(p), xv)), ones));
            }
        }
        const __m256 s = _mm256_set1_ps(sx[b]);
        for (int r = 0; r < 4 * STREAMS; r++) f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[r]), s, f[r]);
    }
    for (int r = 0; r < 4 * STREAMS; r++) {
        const int n = n0[r >> 2] + 8 * (r & 3);
        __m256 v = _mm256_mul_ps(f[r], _mm256_loadu_ps(sw + n));
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + n));
        store8(y, y_bf16, n, v);
    }
}

/* Groups [g_begin, g_end) of one matrix in STREAMS equal parts side by side; c is 0 here (the weights
 * carry no offset). The groups left over go through the same loop with repeated pointers (the
 * repeats read cached weights and store the same values again). */
static void group_range(const uint8_t *wp, const float *sw, const float *bias, int K, const int8_t *xq,
                        const float *sx, float c, void *y, int y_bf16, int g_begin, int g_end) {
    (void)c;
    const int8_t *w = (const int8_t *)wp;
    const int part = (g_end - g_begin) / STREAMS, rest = g_begin + STREAMS * part;
    const int8_t *wg[STREAMS];
    int n0[STREAMS];
    for (int i = 0; i < part; i++) {
        for (int t = 0; t < STREAMS; t++) {
            const int g = g_begin + t * part + i;
            wg[t] = w + (size_t)g * 32 * K;
            n0[t] = 32 * g;
        }
        group32xS(wg, sw, bias, K, xq, sx, y, y_bf16, n0);
    }
    if (rest < g_end) {
        for (int t = 0; t < STREAMS; t++) {
            const int g = rest + t < g_end ? rest + t : g_end - 1;
            wg[t] = w + (size_t)g * 32 * K;
            n0[t] = 32 * g;
        }
        group32xS(wg, sw, bias, K, xq, sx, y, y_bf16, n0);
    }
}

/* exp for 8 floats: as exp16 above, with 2^n built in the exponent bits (AVX2 has no scalef) */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n as n + 127 in the exponent field (n in [-126, 127] after the clamp: a normal float) */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static void rmsnorm(const float *x, const float *w, int D, float eps, float *out) {
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < D; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / sqrtf(hsum8(acc) / (float)D + eps));
    for (int i = 0; i < D; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), inv), _mm256_loadu_ps(w + i)));
}

static void store_row(void *dst, int bf16, const float *src, int n) {
    for (int i = 0; i < n; i += 8) store8(dst, bf16, i, _mm256_loadu_ps(src + i));
}

/* h += x (n floats) */
static void add_into(float *h, const float *x, int n) {
    for (int i = 0; i < n; i += 8) _mm256_storeu_ps(h + i, _mm256_add_ps(_mm256_loadu_ps(h + i), _mm256_loadu_ps(x + i)));
}

/* g = SiLU(g) * u = g * u / (1 + e^-g) (n floats) */
static void silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        _mm256_storeu_ps(g + i, _mm256_div_ps(_mm256_mul_ps(gv, _mm256_loadu_ps(u + i)),
                                              _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
}

/* One query head over S cached positions (K, V: S rows of hd, the cache's dtype) -> out (hd floats). */
static void attend(const float *q, const void *K, const void *V, int S, int hd, int bf16, float scale,
                   float *scores, float *out) {
    const size_t es = bf16 ? 2 : 4;
    float mx = -INFINITY;
    for (int s = 0; s < S; s++) {
        const char *ks = (const char *)K + (size_t)s * hd * es;
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < hd; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(ks, bf16, i), acc);
        scores[s] = hsum8(acc) * scale;
        mx = scores[s] > mx ? scores[s] : mx;
    }
    int s = 0;
    __m256 sum8 = _mm256_setzero_ps();
    for (; s + 8 <= S; s += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + s), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(scores + s, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    float sum = hsum8(sum8);
    for (; s < S; s++) {
        scores[s] = expf(scores[s] - mx);
        sum += scores[s];
    }
    for (int i = 0; i < hd; i += 8) _mm256_storeu_ps(out + i, _mm256_setzero_ps());
    for (int t = 0; t < S; t++) {
        const char *vs = (const char *)V + (size_t)t * hd * es;
        const __m256 p = _mm256_set1_ps(scores[t] / sum);
        for (int i = 0; i < hd; i += 8)
            _mm256_storeu_ps(out + i, _mm256_fmadd_ps(p, load8(vs, bf16, i), _mm256_loadu_ps(out + i)));
    }
}

/* Four rows of float16 against a float32 query: four independent FMA chains hide the latency. */
static void dot4_f16(const uint16_t *m, long stride, const float *q, int d, float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int k = 0;
    for (; k + 8 <= d; k += 8) {
        const __m256 x = _mm256_loadu_ps(q + k);
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m + k))), x, a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m + stride + k))), x, a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m + 2 * stride + k))), x, a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m + 3 * stride + k))), x, a3);
    }
    out[0] = hsum8(a0);
    out[1] = hsum8(a1);
    out[2] = hsum8(a2);
    out[3] = hsum8(a3);
    for (; k < d; k++)
        for (int r = 0; r < 4; r++) out[r] += _cvtsh_ss(m[r * stride + k]) * q[k];
}

#else
#error "native.c needs AVX512-VNNI or AVX2 + FMA (native.py passes the flags)"
#endif

/* ================================ the same for both instruction sets ================================ */

/* What the Python side packs for: rows per group and per sub-group, the offset added to the weights,
 * the build's instruction set. */
int q8_group_rows(void) { return GROUP; }
int q8_sub_rows(void) { return SUB; }
int q8_weight_offset(void) { return OFFSET; }
const char *q8_isa(void) { return ISA; }

/* y[M, N] = x[M, K] @ w^T (+ bias). N a multiple of GROUP, K a multiple of 32; x and y float32 or
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
    const size_t esize_x = x_bf16 ? 2 : 4, esize_y = y_bf16 ? 2 : 4;
    for (int m = 0; m < M; m++) {
        const void *xm = (const char *)x + (size_t)m * K * esize_x;
        void *ym = (char *)y + (size_t)m * N * esize_y;
        float c = quantize_row(xm, x_bf16, K, xq, sx);
#pragma omp parallel num_threads(nthreads)
        {
            int begin, end;
            share(N / GROUP, &begin, &end);
            group_range(wp, sw, bias, K, xq, sx, c, ym, y_bf16, begin, end);
        }
    }
    free(xq);
    free(sx);
    return 0;
}

/* ---- one decoding step of a Llama/Qwen2-style decoder layer ------------------------------------
 *
 * A transformers layer run eagerly for one token is ~50 small torch operations; on 2 cores their
 * dispatch costs about as much as reading the layer's weights. Here a layer is two calls:
 *   layer_attn_in:  RMSNorm -> q, k, v products (one quantised input, one parallel region) -> RoPE;
 *                   k and v come back for the caller to append to its KV cache;
 *   layer_attn_out: attention of q over the cache -> o product -> residual -> RMSNorm ->
 *                   gate and up products -> SiLU(gate) * up -> down product -> residual.
 * The residual stream h stays float32 across layers (transformers rounds it to bf16 after every
 * layer; this is at least as exact). Shapes: D hidden, I intermediate, nh query heads of hd, nkv
 * key/value heads (grouped-query attention: query head i reads kv head i / (nh / nkv)).
 * Every matrix is unpadded (N a multiple of GROUP, K of 32; hd a multiple of 16) -- the Python side checks. */

typedef struct {
    const uint8_t *wp;
    const float *sw;
    const float *bias;
    int N, K;
} q8mat_t;

typedef struct {
    q8mat_t q, k, v, o, gate, up, down;
    const float *norm_in, *norm_post;
} layer_t;

typedef struct {
    int D, I, nh, nkv, hd, kv_bf16, nthreads;
    float eps, scale;
} dims_t;

/* y_m = W_m x for up to 4 matrices sharing one quantised input, in one parallel region; each thread
 * takes its contiguous share of every matrix's groups. */
static void products(const q8mat_t *const *W, float *const *y, int nm, const int8_t *xq, const float *sx,
                     float c, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    for (int m = 0; m < nm; m++) {
        int begin, end;
        share(W[m]->N / GROUP, &begin, &end);
        group_range(W[m]->wp, W[m]->sw, W[m]->bias, W[m]->K, xq, sx, c, y[m], 0, begin, end);
    }
}

/* transformers' rotate_half RoPE on heads of hd values: x * cos + rotate_half(x) * sin */
static void rope(float *x, int heads, int hd, const float *cos, const float *sin) {
    const int half = hd / 2;
    for (int h = 0; h < heads; h++) {
        float *v = x + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            const float a = v[i], b = v[i + half];
            v[i] = a * cos[i] - b * sin[i];
            v[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}

/* h: D floats (read); cos, sin: hd floats; q: nh*hd floats (written, after RoPE);
 * k_out, v_out: nkv*hd values in the cache's dtype (written). Returns 0, or -1 if out of memory. */
int layer_attn_in(const layer_t *L, const dims_t *d, const float *h, const float *cos, const float *sin,
                  float *q, void *k_out, void *v_out) {
    const int D = d->D, kvn = d->nkv * d->hd;
    float *x = (float *)malloc(sizeof(float) * ((size_t)D + 2 * (size_t)kvn + D / 32));
    int8_t *xq = (int8_t *)malloc((size_t)D);
    if (!x || !xq) {
        free(x);
        free(xq);
        return -1;
    }
    float *k = x + D, *v = k + kvn, *sx = v + kvn;
    rmsnorm(h, L->norm_in, D, d->eps, x);
    const float c = quantize_row(x, 0, D, xq, sx);
    const q8mat_t *W[3] = {&L->q, &L->k, &L->v};
    float *const y[3] = {q, k, v};
    products(W, y, 3, xq, sx, c, d->nthreads);
    rope(q, d->nh, d->hd, cos, sin);
    rope(k, d->nkv, d->hd, cos, sin);
    store_row(k_out, d->kv_bf16, k, kvn);
    store_row(v_out, d->kv_bf16, v, kvn);
    free(x);
    free(xq);
    return 0;
}

/* h: D floats (updated in place); q: nh*hd floats; K, V: the cache after this step's append, nkv
 * heads of S rows of hd values each (rows contiguous), one head every head_stride values (S * hd when
 * the cache holds nothing else; more when it has room to grow), in the cache's dtype.
 * Returns 0, or -1 if out of memory. */
int layer_attn_out(const layer_t *L, const dims_t *d, float *h, const float *q, const void *K, const void *V,
                   int S, int head_stride) {
    const int D = d->D, I = d->I, nh = d->nh, hd = d->hd, group = d->nh / d->nkv;
    const int A = nh * hd, widest = (D > I ? D : I) > A ? (D > I ? D : I) : A;
    const size_t es = d->kv_bf16 ? 2 : 4;
    float *attn = (float *)malloc(sizeof(float) * ((size_t)A + D + 2 * (size_t)I + widest / 32));
    float *scores = (float *)malloc(sizeof(float) * (size_t)nh * S);
    int8_t *xq = (int8_t *)malloc((size_t)widest);
    if (!attn || !scores || !xq) {
        free(attn);
        free(scores);
        free(xq);
        return -1;
    }
    float *x = attn + A, *g = x + D, *u = g + I, *sx = u + I;
#pragma omp parallel for schedule(static) num_threads(d->nthreads)
    for (int i = 0; i < nh; i++) {
        const size_t kv = (size_t)(i / group) * head_stride * es;
        attend(q + (size_t)i * hd, (const char *)K + kv, (const char *)V + kv, S, hd, d->kv_bf16, d->scale,
               scores + (size_t)i * S, attn + (size_t)i * hd);
    }
    float c = quantize_row(attn, 0, A, xq, sx);
    const q8mat_t *Wo[1] = {&L->o};
    float *const yo[1] = {x};
    products(Wo, yo, 1, xq, sx, c, d->nthreads);
    add_into(h, x, D);
    rmsnorm(h, L->norm_post, D, d->eps, x);
    c = quantize_row(x, 0, D, xq, sx);
    const q8mat_t *Wgu[2] = {&L->gate, &L->up};
    float *const ygu[2] = {g, u};
    products(Wgu, ygu, 2, xq, sx, c, d->nthreads);
    silu_mul(g, u, I);
    c = quantize_row(g, 0, I, xq, sx);
    const q8mat_t *Wd[1] = {&L->down};
    float *const yd[1] = {x};
    products(Wd, yd, 1, xq, sx, c, d->nthreads);
    add_into(h, x, D);
    free(attn);
    free(scores);
    free(xq);
    return 0;
}

/* out[n] = m[n, :] . q for a row-major float16 matrix (n x d) and a float32 query, on the calling
 * thread: the exact scores of a large catalog's float16 vectors, in float32 arithmetic. Memory-bound;
 * index.py splits a large matrix over two plain threads, one call each. */
void f16_scores(const uint16_t *m, const float *q, float *out, long n, int d) {
    const long quads = n / 4;
    for (long i = 0; i < quads; i++) dot4_f16(m + 4 * i * d, d, q, d, out + 4 * i);
    for (long i = 4 * quads; i < n; i++) {
        float s = 0.f;
        for (int k = 0; k < d; k++) s += _cvtsh_ss(m[i * d + k]) * q[k];
        out[i] = s;
    }
}

/* Reads `n` floats with `nthreads` threads, each reading four parts of its share side by side (as
 * the AVX2 kernel reads four weight groups): the bench's memory-bandwidth probe. Returns the sum, so
 * nothing is optimised away. */
float stream_read(const float *x, long n, int nthreads) {
    float total = 0.f;
#pragma omp parallel num_threads(nthreads) reduction(+ : total)
    {
        const long t = omp_get_thread_num(), nt = omp_get_num_threads();
        const long part = (n / nt / 4) & ~15L, begin = t * 4 * part;
        const float *p0 = x + begin, *p1 = p0 + part, *p2 = p1 + part, *p3 = p2 + part;
        float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
        for (long i = 0; i < part; i += 16)
            for (int k = 0; k < 16; k++) {
                a0[k] += p0[i + k];
                a1[k] += p1[i + k];
                a2[k] += p2[i + k];
                a3[k] += p3[i + k];
            }
        for (int k = 0; k < 16; k++) total += a0[k] + a1[k] + a2[k] + a3[k];
        if (t == nt - 1)
            for (long i = nt * 4 * part; i < n; i++) total += x[i];
    }
    return total;
}
