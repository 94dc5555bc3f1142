/*
 * gather_bw.cu - how fast can the H200 gather Loki's selected rows, by KV
 * page layout? (dev/cuda playground; not part of the library)
 *
 * The attend stage of a per-query-head Loki step (B = 16, 32 heads, S = 32k,
 * kf = 1/8, D = 128, d = 32) reads, for each of 512 rows, 4096 selected
 * tokens' k_hi (D - d = 96 bf16, 192 B) and v (128 bf16, 256 B). In the
 * shipped page layout a page segment (64 tokens of one KV head) is
 *   split: [k_lo (64, d)] [k_hi (64, D - d)] [v (64, D)]
 * so one token is two runs, 192 B and 256 B, 12 KB apart. Candidates:
 *   adj:   [k_lo (64, d)] [(k_hi, v) per token (64, 2D - d)]  one 448 B run
 *   row:   [(k_lo, k_hi, v) per token (64, 2D)]  one 512 B run, k_lo read too
 * and the streaming read of the whole pool (what dense attention does).
 *
 * Each kernel XORs every 16-byte chunk it loads into a checksum; the pool
 * holds the same chunk values in every layout (a hash of the logical page,
 * token and chunk), so equal checksums show each variant read the right
 * bytes. Times: cudaEvent around 20 launches each, median of 7.
 *
 *   nvcc -O3 -std=c++17 -arch=sm_90a -o gather_bw dev/cuda/gather_bw.cu && ./gather_bw
 */
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ck.cuh"

constexpr int P = 64, D = 128, DL = 32, DH = D - DL; /* tokens per page, head dim, split */
constexpr int ROWS = 16 * 32, S = 32768, K = 4096, PAGES_PER_ROW = S / P;
constexpr size_t SEG = (size_t)P * 2 * D * 2; /* bytes of one page segment: 32 KB */
constexpr int CH = 2 * D / 8;                 /* 16-byte chunks of a token: 4 k_lo, 12 k_hi, 16 v */
enum { L_SPLIT, L_ADJ, L_ROW };

/* Byte offset of chunk c (0..31: k_lo 0-3, k_hi 4-15, v 16-31) of token t in a segment. */
__host__ __device__ inline size_t chunk_off(int lay, int t, int c) {
    if (lay == L_ROW) return ((size_t)t * CH + c) * 16;
    if (c < DL / 8) return ((size_t)t * (DL / 8) + c) * 16;
    const size_t lo = (size_t)P * DL * 2;
    if (lay == L_ADJ) return lo + ((size_t)t * (CH - DL / 8) + (c - DL / 8)) * 16;
    if (c < D / 8) return lo + ((size_t)t * (DH / 8) + (c - DL / 8)) * 16;
    return lo + (size_t)P * DH * 2 + ((size_t)t * (D / 8) + (c - D / 8)) * 16;
}
__host__ __device__ inline uint4 chunk_val(uint32_t page, int t, int c) {
    uint32_t h = page * 2654435761u ^ (uint32_t)(t * 64 + c) * 2246822519u;
    h ^= h >> 15, h *= 2654435761u, h ^= h >> 13;
    return make_uint4(h, h * 3u + 1u, h ^ 0x9e3779b9u, ~h);
}

__global__ void fill(uint8_t *pool, int lay, size_t pages) {
    const size_t n = pages * P * CH;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint32_t page = (uint32_t)(i / (P * CH));
        const int t = (int)(i / CH % P), c = (int)(i % CH);
        *(uint4 *)(pool + page * SEG + chunk_off(lay, t, c)) = chunk_val(page, t, c);
    }
}

__host__ __device__ inline void acc(uint4 &x, uint4 v) { x.x ^= v.x, x.y ^= v.y, x.z ^= v.z, x.w ^= v.w; }

/* One block per row, 8 warps; a warp takes U tokens per iteration, lane l
 * loads chunk (4 + l) of each (k_hi and v: 28 chunks; L_ROW reads all 32). */
