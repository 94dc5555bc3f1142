/*
 * score_q8.cu - would an 8-bit copy of k_lo make Loki's score phase faster?
 * (dev/cuda playground; not part of the library; written in session 22
 * without a GPU, dev/cuda/README.md "Fewer score bytes")
 *
 * Loki's score stage reads the first d components of every cached key: in
 * the shipped layout each (page, KV head) segment starts with k_lo (64, d)
 * bf16, 128 B a token at d = 32, then k_hi and v (32 KB a segment at D =
 * 128). The candidate keeps that and adds an int8 copy in its own region,
 * one (64, d) int8 block and 64 f32 scales per segment (d + 4 bytes a
 * token): q . k ~ scale_t * sum_i q_i * k8_ti, with k8 = round(k / scale),
 * scale = max|k_t| / 127 (per token and head, as a q8 row of d values).
 *
 * Both kernels: one warp per page of one KV head (MHA: one query head per
 * KV head), lanes split a key into 16-byte chunks, every page's chunks
 * loaded before use, scores written as f32 (the fused kernel keeps them in
 * shared memory instead; the bytes read are what differ). Rows: B
 * sequences x H heads, S tokens each, pages placed at random physical pages.
 * Check: each kernel against a CPU reference that recomputes the keys
 * (key_val: small integers times powers of two, exact in bf16) and their
 * int8 copies (double sums; error at most 1e-5 of the largest score),
 * outputs poisoned (NaN) before the checked launch. Times: cudaEvent around 20 launches, median of 7, and the bytes
 * each kernel must read (GB/s).
 *
 *   nvcc -O3 -std=c++17 -arch=sm_90a -o score_q8 dev/cuda/score_q8.cu && ./score_q8
 */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "ck.cuh"

constexpr int P = 64, D = 128, DL = 32;           /* tokens per page, head dim, split d */
constexpr size_t SEG16 = (size_t)P * 2 * D;        /* bf16 elements of a segment (k_lo | k_hi | v) */
constexpr size_t SEG8 = (size_t)P * DL + P * 4;    /* bytes of a segment's int8 copy: k8 (P, d), scales (P) f32 */

/* Key component i of token t of segment pg (page * H + head): a small
 * integer times a power of two, exact in bf16 and f32 on host and device
 * alike (the CPU reference recomputes it; no rounding can differ). */
__host__ __device__ inline float key_val(uint32_t pg, int t, int i) {
    uint32_t h = pg * 2654435761u ^ (uint32_t)(t * DL + i) * 2246822519u;
    h ^= h >> 15, h *= 2654435761u, h ^= h >> 13;
    return (float)((int)(h & 255u) - 128) * ldexpf(1.0f, -5 - i / 8); /* PCA-like: later components smaller */
}
__host__ __device__ inline uint16_t bf16_bits(float f) { /* exact for key_val's values */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}
/* The int8 copy of one token: scale = max|k| / 127, k8 = round-to-nearest-even(k / scale). */
__host__ __device__ inline float q8_scale(uint32_t pg, int t) {
    float mx = 0.0f;
    for (int i = 0; i < DL; i++) mx = fmaxf(mx, fabsf(key_val(pg, t, i)));
    return mx > 0.0f ? mx / 127.0f : 1.0f;
}

/* Segments' k_lo (bf16) and int8 copies from key_val; k_hi and v are left as cudaMalloc gave them. */
__global__ void fill(uint16_t *pool16, uint8_t *pool8, size_t n_seg) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_seg * P) return;
    const uint32_t pg = (uint32_t)(i / P);
    const int t = (int)(i % P);
    const float s = q8_scale(pg, t);
    for (int c = 0; c < DL; c++) {
        const float v = key_val(pg, t, c);
        pool16[(size_t)pg * SEG16 + (size_t)t * DL + c] = bf16_bits(v);
        pool8[(size_t)pg * SEG8 + (size_t)t * DL + c] = (uint8_t)(int8_t)__float2int_rn(v / s);
    }
    memcpy(pool8 + (size_t)pg * SEG8 + (size_t)P * DL + t * 4, &s, 4);
}

