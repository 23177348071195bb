// cmd_bench.c — `postnas bench backbone|blocks|decode|kernels|train-step`: parse flags, call
// search/bench_*.c. decode has its own option table (model, context, batch);
// its library code only logs, so the table it reports is printed here. kernels
// (CUDA only) has its own table too; its table is printed from the JSON it wrote.
#include "args.h"
#include "commands.h"
#include "search/bench.h"
#include "search/bench_train_step.h"
#include "search/engine_cuda.h"
#include <jansson.h>

static int bench_usage(void) {
    printf("usage: postnas bench WHAT [options]\n\n"
           "benchmarks (each prints a table and writes JSON under results/bench/):\n"
           "  backbone   forward+backward tokens/s of a 6-layer, hidden-256 model at T=256 (CPU),\n"
           "             matmul GFLOP/s next to OpenBLAS sgemm's rate  -> results/bench/cpu-backbone.json\n"
           "  blocks     forward+backward tokens/s per block, chunked vs recurrent, B=4 T=512 C=256\n"
           "             -> results/bench/cpu-blocks.json\n"
           "  decode     prefill and decode tokens/s of a model directory at a context and batch,\n"
           "             with the memory-bandwidth floor of a decode step -> results/bench/cpu-decode.json\n"
           "             (--device cuda: rows merged into results/bench/cuda-decode.json)\n"
           "  kernels    CUDA kernels at their target shapes (--device cuda only): copy and bf16 GEMM\n"
           "             ceilings, gated delta rule decode / fwd (+ fast) / fwd+bwd, attention, simple GLA,\n"
           "             GLA, DPLR, causal / dynamic conv, gated RMSNorm, each against its floor\n"
           "             -> results/bench/h100.json\n"
           "  train-step full supernet distillation steps on the GPU (--device cuda only): median step time,\n"
           "             tokens/s, model FLOPs, MFU, memory -> results/bench/h100-train-step.json\n\n"
           "'postnas bench WHAT --help' for options.\n");
    return 0;
}