template <int LAY, int U>
__global__ void __launch_bounds__(256) gather(const uint8_t *__restrict__ pool, const int32_t *__restrict__ slots,
                                            uint4 *__restrict__ sum) {
    const int row = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int32_t *sl = slots + (size_t)row * K;
    const int c = LAY == L_ROW ? lane : DL / 8 + lane;
    const bool on = LAY == L_ROW || lane < CH - DL / 8;
    uint4 x = make_uint4(0, 0, 0, 0);
    for (int j0 = warp * U; j0 < K; j0 += 8 * U) {
        int s[U];
#pragma unroll
        for (int u = 0; u < U; u++) s[u] = sl[j0 + u];
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            v[u] = on ? __ldg((const uint4 *)(pool + (size_t)(s[u] / P) * SEG + chunk_off(LAY, s[u] % P, c)))
                      : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < U; u++) acc(x, v[u]);
    }
    if (LAY == L_ROW && lane < DL / 8) x = make_uint4(0, 0, 0, 0); /* k_lo read but not counted */
    sum[(size_t)blockIdx.x * 256 + threadIdx.x] = x;
}

/* The score stage's pattern: the k_lo run (64 tokens x d = 32: 4 KB) of
 * every segment, a warp per run. MODE 0: at the start of each 32 KB segment
 * (the shipped layout); 1: the run at a rotating 4 KB offset (segment i at
 * (i % 8) * 4 KB: does the fixed 32 KB stride alias DRAM channels?);
 * 2: the runs packed back to back (the same bytes, one contiguous array). */
template <int MODE>
__global__ void __launch_bounds__(256) lo_read(const uint8_t *__restrict__ pool, size_t segs, uint4 *__restrict__ sum) {
    const int lane = threadIdx.x % 32;
    const size_t nw = (size_t)gridDim.x * blockDim.x / 32;
    uint4 x = make_uint4(0, 0, 0, 0);
    for (size_t i = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; i < segs; i += nw) {
        const size_t base = MODE == 0 ? i * SEG : MODE == 1 ? i * SEG + (i % 8) * 4096 : i * 4096;
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = __ldg((const uint4 *)(pool + base + (size_t)(u * 32 + lane) * 16));
#pragma unroll
        for (int u = 0; u < 8; u++) acc(x, v[u]);
    }
    sum[(size_t)blockIdx.x * blockDim.x + threadIdx.x] = x;
}

/* The whole pool, streamed (dense attention's pattern). */
__global__ void stream(const uint4 *__restrict__ p, size_t n, uint4 *__restrict__ sum) {
    uint4 x = make_uint4(0, 0, 0, 0);
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 a = __ldg(p + i), b = __ldg(p + i + stride), c = __ldg(p + i + 2 * stride), d = __ldg(p + i + 3 * stride);
        acc(x, a), acc(x, b), acc(x, c), acc(x, d);
    }
    for (; i < n; i += stride) acc(x, __ldg(p + i));
    sum[(size_t)blockIdx.x * blockDim.x + threadIdx.x] = x;
}

static uint64_t fold(const std::vector<uint4> &v) {
    uint4 x = make_uint4(0, 0, 0, 0);
    for (auto &e : v) acc(x, e);
    return ((uint64_t)(x.x ^ x.z) << 32) | (x.y ^ x.w);
}

template <typename F> static float time_ms(F launch) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    launch(); /* warm-up */
    CK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int r = 0; r < 7; r++) {
        CK(cudaEventRecord(a));
        for (int i = 0; i < 20; i++) launch();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms / 20);
    }
    CK(cudaGetLastError());
    std::sort(t.begin(), t.end());
    return t[3];
}

