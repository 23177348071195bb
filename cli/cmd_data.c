// cmd_data.c — `postnas data synth|info`: make synthetic data, inspect data files.
//
// synth writes the deterministic synthetic training streams and task suites of
// datasets/synth.h; info opens token shards and task suites with the same
// readers training uses, so a file that passes `data info` loads in a job.
#include "args.h"
#include "commands.h"
#include "core/log.h"
#include "datasets/synth.h"
#include "datasets/tasks.h"
#include "datasets/tokens.h"

static const char *k_data_desc =
    "Data files: token shards (HDF5 with a 1-D uint16/uint32 dataset 'tokens' and attribute 'eos_id', or llm.c\n"
    ".bin shards) and task suites (JSONL, one example per line). Actions:\n"
    "  synth --out DIR --seed N [...]   write synthetic train/valid streams and task suites into DIR\n"
    "  info FILE...                     describe token shards (.h5/.bin) and task suites (.jsonl)";

static int data_synth(int argc, char **argv) {
    pn_synth_cfg c;
    pn_synth_cfg_default(&c);
    pn_opt opts[] = {
        {"--out", "DIR", "output directory (created if missing)"},
        {"--seed", "N", "seed of every random draw (same seed = byte-identical files)"},
        {"--train-tokens", "N", "tokens in train.h5 (default 4000000)"},
        {"--valid-tokens", "N", "tokens in valid.h5 (default 200000)"},
        {"--examples", "N", "examples per task suite (default 200)"},
        {"--vocab-size", "N", "vocab size written to the files (default 256; the layout needs 234 ids)"},
        {"--kv-pairs", "N", "key-value pairs per recall context (default 16)"},
        {"--max-digits", "N", "digits per arithmetic operand (default 3)"},
    };
    const char *cmd = "data synth";
    const char *pos[1];
    pn_args_parse(cmd, "--out DIR --seed N [--train-tokens N] [--valid-tokens N] [--examples N] [...]",
                  "Write deterministic synthetic data into DIR: train.h5 and valid.h5 (token streams mixing\n"
                  "associative recall, arithmetic and knowledge-base facts, EOS-separated), retrieval.jsonl and\n"
                  "math.jsonl (generative), knowledge.jsonl (multiple choice), and synth.json (the token layout,\n"
                  "sizes and the knowledge base). Every file is a pure function of --seed and the sizes.",
                  opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, 0);
    const char *out = pn_opt_require(cmd, &opts[0]);
    pn_opt_require(cmd, &opts[1]);
    uint64_t seed = (uint64_t)pn_opt_int(cmd, &opts[1], 0, 0, INT64_MAX);
    c.train_tokens = (uint64_t)pn_opt_int(cmd, &opts[2], (long long)c.train_tokens, 1, 1LL << 40);
    c.valid_tokens = (uint64_t)pn_opt_int(cmd, &opts[3], (long long)c.valid_tokens, 1, 1LL << 40);
    c.n_examples = (int)pn_opt_int(cmd, &opts[4], c.n_examples, 1, 10000000);
    c.vocab_size = (int)pn_opt_int(cmd, &opts[5], c.vocab_size, 1, 65536);
    c.kv_pairs = (int)pn_opt_int(cmd, &opts[6], c.kv_pairs, 1, 60000);
    c.max_digits = (int)pn_opt_int(cmd, &opts[7], c.max_digits, 1, 9);
    if (c.kv_queries > c.kv_pairs) c.kv_queries = c.kv_pairs;
    pn_synth_generate(out, seed, &c);
    printf("wrote %s: train.h5 (%llu tokens), valid.h5 (%llu tokens), retrieval.jsonl, math.jsonl, knowledge.jsonl "
           "(%d examples each), synth.json\n",
           out, (unsigned long long)c.train_tokens, (unsigned long long)c.valid_tokens, c.n_examples);
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int data_info(int argc, char **argv) {
    pn_opt opts[] = {
        {"--vocab-size", "N", "also check every token id / task id is below N"},
    };
    const char *cmd = "data info";
    const char *pos[PN_OPT_MAX_VALUES];
    int npos = pn_args_parse(cmd, "FILE... [--vocab-size N]",
                             "Describe token shards (HDF5 or llm.c .bin: dtype, token count, eos_id) and task suites\n"
                             "(.jsonl: kind, example count). Bad files exit 2 naming the file and what was expected.",
                             opts, (int)PN_ARRAY_LEN(opts), argc, argv, pos, PN_OPT_MAX_VALUES);
    if (npos < 1) {
        fprintf(stderr, "postnas data info: error: expected at least one FILE (see 'postnas data info --help')\n");
        return PN_EXIT_INPUT;
    }
    long long vocab = pn_opt_int(cmd, &opts[0], 0, 0, 1LL << 32);
    for (int i = 0; i < npos; i++) {
        if (ends_with(pos[i], ".jsonl")) {
            pn_task_suite s;
            pn_task_suite_load(&s, pos[i], vocab);
            printf("%s: task suite '%s', %s, %lld examples\n", pos[i], s.name,
                   s.kind == PN_TASK_MC ? "multiple-choice" : "generative", (long long)s.n_examples);
            pn_task_suite_free(&s);
        } else {
            pn_token_shard s;
            pn_token_shard_open(&s, pos[i]);
            if (vocab > 0) pn_token_shard_check_vocab(&s, (uint64_t)vocab);
            printf("%s: %s token shard, uint%d, %llu tokens, eos_id %lld", pos[i],
                   s.format == PN_TOKENS_H5 ? "HDF5" : ".bin", 8 * s.width, (unsigned long long)s.n_tokens,
                   (long long)s.eos_id);
            if (s.vocab_size >= 0) printf(", vocab_size %lld", (long long)s.vocab_size);
            printf("\n");
            pn_token_shard_close(&s);
        }
    }
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "synth") == 0) return data_synth(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "info") == 0) return data_info(argc - 1, argv + 1);
    if (argc >= 2 && argv[1][0] != '-') {
        fprintf(stderr, "postnas data: error: unknown action '%s' (expected: synth, info; see 'postnas data --help')\n",
                argv[1]);
        return PN_EXIT_INPUT;
    }
    const char *pos[1];
    pn_args_parse("data", "synth|info ...", k_data_desc, NULL, 0, argc, argv, pos, 0);
    fprintf(stderr, "postnas data: error: missing action (expected: synth, info; see 'postnas data --help')\n");
    return PN_EXIT_INPUT;
}