struct args {
    const uint16_t *pool16;  /* (n_pages, H, SEG16) bf16 */
    const uint8_t *pool8;    /* (n_pages, H, SEG8) */
    const int32_t *bt;       /* (B, S / P) physical pages */
    const float *q;          /* (B, H, DL) */
    float *out;              /* (B, H, S) */
    int B, H, S, n_pages;
};

/* The (sequence, head, logical page) of this warp: one warp a page; false past the last row. */
__device__ inline bool warp_page(const args &a, int *b, int *h, int *lp) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, pages = a.S / P;
    *b = warp / (a.H * pages), *h = (warp / pages) % a.H, *lp = warp % pages;
    return *b < a.B;
}

/* bf16: 4 lanes a key (16-byte chunks of 8 components), 8 keys per warp load, 8 loads a page */
__global__ void score_bf16(const args a) {
    int b, h, lp;
    if (!warp_page(a, &b, &h, &lp)) return;
    const int lane = threadIdx.x % 32, c = lane % 4, grp = lane / 4;
    const uint16_t *seg = a.pool16 + ((size_t)a.bt[b * (a.S / P) + lp] * a.H + h) * SEG16;
    float q[8];
    for (int e = 0; e < 8; e++) q[e] = a.q[((size_t)b * a.H + h) * DL + c * 8 + e];
    uint4 k[8];
#pragma unroll
    for (int u = 0; u < 8; u++) k[u] = __ldg((const uint4 *)(seg + (size_t)(u * 8 + grp) * DL + c * 8));
#pragma unroll
    for (int u = 0; u < 8; u++) {
        const uint32_t w[4] = {k[u].x, k[u].y, k[u].z, k[u].w};
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s = fmaf(q[2 * e], __uint_as_float(w[e] << 16), s);
            s = fmaf(q[2 * e + 1], __uint_as_float(w[e] & 0xffff0000u), s);
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (c == 0) a.out[((size_t)b * a.H + h) * a.S + lp * P + u * 8 + grp] = s;
    }
}