int main() {
    const size_t pages = (size_t)ROWS * PAGES_PER_ROW, bytes = pages * SEG; /* 8.6 GB */
    /* each row: K distinct random positions of its S, ascending (the select
     * stage appends in roughly ascending order), as physical slots */
    std::mt19937 rng(20261202);
    std::vector<int32_t> slots((size_t)ROWS * K), pos(S);
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < S; i++) pos[i] = i;
        for (int i = 0; i < K; i++) std::swap(pos[i], pos[i + rng() % (S - i)]);
        std::sort(pos.begin(), pos.begin() + K);
        for (int i = 0; i < K; i++) slots[(size_t)r * K + i] = (int32_t)((size_t)r * PAGES_PER_ROW * P + pos[i]);
    }
    uint8_t *pool;
    int32_t *dsl;
    uint4 *dsum;
    const int sblocks = 132 * 8;
    CK(cudaMalloc(&pool, bytes));
    CK(cudaMalloc(&dsl, slots.size() * 4));
    CK(cudaMalloc(&dsum, (size_t)std::max(ROWS * 256, 132 * 32 * 256) * 16));
    CK(cudaMemcpy(dsl, slots.data(), slots.size() * 4, cudaMemcpyHostToDevice));
    std::vector<uint4> hs(ROWS * 256);
    const double gbytes = (double)ROWS * K * (2 * D - DL) * 2 / 1e9;
    printf("pool %.2f GB, %d rows x %d tokens, k_hi + v = %.3f GB per step\n", bytes / 1e9, ROWS, K, gbytes);
    const char *names[] = {"split (192 B + 256 B)", "adj (448 B)", "row (512 B, k_lo too)"};
    uint64_t ref = 0;
    for (int lay = 0; lay < 3; lay++) {
        fill<<<132 * 16, 256>>>(pool, lay, pages);
        CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
        for (int u : {4, 8, 16}) {
            auto go = [&]() {
                if (lay == L_SPLIT) (u == 4 ? gather<L_SPLIT, 4> : u == 8 ? gather<L_SPLIT, 8> : gather<L_SPLIT, 16>)<<<ROWS, 256>>>(pool, dsl, dsum);
                if (lay == L_ADJ) (u == 4 ? gather<L_ADJ, 4> : u == 8 ? gather<L_ADJ, 8> : gather<L_ADJ, 16>)<<<ROWS, 256>>>(pool, dsl, dsum);
                if (lay == L_ROW) (u == 4 ? gather<L_ROW, 4> : u == 8 ? gather<L_ROW, 8> : gather<L_ROW, 16>)<<<ROWS, 256>>>(pool, dsl, dsum);
            };
            CK(cudaMemset(dsum, 0xA5, (size_t)ROWS * 256 * 16)); /* poison */
            go();
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(hs.data(), dsum, hs.size() * 16, cudaMemcpyDeviceToHost));
            const uint64_t cs = fold(hs);
            if (lay == 0 && u == 4) ref = cs;
            const float ms = time_ms(go);
            const double moved = gbytes * (lay == L_ROW ? 2.0 * D / (2 * D - DL) : 1.0);
            printf("%-24s U=%2d  %8.1f us  %7.0f GB/s useful  %7.0f GB/s read  checksum %s\n", names[lay], u, ms * 1e3,
                   gbytes / (ms * 1e-3), moved / (ms * 1e-3), cs == ref ? "ok" : "MISMATCH");
        }
    }
    const char *lonames[] = {"k_lo at segment start", "k_lo rotated in segment", "k_lo packed"};
    for (int mode = 0; mode < 3; mode++)
        for (int mult : {8, 32}) {
            auto go = [&]() {
                const int nb = 132 * mult;
                if (mode == 0) lo_read<0><<<nb, 256>>>(pool, pages, dsum);
                if (mode == 1) lo_read<1><<<nb, 256>>>(pool, pages, dsum);
                if (mode == 2) lo_read<2><<<nb, 256>>>(pool, pages, dsum);
            };
            const float lms = time_ms(go);
            printf("%-24s %4d blocks  %8.1f us  %7.0f GB/s read\n", lonames[mode], 132 * mult, lms * 1e3,
                   pages * 4096.0 / 1e9 / (lms * 1e-3));
        }
    const float ms = time_ms([&]() { stream<<<sblocks, 256>>>((const uint4 *)pool, bytes / 16, dsum); });
    printf("%-24s       %8.1f us  %7.0f GB/s read\n", "stream (whole pool)", ms * 1e3, bytes / 1e9 / (ms * 1e-3));
    CK(cudaFree(pool));
    CK(cudaFree(dsl));
    CK(cudaFree(dsum));
    return 0;
}
