// test_core.c — core runtime: Philox known answers, thread-count independence,
// float conversions, tensor views, arenas, atomic writes.
#include "core/arena.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "test_util.h"
#include <omp.h>
#include <unistd.h>

static void test_philox_kat(void) {
    // Known-answer vectors of Philox-4x32-10 published with Random123 (kat_vectors).
    uint32_t w[4];
    pn_philox4x32(0, 0, 0, w);
    CHECK(w[0] == 0x6627e8d5u && w[1] == 0xe169c58du && w[2] == 0xbc57ac4cu && w[3] == 0x9b00dbd8u,
          "philox zero KAT: %08x %08x %08x %08x", w[0], w[1], w[2], w[3]);
    pn_philox4x32(0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull, w);
    CHECK(w[0] == 0x408f276du && w[1] == 0x41c83b0eu && w[2] == 0xa20bc7c6u && w[3] == 0x6d5451fdu,
          "philox ones KAT: %08x %08x %08x %08x", w[0], w[1], w[2], w[3]);
    // counter words (c0, c1) = (0x243f6a88, 0x85a308d3), stream (c2, c3) = (0x13198a2e, 0x03707344)
    pn_philox4x32(((uint64_t)0x299f31d0u << 32) | 0xa4093822u, ((uint64_t)0x03707344u << 32) | 0x13198a2eu,
                  ((uint64_t)0x85a308d3u << 32) | 0x243f6a88u, w);
    CHECK(w[0] == 0xd16cfe09u && w[1] == 0x94fdccebu && w[2] == 0x5001e420u && w[3] == 0x24126ea1u,
          "philox pi KAT: %08x %08x %08x %08x", w[0], w[1], w[2], w[3]);
}

static void test_rng_thread_independence(void) {
    enum { N = 10007 };
    static float a[N], b[N];
    omp_set_num_threads(1);
    pn_fill_normal(a, N, 0.0f, 1.0f, 42, 7);
    omp_set_num_threads(2);
    pn_fill_normal(b, N, 0.0f, 1.0f, 42, 7);
    CHECK(memcmp(a, b, sizeof a) == 0, "normal fill differs between 1 and 2 threads");
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++) mean += a[i];
    mean /= N;
    for (int i = 0; i < N; i++) var += (a[i] - mean) * (a[i] - mean);
    var /= N;
    // For N = 10007 samples of N(0,1): |mean| < 4.5/sqrt(N) ≈ 0.045, var within ±0.06 (>4 sigma).
    CHECK(fabs(mean) < 0.045 && fabs(var - 1.0) < 0.06, "normal moments off: mean %g var %g", mean, var);
    pn_rng r1 = pn_rng_make(5, 1), r2 = pn_rng_make(5, 1);
    for (int i = 0; i < 100; i++) (void)pn_rng_u32(&r1);
    r2.counter = 100;  // a checkpointed generator resumes exactly
    CHECK(pn_rng_u32(&r1) == pn_rng_u32(&r2), "rng resume from counter differs");
    pn_rng r3 = pn_rng_make(9, 2);
    int hist[5] = {0};
    for (int i = 0; i < 5000; i++) hist[pn_rng_below(&r3, 5)]++;
    for (int i = 0; i < 5; i++) CHECK(hist[i] > 850 && hist[i] < 1150, "rng_below bucket %d = %d", i, hist[i]);
}