static int bench_decode_cmd(int argc, char **argv) {
    const char *cmd = "bench decode";
    pn_opt opts[] = {
        {"--model", "DIR", "model directory (config.json + safetensors), e.g. from 'postnas init-model'"},
        {"--context", "L", "prompt tokens per sequence prefilled before decoding (required)"},
        {"--batch", "N|max", "sequences (default 1); max = the most that fit in MemAvailable (cpu) or free device memory (cuda)"},
        {"--device", "DEV", "cpu (default) or cuda"},
        {"--prefill-chunk", "N", "prefill tokens per sequence per pass (default 256 on cpu, 1024 on cuda)"},
        {"--steps", "N", "timed decode steps, median reported (default 20)"},
        {"--warmup", "N", "untimed decode steps before them (default 3)"},
        {"--out", "FILE", "JSON output (default results/bench/cpu-decode.json; cuda: rows in results/bench/cuda-decode.json)"},
        {"--prefill-batch", "N", "cuda: sequences per prefill pass (default 8)"},
        {"--prefill-seqs", "N", "cuda: sequences prefilled and timed (default 8); the others copy their states"},
        {"--label", "NAME", "cuda: the row's name in the JSON (default: the model directory's last component)"},
        {"--delta-prefill", "MODE", "cuda: chunked (default: tensor-core chunked delta rule) or scan (fused recurrent scan)"},
    };
    const char *pos[1];
    pn_args_parse(cmd, "--model DIR --context L [options]",
                  "Prefill L random tokens per sequence in chunks, then decode; report tokens/s, memory and the\n"
                  "bandwidth floor of a decode step (bytes moved over the copy bandwidth measured in the same run).\n"
                  "--batch max: cpu: MemAvailable less max(10%, 256 MiB); cuda: free device memory less\n"
                  "max(1/32, 1 GiB), against the engine's exact byte counts. cuda: each run's row replaces the row\n"
                  "with the same label, context and batch in the --out JSON, or is appended.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 0);
    pn_bench_decode_args a;
    memset(&a, 0, sizeof a);
    pn_bench_decode_result res;
    a.model_dir = pn_opt_require(cmd, &opts[0]);
    pn_opt_require(cmd, &opts[1]);
    a.context = pn_opt_int(cmd, &opts[1], 0, 1, 1LL << 24);
    if (opts[2].present && strcmp(opts[2].value, "max") == 0)
        a.batch = 0;
    else
        a.batch = (int)pn_opt_int(cmd, &opts[2], 1, 1, 1 << 20);
    a.device = opts[3].present ? opts[3].value : "cpu";
    const int cuda = strcmp(a.device, "cuda") == 0;
    if (!cuda && strcmp(a.device, "cpu") != 0) {
        fprintf(stderr, "postnas %s: error: --device %s is not available (cpu or cuda)\n", cmd, a.device);
        return PN_EXIT_INPUT;
    }
    if (!cuda && (opts[8].present || opts[9].present || opts[10].present || opts[11].present)) {
        fprintf(stderr, "postnas %s: error: --prefill-batch, --prefill-seqs, --label and --delta-prefill are for "
                "--device cuda\n", cmd);
        return PN_EXIT_INPUT;
    }
    const char *dmode = opts[11].present ? opts[11].value : "chunked";
    if (strcmp(dmode, "scan") != 0 && strcmp(dmode, "chunked") != 0) {
        fprintf(stderr, "postnas %s: error: --delta-prefill expects scan or chunked, got '%s'\n", cmd, dmode);
        return PN_EXIT_INPUT;
    }
    a.prefill_chunk = (int)pn_opt_int(cmd, &opts[4], cuda ? 1024 : 256, 1, 1 << 20);
    a.steps = (int)pn_opt_int(cmd, &opts[5], 20, 1, 100000);
    a.warmup = (int)pn_opt_int(cmd, &opts[6], 3, 0, 100000);
    a.out_json = opts[7].present ? opts[7].value : cuda ? "results/bench/cuda-decode.json" : "results/bench/cpu-decode.json";
    a.result = &res;
    int rc;
    if (cuda) {
        const int pb = (int)pn_opt_int(cmd, &opts[8], 8, 1, 1 << 20);
        const int ps = (int)pn_opt_int(cmd, &opts[9], 8, 1, 1 << 20);
        rc = pn_bench_decode_cuda(&a, pb, ps, opts[10].present ? opts[10].value : NULL, strcmp(dmode, "chunked") == 0);
    } else {
        rc = pn_bench_decode(&a);
    }
    if (rc) return rc;
    const int chunk = (int)PN_MIN((int64_t)a.prefill_chunk, a.context + a.warmup + a.steps);
    if (cuda)
        printf("postnas bench decode: %s, context %lld, batch %d%s, prefill chunk %d, cuda (%d SMs)\n", a.model_dir,
               (long long)a.context, res.batch, a.batch ? "" : " (max)", chunk, res.threads);
    else
        printf("postnas bench decode: %s, context %lld, batch %d%s, prefill chunk %d, %d threads\n", a.model_dir,
               (long long)a.context, res.batch, a.batch ? "" : " (max)", chunk, res.threads);
    printf("  prefill                      %12.0f tokens/s\n", res.prefill_tokens_per_s);
    printf("  decode (median of %3d steps) %12.0f tokens/s   %9.3f ms/step (fastest %.3f)\n", a.steps,
           res.decode_tokens_per_s, res.decode_step_ms_median, res.decode_step_ms_min);
    printf("  memory  weights %.1f MiB, states %.1f MiB, activations %.1f MiB\n", res.weight_bytes / 1048576.0,
           res.state_bytes / 1048576.0, res.activation_bytes / 1048576.0);
    printf("  floor   %.1f MiB/step at %.1f GB/s copy bandwidth = %.3f ms/step (%.0f tokens/s); measured / floor = %.2f\n",
           res.step_bytes / 1048576.0, res.bandwidth_GBps, res.floor_step_ms,
           res.batch / (res.floor_step_ms * 1e-3), res.ratio_to_floor);
    printf("  wrote %s\n", a.out_json);
    return 0;
}

// One line per row of the JSON pn_bench_kernels wrote.
static void bench_kernels_print(const char *path) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) pn_die_input(path, "cannot read the benchmark JSON back: %s (line %d)", err.text, err.line);
    json_t *gpu = json_object_get(j, "gpu"), *ceil = json_object_get(j, "ceilings");
    printf("postnas bench kernels: %s, driver CUDA %s, runtime %s; copy %.3f TB/s, bf16 GEMM %.1f TFLOP/s\n",
           json_string_value(json_object_get(gpu, "name")), json_string_value(json_object_get(gpu, "driver_cuda_version")),
           json_string_value(json_object_get(gpu, "runtime_version")),
           json_real_value(json_object_get(ceil, "copy_TBps")), json_real_value(json_object_get(ceil, "gemm_bf16_TFLOPs")));
    printf("  %-38s %10s %18s %10s %8s  %-30s %s\n", "kernel", "ms", "achieved", "floor ms", "/floor", "target", "met");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "rows"), i, r) {
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *status = json_string_value(json_object_get(r, "status"));
        if (!json_object_get(r, "ms")) {
            printf("  %-38s %s\n", name, status ? status : "");
            continue;
        }
        const json_t *tgt = json_object_get(r, "target"), *met = json_object_get(r, "met");
        printf("  %-38s %10.4f %11.2f %-6s %10.4f %8.2f  %-30s %s\n", name, json_real_value(json_object_get(r, "ms")),
               json_real_value(json_object_get(r, "achieved")), json_string_value(json_object_get(r, "unit")),
               json_real_value(json_object_get(r, "floor_ms")), json_real_value(json_object_get(r, "ratio_to_floor")),
               json_is_string(tgt) ? json_string_value(tgt) : "-",
               json_is_boolean(met) ? (json_is_true(met) ? "yes" : "NO") : "-");
        if (status && strcmp(status, "measured") != 0) printf("  %-38s ^ %s\n", "", status);
    }
    printf("  wrote %s\n", path);
    json_decref(j);
}