/* int8: 2 lanes a key (16 components each), 16 keys per warp load, 4 loads a page, scales: one f32 a key */
__global__ void score_q8(const args a) {
    int b, h, lp;
    if (!warp_page(a, &b, &h, &lp)) return;
    const int lane = threadIdx.x % 32, c = lane % 2, grp = lane / 2;
    const uint8_t *seg = a.pool8 + ((size_t)a.bt[b * (a.S / P) + lp] * a.H + h) * SEG8;
    const float *sc = (const float *)(seg + (size_t)P * DL);
    float q[16];
    for (int e = 0; e < 16; e++) q[e] = a.q[((size_t)b * a.H + h) * DL + c * 16 + e];
    uint4 k[4];
    float s4[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
        k[u] = __ldg((const uint4 *)(seg + (size_t)(u * 16 + grp) * DL + c * 16));
        s4[u] = __ldg(sc + u * 16 + grp);
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
        const uint32_t w[4] = {k[u].x, k[u].y, k[u].z, k[u].w};
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < 16; e++) s = fmaf(q[e], (float)(int8_t)(w[e / 4] >> (8 * (e % 4))), s);
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        if (c == 0) a.out[((size_t)b * a.H + h) * a.S + lp * P + u * 16 + grp] = s * s4[u];
    }
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main() {
    const int H = 32;
    const int shapes[3][2] = {{1, 32768}, {1, 131072}, {16, 32768}}; /* B, S */
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> U(-1.0f, 1.0f);
    for (const auto &sh : shapes) {
        {
            const int B = sh[0], S = sh[1];
            const int pages = S / P, n_pages = B * pages;
            std::vector<int32_t> bt(n_pages);
            for (int i = 0; i < n_pages; i++) bt[i] = i;
            std::shuffle(bt.begin(), bt.end(), rng);
            std::vector<float> q((size_t)B * H * DL);
            for (float &x : q) x = U(rng);
            args a{};
            a.B = B, a.H = H, a.S = S, a.n_pages = n_pages;
            uint16_t *d16;
            uint8_t *d8;
            int32_t *dbt;
            float *dq, *dout;
            const size_t n_out = (size_t)B * H * S;
            const size_t n_seg = (size_t)n_pages * H;
            CK(cudaMalloc(&d16, n_seg * SEG16 * 2));
            CK(cudaMalloc(&d8, n_seg * SEG8));
            CK(cudaMalloc(&dbt, bt.size() * 4));
            CK(cudaMalloc(&dq, q.size() * 4));
            CK(cudaMalloc(&dout, n_out * 4));
            fill<<<(unsigned)((n_seg * P + 255) / 256), 256>>>(d16, d8, n_seg);
            CK(cudaGetLastError());
            CK(cudaMemcpy(dbt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
            a.pool16 = d16, a.pool8 = d8, a.bt = dbt, a.q = dq, a.out = dout;
            const int warps = B * H * pages, threads = 128, blocks = (warps * 32 + threads - 1) / threads;
            std::vector<float> got(n_out);
            for (int kind = 0; kind < 2; kind++) {
                CK(cudaMemset(dout, 0xff, n_out * 4)); /* NaN */
                if (kind == 0) score_bf16<<<blocks, threads>>>(a);
                else score_q8<<<blocks, threads>>>(a);
                CK(cudaGetLastError());
                CK(cudaMemcpy(got.data(), dout, n_out * 4, cudaMemcpyDeviceToHost));
                double worst = 0.0, scale = 0.0;
                for (int b = 0; b < B; b++)
                    for (int h = 0; h < H; h++)
                        for (int t = 0; t < S; t += B > 1 ? 13 : 1) { /* B = 16: every 13th token (time) */
                            const uint32_t pg = (uint32_t)((size_t)bt[b * pages + t / P] * H + h);
                            const float *qq = &q[((size_t)b * H + h) * DL];
                            const float s = q8_scale(pg, t % P);
                            double ref = 0.0;
                            for (int i = 0; i < DL; i++) {
                                const float v = key_val(pg, t % P, i);
                                ref += (double)qq[i] * (kind == 0 ? v : (float)std::lrintf(v / s));
                            }
                            if (kind == 1) ref *= s;
                            const float g = got[((size_t)b * H + h) * S + t];
                            worst = std::isnan(g) ? INFINITY : std::max(worst, std::fabs(g - ref));
                            scale = std::max(scale, std::fabs(ref));
                        }
                const bool ok = worst <= 1e-5 * scale;
                cudaEvent_t e0, e1;
                CK(cudaEventCreate(&e0));
                CK(cudaEventCreate(&e1));
                std::vector<float> ts;
                for (int rep = 0; rep < 7; rep++) {
                    CK(cudaEventRecord(e0));
                    for (int i = 0; i < 20; i++) {
                        if (kind == 0) score_bf16<<<blocks, threads>>>(a);
                        else score_q8<<<blocks, threads>>>(a);
                    }
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    ts.push_back(ms * 1000.0f / 20.0f);
                }
                const double us = median(ts), bytes = (double)B * H * S * (kind == 0 ? DL * 2 : DL + 4);
                printf("{\"kernel\": \"%s\", \"B\": %d, \"H\": %d, \"S\": %d, \"d\": %d, \"us\": %.2f, \"read_gb\": %.4f, "
                       "\"gb_per_s\": %.1f, \"max_abs_err\": %.3g, \"max_abs_ref\": %.3g, \"ok\": %s}\n",
                       kind == 0 ? "bf16" : "q8", B, H, S, DL, us, bytes / 1e9, bytes / us / 1e3, worst, scale,
                       ok ? "true" : "false");
                CK(cudaEventDestroy(e0));
                CK(cudaEventDestroy(e1));
            }
            CK(cudaFree(d16));
            CK(cudaFree(d8));
            CK(cudaFree(dbt));
            CK(cudaFree(dq));
            CK(cudaFree(dout));
        }
    }
    return 0;
}