static void test_float_conversions(void) {
    CHECK(pn_f32_to_bf16(1.0f) == 0x3f80, "bf16(1.0)");
    CHECK(pn_f32_to_bf16(-2.0f) == 0xc000, "bf16(-2.0)");
    CHECK(pn_f32_to_bf16(3.14159265f) == 0x4049, "bf16(pi) = %04x", pn_f32_to_bf16(3.14159265f));
    CHECK(pn_bf16_to_f32(0x4049) == 3.140625f, "bf16 -> f32");
    // round-to-nearest-even at the halfway point: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7
    CHECK(pn_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 RNE tie to even");
    CHECK(pn_f32_to_f16(1.0f) == 0x3c00, "f16(1.0)");
    CHECK(pn_f32_to_f16(65504.0f) == 0x7bff, "f16(max)");
    CHECK(pn_f32_to_f16(1e6f) == 0x7c00, "f16 overflow -> inf");
    CHECK(pn_f32_to_f16(-0.5f) == 0xb800, "f16(-0.5)");
    CHECK(pn_f16_to_f32(0x0001) == 5.9604645e-8f, "f16 smallest subnormal");
    CHECK(pn_f32_to_f16(5.9604645e-8f) == 0x0001, "f32 -> f16 subnormal");
    CHECK(pn_f16_to_f32(0x3555) == 0.33325195f, "f16 -> f32 (1/3)");
    for (uint32_t h = 0; h < 0x7c00; h += 7) {
        float f = pn_f16_to_f32((uint16_t)h);
        if (pn_f32_to_f16(f) != h) {
            CHECK(0, "f16 round trip fails at %04x", h);
            break;
        }
    }
}

static void test_tensor_views(void) {
    float data[2 * 3 * 4];
    for (int i = 0; i < 24; i++) data[i] = (float)i;
    int64_t shape[3] = {2, 3, 4};
    pn_tensor t = pn_tensor_make(PN_F32, 3, shape, data);
    CHECK(pn_tensor_numel(&t) == 24 && t.strides[0] == 12 && t.strides[2] == 1, "strides");
    pn_tensor s = pn_tensor_slice(&t, 1, 1, 2);
    CHECK(((float *)s.data)[0] == 4.0f && s.shape[1] == 2 && !pn_tensor_is_contiguous(&s), "slice");
    int64_t flat[1] = {24};
    pn_tensor r = pn_tensor_reshape(&t, 1, flat);
    CHECK(r.ndim == 1 && pn_tensor_is_contiguous(&r), "reshape");
    char buf[64];
    CHECK(strcmp(pn_shape_str(3, shape, buf, sizeof buf), "[2, 3, 4]") == 0, "shape str '%s'", buf);
    CHECK(pn_dtype_from_name("BF16") == PN_BF16 && pn_dtype_from_name("F8") == -1, "dtype names");
}

static void test_arena(void) {
    pn_arena a;
    pn_arena_init(&a, "test", 1 << 16);
    float *x = pn_arena_floats(&a, 3);
    float *y = pn_arena_floats(&a, 5);
    CHECK(((uintptr_t)x % 64) == 0 && ((uintptr_t)y % 64) == 0, "arena alignment");
    CHECK(y[4] == 0.0f, "arena zero fill");
    size_t m = pn_arena_mark(&a);
    (void)pn_arena_alloc(&a, 1000);
    pn_arena_reset(&a, m);
    CHECK(a.used == m && a.peak >= m + 1000, "arena mark/reset");
    pn_arena_free(&a);
}

static void overflow_arena(void *arg) {
    (void)arg;
    pn_arena a;
    pn_arena_init(&a, "tiny", 128);
    (void)pn_arena_alloc(&a, 4096);
}

static void read_missing(void *arg) { (void)pn_read_file((const char *)arg, NULL); }

static void test_fileio(void) {
    char dir[] = "/tmp/pn_core_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], sub[256];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    pn_write_file_atomic(path, "hello", 5);
    size_t n;
    char *s = pn_read_file(path, &n);
    CHECK(n == 5 && strcmp(s, "hello") == 0, "atomic write/read");
    free(s);
    snprintf(sub, sizeof sub, "%s/x/y/z", dir);
    pn_mkdir_p(sub);
    CHECK(pn_is_dir(sub), "mkdir -p");
    // an aborted atomic write leaves the old file and no temp file behind
    pn_atomic_file af;
    pn_atomic_open(&af, path);
    fputs("partial", af.f);
    pn_atomic_abort(&af);
    s = pn_read_file(path, &n);
    CHECK(strcmp(s, "hello") == 0 && !pn_file_exists(af.tmp), "abort keeps old file");
    free(s);
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    CHECK(expect_exit(read_missing, path, 2, "missing.txt: cannot open"), "missing file exits 2");
    CHECK(expect_exit(overflow_arena, NULL, 1, "arena 'tiny' overflow"), "arena overflow exits 1");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

// A job config's log level applies unless --log (pn_log_set_level) or POSTNAS_LOG chose one.
static void test_log_levels(void) {
    if (getenv("POSTNAS_LOG")) return;
    pn_log_set_default_level(PN_LOG_WARN);
    CHECK(pn_log_get_level() == PN_LOG_WARN, "config level applies by default");
    pn_log_set_level(PN_LOG_DEBUG);
    pn_log_set_default_level(PN_LOG_ERROR);
    CHECK(pn_log_get_level() == PN_LOG_DEBUG, "an explicit level wins over the config's");
    CHECK(pn_log_level_parse("warn") == PN_LOG_WARN && pn_log_level_parse("loud") == -1, "level names");
    pn_log_set_level(PN_LOG_INFO);
}

int main(void) {
    test_log_levels();
    test_philox_kat();
    test_rng_thread_independence();
    test_float_conversions();
    test_tensor_views();
    test_arena();
    test_fileio();
    return test_summary("test_core");
}