static int bench_kernels_cmd(int argc, char **argv) {
    const char *cmd = "bench kernels";
    pn_opt opts[] = {
        {"--device", "DEV", "cuda (the only device: this benchmarks the CUDA backend; default cuda)"},
        {"--out", "FILE", "JSON output path (default results/bench/h100.json)"},
    };
    const char *pos[1];
    pn_args_parse(cmd, "[--device cuda] [--out FILE]",
                  "Time the CUDA backend's kernels at their target shapes (median of >= 20 calls, 3 for the\n"
                  "backward; cudaEvents; inputs rotating among 3 sets) and set each against its floor, from the\n"
                  "copy bandwidth and bf16 GEMM rate measured in the same run. Needs a CUDA build and a GPU.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 0);
    const char *device = opts[0].present ? opts[0].value : "cuda";
    if (strcmp(device, "cuda") != 0) {
        fprintf(stderr, "postnas %s: error: --device %s is not supported: kernels benchmarks the CUDA backend "
                "(--device cuda)\n", cmd, device);
        return PN_EXIT_INPUT;
    }
    const char *out = opts[1].present ? opts[1].value : "results/bench/h100.json";
    int rc = pn_bench_kernels(out);
    if (rc) return rc;
    bench_kernels_print(out);
    return 0;
}

static int bench_train_step_cmd(int argc, char **argv) {
    const char *cmd = "bench train-step";
    pn_opt opts[] = {
        {"--model", "DIR", "model directory (config.json + safetensors), e.g. from 'postnas init-model --like qwen2.5-1.5b'"},
        {"--block", "NAME", "linear path of every layer (default jetblock)"},
        {"--batch", "B", "sequences per step (default 8)"},
        {"--seq", "T", "tokens per sequence (default 4096)"},
        {"--steps", "N", "timed steps, median reported (default 10)"},
        {"--warmup", "N", "untimed steps before them (default 2)"},
        {"--distill", "LOSS", "mse (default), kl or both"},
        {"--subnet", "MODE", "uniform_k (default: the config's sampling, k ~ U{0..k_max}) or all_linear"},
        {"--device", "DEV", "cuda (the only device; default cuda)"},
        {"--out", "FILE", "JSON output (default results/bench/h100-train-step.json; the row of the same label is replaced)"},
        {"--label", "NAME", "the row's name (default: model directory name, block, B, T, loss, subnet)"},
        {"--mlp-keep", "N|auto", "layers keeping their MLP gate / up for the backward (default auto: what fits)"},
        {"--gemm-autotune", "N", "time N (2..8) cuBLASLt candidates per GEMM shape in the warm-up, keep the fastest (default 0: the heuristic's choice)"},
    };
    const char *pos[1];
    pn_args_parse(cmd, "--model DIR [options]",
                  "Time full supernet training steps on the GPU: sample a subnet, distillation step on a fresh batch\n"
                  "of random ids (so the teacher forward runs every step), gradient norm + clip, AdamW, all on the\n"
                  "device. Reports the median step time, tokens/s, the step's model FLOPs (teacher fwd + student fwd\n"
                  "+ student bwd; frozen GEMMs 1x fwd in the backward, linear paths and attention scores 2x), MFU\n"
                  "against 989.4 TFLOP/s (H100 SXM dense bf16) and against the 745 TFLOP/s cuBLAS anchor, and the\n"
                  "device memory by part. Needs a CUDA build and a GPU.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 0);
    pn_bench_train_step_args a;
    memset(&a, 0, sizeof a);
    a.model_dir = pn_opt_require(cmd, &opts[0]);
    a.block = opts[1].present ? opts[1].value : NULL;
    a.batch = (int)pn_opt_int(cmd, &opts[2], 8, 1, 1 << 20);
    a.seq = (int)pn_opt_int(cmd, &opts[3], 4096, 1, 1 << 24);
    a.steps = (int)pn_opt_int(cmd, &opts[4], 10, 1, 100000);
    a.warmup = (int)pn_opt_int(cmd, &opts[5], 2, 0, 100000);
    a.distill = opts[6].present ? opts[6].value : NULL;
    a.subnet = opts[7].present ? opts[7].value : NULL;
    a.device = opts[8].present ? opts[8].value : NULL;
    a.out_json = opts[9].present ? opts[9].value : NULL;
    a.label = opts[10].present ? opts[10].value : NULL;
    a.mlp_keep = opts[11].present ? opts[11].value : NULL;
    a.gemm_autotune = (int)pn_opt_int(cmd, &opts[12], 0, 0, 8);
    pn_bench_train_step_result r;
    int rc = pn_bench_train_step(&a, &r);
    if (rc) return rc;
    printf("postnas bench train-step: %s on %s, B %d, T %d\n", a.model_dir, r.gpu, a.batch, a.seq);
    printf("  step (median of %d)  %10.2f ms   (fastest %.2f)\n", a.steps, r.step_ms_median, r.step_ms_min);
    printf("  tokens/s              %10.0f\n", r.tokens_per_s);
    printf("  model FLOPs per step  %10.2f TFLOP (mean)\n", r.flops_per_step / 1e12);
    printf("  MFU                   %10.3f of %.1f TFLOP/s; %.3f of the %.0f TFLOP/s cuBLAS anchor\n", r.mfu,
           PN_BENCH_H100_PEAK_BF16_TFLOPS, r.mfu_vs_anchor, PN_BENCH_H100_GEMM_ANCHOR_TFLOPS);
    printf("  loss                  %10.4f -> %.4f\n", r.loss_first, r.loss_last);
    printf("  device memory         %10.1f MiB (csupernet; MLP products kept for %d layers)\n",
           r.mem_total / 1048576.0, r.mlp_kept);
    printf("  wrote %s\n", a.out_json ? a.out_json : "results/bench/h100-train-step.json");
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        bench_usage();
        return argc < 2 ? PN_EXIT_INPUT : 0;
    }
    const char *what = argv[1];
    if (strcmp(what, "decode") == 0) return bench_decode_cmd(argc - 1, argv + 1);
    if (strcmp(what, "kernels") == 0) return bench_kernels_cmd(argc - 1, argv + 1);
    if (strcmp(what, "train-step") == 0) return bench_train_step_cmd(argc - 1, argv + 1);
    pn_opt opts[] = {
        {"--out", "FILE", "JSON output path (default results/bench/cpu-WHAT.json)"},
        {"--steps", "N", "timed steps (median reported; default 5)"},
        {"--device", "DEV", "cpu (cuda once the CUDA backend exists)"},
    };
    char cmd[64];
    snprintf(cmd, sizeof cmd, "bench %s", what);
    if (strcmp(what, "backbone") != 0 && strcmp(what, "blocks") != 0) {
        fprintf(stderr, "postnas bench: error: unknown benchmark '%s' (expected backbone, blocks, decode, kernels or train-step)\n", what);
        return PN_EXIT_INPUT;
    }
    const char *pos[1];
    pn_args_parse(cmd, "[options]", "Run a benchmark and write its JSON.", opts, 3, argc - 1, argv + 1, pos, 0);
    int steps = (int)pn_opt_int(cmd, &opts[1], 5, 1, 1000);
    const char *device = opts[2].present ? opts[2].value : "cpu";
    if (strcmp(device, "cpu") != 0) {
        fprintf(stderr, "postnas %s: error: --device %s is not available yet (cpu only)\n", cmd, device);
        return PN_EXIT_INPUT;
    }
    char out[512];
    if (opts[0].present)
        snprintf(out, sizeof out, "%s", opts[0].value);
    else
        snprintf(out, sizeof out, "results/bench/cpu-%s.json", what);
    if (strcmp(what, "backbone") == 0) return pn_bench_backbone(out, steps);
    return pn_bench_blocks(device, out, steps);
}
