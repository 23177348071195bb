// test_evaluate.c — task evaluation against oracles the test derives on its own.
//
// Model: a tiny random Qwen2-style model (4 layers, width 64, vocab 64, untied)
// written to a temp dir; its LM head is scaled ×30 in memory so the next-token
// distributions are peaked (random N(0, 0.02) weights give near-uniform logits,
// where argmax and ranking would hang on rounding).
// Oracles, each from one unbatched pn_backbone_forward per sequence and a
// log-softmax in double written here:
//   (a) MC: loglik of every choice → expected accuracy (strict >, ties wrong)
//       and mean answer NLL; a duplicated-choice example checks the tie rule.
//   (b)/(c) GEN: greedy continuation by repeated full forwards (argmax, lowest
//       id on ties); a suite whose answers are these outputs must score 1.0
//       through the engine, a perturbed copy exactly the unperturbed share;
//       teacher-forced accuracy / token accuracy / NLL from prompt+answer forwards.
//   (d) the placement bridge on a supernet (gated_deltanet linear paths): the
//       all-ones mask reproduces the plain model's scores bit for bit, other
//       masks change them and match the oracle under that subnet.
// Batched evaluation reorders float sums (rows packed in one GEMM), so NLLs are
// compared at 1e-5 relative; accuracies and counts exactly. Each oracle decision
// must have a margin above 1e-3 (checked) so the exact comparisons are robust.
#include "core/fileio.h"
#include "core/rng.h"
#include "search/evaluate.h"
#include "search/placement.h"
#include "supernet/model_init.h"
#include "test_util.h"

enum { V = 64, L = 4, N_MC = 12, N_GEN = 10, MAXSEQ = 32 };
#define NLL_TOL 1e-5
#define MARGIN 1e-3
static char g_root[64];
static pn_backbone *g_bb;
static double g_min_margin = INFINITY;

// ---------------------------------------------------------------- oracles

// log-softmax of row (V) at token tok in double; *best = argmax (lowest id on
// ties), *margin = top1 − top2.
static double row_logp(const float *row, int64_t tok, int *best, double *margin) {
    int b = 0;
    for (int v = 1; v < V; v++)
        if (row[v] > row[b]) b = v;
    double second = -INFINITY, se = 0;
    for (int v = 0; v < V; v++) {
        if (v != b && row[v] > second) second = row[v];
        se += exp((double)row[v] - (double)row[b]);
    }
    if (best) *best = b;
    if (margin) *margin = (double)row[b] - second;
    return (double)row[tok] - (double)row[b] - log(se);
}

// Σ_j log p(cont[j] | ctx, cont[<j]) from one (1, nc + nk) forward; *n_right =
// positions whose argmax is cont[j].
static double oracle_loglik(const int64_t *ctx, int nc, const int64_t *cont, int nk, int *n_right) {
    int64_t seq[MAXSEQ];
    memcpy(seq, ctx, (size_t)nc * sizeof *seq);
    memcpy(seq + nc, cont, (size_t)nk * sizeof *seq);
    pn_backbone_forward(g_bb, seq, 1, nc + nk);
    double ll = 0;
    int right = 0;
    for (int j = 0; j < nk; j++) {
        int best;
        ll += row_logp(g_bb->logits + (size_t)(nc - 1 + j) * V, cont[j], &best, NULL);
        right += best == cont[j];
    }
    if (n_right) *n_right = right;
    return ll;
}

// Greedy continuation of n tokens by repeated full forwards.
static void oracle_greedy(const int64_t *prompt, int np, int n, int64_t *out) {
    int64_t seq[MAXSEQ];
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    for (int s = 0; s < n; s++) {
        pn_backbone_forward(g_bb, seq, 1, np + s);
        int best;
        double margin;
        row_logp(g_bb->logits + (size_t)(np + s - 1) * V, 0, &best, &margin);
        g_min_margin = fmin(g_min_margin, margin);
        out[s] = best;
        seq[np + s] = best;
    }
}

// ---------------------------------------------------------------- suites

typedef struct {
    int nc, nch, ans;
    int64_t ctx[8];
    int nk[4];
    int64_t ch[4][4];
} mc_ex;

typedef struct {
    int np, na;
    int64_t prompt[8];
    int64_t ans[8];
} gen_ex;

static mc_ex g_mc[N_MC];
static gen_ex g_prompts[N_GEN];

static void write_ids(FILE *f, const int64_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)ids[i]);
    fputc(']', f);
}

static void write_mc(const char *path, const mc_ex *ex, int n) {
    FILE *f = fopen(path, "w");
    PN_ASSERT(f != NULL);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"context_ids\": ");
        write_ids(f, ex[i].ctx, ex[i].nc);
        fprintf(f, ", \"choices_ids\": [");
        for (int c = 0; c < ex[i].nch; c++) {
            if (c) fprintf(f, ", ");
            write_ids(f, ex[i].ch[c], ex[i].nk[c]);
        }
        fprintf(f, "], \"answer\": %d}\n", ex[i].ans);
    }
    fclose(f);
}

static void write_gen(const char *path, const gen_ex *ex, int n) {
    FILE *f = fopen(path, "w");
    PN_ASSERT(f != NULL);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"prompt_ids\": ");
        write_ids(f, ex[i].prompt, ex[i].np);
        fprintf(f, ", \"answer_ids\": ");
        write_ids(f, ex[i].ans, ex[i].na);
        fprintf(f, "}\n");
    }
    fclose(f);
}

static const char *tmp_path(const char *name) {
    static char buf[4][600];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 600, "%s/%s", g_root, name);
    return p;
}

// MC expectation from the oracle for examples [0, n).
static void mc_expect(const mc_ex *ex, int n, int64_t *correct, double *mean_nll) {
    double nll = 0;
    int64_t tok = 0, ok_count = 0;
    for (int i = 0; i < n; i++) {
        double ll[4] = {0};
        for (int c = 0; c < ex[i].nch; c++) ll[c] = oracle_loglik(ex[i].ctx, ex[i].nc, ex[i].ch[c], ex[i].nk[c], NULL);
        int ok = 1;
        for (int c = 0; c < ex[i].nch; c++)
            if (c != ex[i].ans && !(ll[ex[i].ans] > ll[c])) ok = 0;
        ok_count += ok;
        nll -= ll[ex[i].ans];
        tok += ex[i].nk[ex[i].ans];
    }
    *correct = ok_count;
    *mean_nll = nll / (double)tok;
}

// Builds the MC examples; answers: the oracle's best choice for even i, another
// one for odd i, and for i % 4 == 3 a duplicated best choice (a tie → wrong).
static void build_mc(void) {
    pn_rng r = pn_rng_make(11, 0);
    int intended = 0;
    for (int i = 0; i < N_MC; i++) {
        mc_ex *e = &g_mc[i];
        e->nc = 1 + i % 6;
        e->nch = 2 + i % 3;
        for (int t = 0; t < e->nc; t++) e->ctx[t] = 2 + (int64_t)pn_rng_below(&r, V - 2);
        for (int c = 0; c < e->nch; c++) {
            e->nk[c] = 1 + (i + c) % 3;
            for (int t = 0; t < e->nk[c]; t++) e->ch[c][t] = 2 + (int64_t)pn_rng_below(&r, V - 2);
        }
        double ll[4] = {0};
        int best = 0;
        for (int c = 0; c < e->nch; c++) {
            ll[c] = oracle_loglik(e->ctx, e->nc, e->ch[c], e->nk[c], NULL);
            if (ll[c] > ll[best]) best = c;
        }
        double gap = INFINITY;
        for (int c = 0; c < e->nch; c++)
            if (c != best) gap = fmin(gap, ll[best] - ll[c]);
        g_min_margin = fmin(g_min_margin, gap);
        if (i % 4 == 3) {
            // duplicate the best choice into another slot; the answer is one of the two
            const int other = (best + 1) % e->nch;
            e->nk[other] = e->nk[best];
            memcpy(e->ch[other], e->ch[best], sizeof e->ch[best]);
            e->ans = best;
        } else {
            e->ans = i % 2 == 0 ? best : (best + 1) % e->nch;
            intended += i % 2 == 0;
        }
    }
    int64_t corr;
    double nll;
    mc_expect(g_mc, N_MC, &corr, &nll);
    CHECK(corr == intended, "MC construction: oracle counts %lld correct, construction intends %d", (long long)corr,
          intended);
}

static const int k_plen[N_GEN] = {3, 3, 3, 5, 5, 2, 7, 3, 5, 4};

static void build_prompts(void) {
    pn_rng r = pn_rng_make(12, 0);
    for (int i = 0; i < N_GEN; i++) {
        gen_ex *e = &g_prompts[i];
        e->np = k_plen[i];
        e->na = 1 + i % 4;
        for (int t = 0; t < e->np; t++) e->prompt[t] = 2 + (int64_t)pn_rng_below(&r, V - 2);
    }
}

// Answers = the oracle's greedy continuation under the model's current mixers.
static void greedy_answers(gen_ex *out) {
    for (int i = 0; i < N_GEN; i++) {
        out[i] = g_prompts[i];
        oracle_greedy(out[i].prompt, out[i].np, out[i].na, out[i].ans);
    }
}

static void perturb(gen_ex *ex) {
    for (int i = 0; i < N_GEN; i++) {
        if (i % 3 == 1) ex[i].ans[ex[i].na - 1] = (ex[i].ans[ex[i].na - 1] + 1) % V;
        if (i % 3 == 2) ex[i].ans[0] = (ex[i].ans[0] + 1) % V;
    }
}

// Teacher-forced expectation: examples with every position argmax, right
// positions, mean NLL, over [0, n).
static void tf_expect(const gen_ex *ex, int n, int64_t *correct, int64_t *right, int64_t *tok, double *mean_nll) {
    double nll = 0;
    *correct = *right = *tok = 0;
    for (int i = 0; i < n; i++) {
        int r;
        nll -= oracle_loglik(ex[i].prompt, ex[i].np, ex[i].ans, ex[i].na, &r);
        *right += r;
        *tok += ex[i].na;
        *correct += r == ex[i].na;
    }
    *mean_nll = nll / (double)*tok;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

// ---------------------------------------------------------------- tests

static void test_mc(pn_task_suite *mc) {
    const int batches[3] = {1, 3, 64};
    for (int k = 0; k < 3; k++) {
        for (int sub = 0; sub < 2; sub++) {
            pn_eval_opts o;
            pn_eval_opts_default(&o);
            o.batch = batches[k];
            o.max_examples = sub ? 5 : 0;
            const int n = sub ? 5 : N_MC;
            int64_t corr;
            double nll;
            mc_expect(g_mc, n, &corr, &nll);
            pn_eval_result r;
            pn_eval_suite(g_bb, mc, &o, &r);
            CHECK(r.kind == PN_TASK_MC && r.n_examples == n, "MC: n_examples %lld, want %d", (long long)r.n_examples, n);
            CHECK(r.n_correct == corr, "MC batch %d n=%d: %lld correct, oracle %lld", o.batch, n,
                  (long long)r.n_correct, (long long)corr);
            CHECK(r.accuracy == (double)corr / n, "MC accuracy %.6f", r.accuracy);
            CHECK(rel(r.mean_nll, nll) <= NLL_TOL, "MC batch %d n=%d: mean NLL %.9f vs oracle %.9f (rel %.2e)",
                  o.batch, n, r.mean_nll, nll, rel(r.mean_nll, nll));
            CHECK(r.score == -r.mean_nll && isnan(r.token_accuracy), "MC score = -mean NLL");
            if (sub == 0)
                printf("MC batch %d: %lld/%d correct (oracle %lld), mean NLL %.9f vs oracle %.9f, rel err %.2e\n",
                       o.batch, (long long)r.n_correct, n, (long long)corr, r.mean_nll, nll, rel(r.mean_nll, nll));
        }
    }
}

static void test_gen(pn_task_suite *g1, pn_task_suite *g2, const gen_ex *a1, const gen_ex *a2) {
    const int batches[3] = {1, 2, 16};
    for (int k = 0; k < 3; k++) {
        pn_eval_opts o;
        pn_eval_opts_default(&o);
        o.batch = batches[k];
        pn_eval_result r;
        pn_eval_suite(g_bb, g1, &o, &r);
        CHECK(r.n_examples == N_GEN && r.n_correct == N_GEN && r.accuracy == 1.0,
              "greedy answers (batch %d): engine exact match %lld/%d, want all", o.batch, (long long)r.n_correct, N_GEN);
        CHECK(isnan(r.mean_nll) && r.score == r.accuracy, "exact_match: no NLL, score = accuracy");
        pn_eval_suite(g_bb, g2, &o, &r);
        // only i % 3 == 0 kept the greedy answer
        CHECK(r.n_correct == 4 && r.accuracy == 0.4, "perturbed answers (batch %d): %lld correct, want 4",
              o.batch, (long long)r.n_correct);
        o.max_examples = 5;  // i = 0..4: i = 0, 3 unperturbed
        pn_eval_suite(g_bb, g2, &o, &r);
        CHECK(r.n_examples == 5 && r.n_correct == 2, "perturbed, first 5: %lld of %lld correct, want 2 of 5",
              (long long)r.n_correct, (long long)r.n_examples);
    }
    // teacher forced, against the oracle
    for (int s = 0; s < 2; s++) {
        const gen_ex *a = s ? a2 : a1;
        pn_task_suite *g = s ? g2 : g1;
        for (int k = 0; k < 3; k++) {
            pn_eval_opts o;
            pn_eval_opts_default(&o);
            o.gen_mode = PN_GEN_TEACHER_FORCED;
            o.batch = batches[k];
            int64_t corr, right, tok;
            double nll;
            tf_expect(a, N_GEN, &corr, &right, &tok, &nll);
            pn_eval_result r;
            pn_eval_suite(g_bb, g, &o, &r);
            CHECK(r.n_correct == corr && r.n_answer_tokens == tok, "teacher forced %s batch %d: %lld correct, oracle %lld",
                  s ? "perturbed" : "greedy", o.batch, (long long)r.n_correct, (long long)corr);
            CHECK(r.token_accuracy == (double)right / (double)tok, "teacher forced: token acc %.6f, oracle %lld/%lld",
                  r.token_accuracy, (long long)right, (long long)tok);
            CHECK(rel(r.mean_nll, nll) <= NLL_TOL, "teacher forced NLL %.9f vs oracle %.9f (rel %.2e)", r.mean_nll, nll,
                  rel(r.mean_nll, nll));
            CHECK(r.score == r.token_accuracy, "teacher forced: score = token accuracy");
            if (s == 0) CHECK(corr == N_GEN && right == tok, "oracle: greedy answers are all argmax under teacher forcing");
            if (k != 1)
                printf("teacher forced (%s, batch %d): %lld/%d correct, %lld/%lld tokens (oracle %lld, %lld), NLL rel err %.2e\n",
                       s ? "perturbed" : "greedy", o.batch, (long long)r.n_correct, N_GEN,
                       (long long)(r.token_accuracy * (double)tok + 0.5), (long long)tok, (long long)corr,
                       (long long)right, rel(r.mean_nll, nll));
        }
    }
    // a stop id: a sequence ends after producing it, so an answer holding it
    // before its last position cannot be matched (the output stops short)
    pn_eval_opts o;
    pn_eval_opts_default(&o);
    o.eos_id = a1[3].ans[0];  // a token of the greedy outputs
    int64_t expect = 0;
    for (int i = 0; i < N_GEN; i++) {
        int early = 0;
        for (int j = 0; j + 1 < a1[i].na; j++) early |= a1[i].ans[j] == o.eos_id;
        expect += !early;
    }
    pn_eval_result r;
    pn_eval_suite(g_bb, g1, &o, &r);
    CHECK(r.n_correct == expect, "eos_id %lld: %lld correct, want %lld", (long long)o.eos_id, (long long)r.n_correct,
          (long long)expect);
    printf("stop id %lld: %lld/%d correct (expected %lld)\n", (long long)o.eos_id, (long long)r.n_correct, N_GEN,
           (long long)expect);
}

static void test_tasks_dir(void) {
    const char *names[3] = {"mc", "g1", "g2"};
    pn_eval_opts o;
    pn_eval_opts_default(&o);
    pn_eval_result res[3];
    pn_eval_tasks_dir(g_bb, g_root, names, 3, &o, res);
    int64_t corr;
    double nll;
    mc_expect(g_mc, N_MC, &corr, &nll);
    CHECK(!strcmp(res[0].name, "mc") && res[0].kind == PN_TASK_MC && res[0].n_correct == corr, "tasks dir: mc");
    CHECK(rel(res[0].mean_nll, nll) <= NLL_TOL, "tasks dir: mc NLL");
    CHECK(!strcmp(res[1].name, "g1") && res[1].kind == PN_TASK_GEN && res[1].accuracy == 1.0, "tasks dir: g1");
    CHECK(res[2].n_correct == 4, "tasks dir: g2 %lld correct", (long long)res[2].n_correct);
}

// The plain model's reference results for the bridge test.
static pn_eval_result g_teacher_mc, g_teacher_g1;

static void test_bridge(pn_task_suite *mc, pn_task_suite *g1) {
    pn_eval_opts o;
    pn_eval_opts_default(&o);
    pn_eval_suite(g_bb, mc, &o, &g_teacher_mc);
    pn_eval_suite(g_bb, g1, &o, &g_teacher_g1);

    pn_supernet_config c;
    memset(&c, 0, sizeof c);
    c.block = PN_LINEAR_GATED_DELTANET;
    c.k_max = 2;
    c.sampling = PN_SAMPLING_UNIFORM_K;
    c.swa_window = 2;  // shorter than the sequences, so SWA differs from full attention
    c.distill = PN_DISTILL_MSE;
    c.mse_weight = 1.0;
    c.temperature = 1.0;
    c.linear_init = PN_LINEAR_INIT_BLOCK;
    pn_supernet *sn = pn_supernet_create(g_bb, &c, 5);
    // block init leaves some parameters at zero; noise makes every linear path carry signal
    float *noise = pn_malloc((size_t)sn->n_floats * sizeof *noise);
    pn_fill_normal(noise, (size_t)sn->n_floats, 0.0f, 0.05f, 77, 0);
    for (int64_t i = 0; i < sn->n_floats; i++) sn->params[i] += noise[i];
    free(noise);

    pn_task_suite suites[2] = {*mc, *g1};
    pn_eval_subnet_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.sn = sn;
    ctx.suites = suites;
    ctx.n_tasks = 2;
    ctx.opts = o;
    const uint8_t ones[L] = {1, 1, 1, 1}, zeros[L] = {0, 0, 0, 0}, one_layer[L] = {0, 1, 0, 0};
    double s_ones = pn_eval_subnet_score(ones, 0, &ctx);
    CHECK(s_ones == g_teacher_mc.score, "all-ones mask: MC score %.12f, plain model %.12f", s_ones, g_teacher_mc.score);
    CHECK(pn_eval_subnet_score(ones, 1, &ctx) == 1.0, "all-ones mask: greedy suite scores 1.0");
    double s_zero = pn_eval_subnet_score(zeros, 0, &ctx);
    double s_one = pn_eval_subnet_score(one_layer, 0, &ctx);
    CHECK(s_zero != s_ones && s_one != s_zero && s_one != s_ones, "masks change the score: %.6f %.6f %.6f", s_ones,
          s_one, s_zero);
    printf("bridge MC score: all attention %.6f, layer 1 only %.6f, all linear %.6f\n", s_ones, s_one, s_zero);
    // the subnet stays applied: the oracle under it agrees
    pn_eval_result r;
    pn_eval_suite(g_bb, mc, &o, &r);
    CHECK(r.score == s_one, "the last subnet stays applied");
    int64_t corr;
    double nll;
    mc_expect(g_mc, N_MC, &corr, &nll);
    CHECK(rel(-s_one, nll) <= NLL_TOL && ctx.last.n_correct == corr,
          "subnet {1}: NLL %.9f vs oracle %.9f (rel %.2e), %lld vs %lld correct", -s_one, nll, rel(-s_one, nll),
          (long long)ctx.last.n_correct, (long long)corr);
    // generative under the all-linear subnet: the engine's greedy (linear decode
    // states) against the oracle's repeated full forwards of the same subnet
    pn_eval_subnet_score(zeros, 0, &ctx);
    gen_ex lin[N_GEN];
    greedy_answers(lin);
    int64_t expect = 0;
    for (int i = 0; i < N_GEN; i++) {
        int same = 1;
        for (int j = 0; j < lin[i].na; j++) same &= lin[i].ans[j] == g1->examples[i].answer_ids[j];
        expect += same;
    }
    double s_lin = pn_eval_subnet_score(zeros, 1, &ctx);
    CHECK(s_lin == (double)expect / N_GEN, "all-linear greedy: accuracy %.3f, oracle %lld/%d", s_lin, (long long)expect,
          N_GEN);
    write_gen(tmp_path("lin.jsonl"), lin, N_GEN);
    pn_task_suite gl;
    pn_task_suite_load(&gl, tmp_path("lin.jsonl"), V);
    pn_eval_suite(g_bb, &gl, &o, &r);
    CHECK(r.accuracy == 1.0, "all-linear subnet reproduces its own oracle greedy outputs: %.3f", r.accuracy);
    pn_task_suite_free(&gl);
    // SWA variant
    double s_swa_none = pn_eval_subnet_swa_score(ones, zeros, 0, &ctx);
    CHECK(s_swa_none == g_teacher_mc.score, "SWA adapter, no SWA layer, all full: the teacher's score");
    double s_swa = pn_eval_subnet_swa_score(zeros, ones, 0, &ctx);
    double s_swa1 = pn_eval_subnet_swa_score(one_layer, (const uint8_t[L]){1, 0, 1, 1}, 0, &ctx);
    CHECK(s_swa != s_ones && s_swa != s_zero && s_swa1 != s_swa, "SWA masks change the score: %.6f %.6f", s_swa,
          s_swa1);
    long before = ctx.n_evals;
    // through the placement search's memo
    pn_placement p;
    pn_placement_init(&p, L, 2, pn_eval_subnet_score, pn_eval_subnet_swa_score, &ctx);
    CHECK(pn_placement_eval(&p, ones, 0) == g_teacher_mc.score, "placement: all-ones = teacher");
    CHECK(pn_placement_eval(&p, zeros, 0) == s_zero, "placement: all-linear");
    CHECK(pn_placement_eval(&p, ones, 0) == g_teacher_mc.score && ctx.n_evals == before + 2,
          "placement memo: %ld evaluations", ctx.n_evals - before);
    pn_placement_free(&p);
    // teacher-forced objective for generative tasks
    ctx.opts.gen_mode = PN_GEN_TEACHER_FORCED;
    CHECK(pn_eval_subnet_score(ones, 1, &ctx) == 1.0 && ctx.last.token_accuracy == 1.0,
          "teacher forced, all attention: token accuracy 1");
    pn_supernet_free(sn);
}

// ---------------------------------------------------------------- bad input

static void bad_id(void *arg) {
    (void)arg;
    pn_task_suite s;
    pn_task_suite_load(&s, tmp_path("bad.jsonl"), 0);  // no vocab check at load
    pn_eval_opts o;
    pn_eval_opts_default(&o);
    pn_eval_result r;
    pn_eval_suite(g_bb, &s, &o, &r);
}

static void missing_task(void *arg) {
    (void)arg;
    const char *names[1] = {"nope"};
    pn_eval_opts o;
    pn_eval_opts_default(&o);
    pn_eval_result r;
    pn_eval_tasks_dir(g_bb, g_root, names, 1, &o, &r);
}

static void make_model(void) {
    pn_hf_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    snprintf(c.architecture, sizeof c.architecture, "Qwen2ForCausalLM");
    snprintf(c.dtype, sizeof c.dtype, "float32");
    c.vocab_size = V;
    c.hidden_size = 64;
    c.intermediate_size = 96;
    c.num_hidden_layers = L;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = 0;
    c.qkv_bias = 1;
    pn_model_init_write(&c, tmp_path("model"), 7, PN_F32);
    g_bb = pn_backbone_load(tmp_path("model"));
    PN_ASSERT(g_bb->lm_head != g_bb->embed);
    for (int64_t i = 0; i < (int64_t)V * g_bb->C; i++) g_bb->lm_head[i] *= 30.0f;
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/pn_eval_XXXXXX");
    PN_ASSERT(mkdtemp(g_root) != NULL);
    make_model();

    build_mc();
    write_mc(tmp_path("mc.jsonl"), g_mc, N_MC);
    build_prompts();
    gen_ex a1[N_GEN], a2[N_GEN];
    greedy_answers(a1);
    memcpy(a2, a1, sizeof a1);
    perturb(a2);
    write_gen(tmp_path("g1.jsonl"), a1, N_GEN);
    write_gen(tmp_path("g2.jsonl"), a2, N_GEN);
    pn_task_suite mc, g1, g2;
    pn_task_suite_load(&mc, tmp_path("mc.jsonl"), V);
    pn_task_suite_load(&g1, tmp_path("g1.jsonl"), V);
    pn_task_suite_load(&g2, tmp_path("g2.jsonl"), V);

    test_mc(&mc);
    test_gen(&g1, &g2, a1, a2);
    test_tasks_dir();
    test_bridge(&mc, &g1);
    CHECK(g_min_margin > MARGIN, "oracle decisions are robust: smallest margin %.3e", g_min_margin);
    printf("smallest oracle decision margin: %.3e\n", g_min_margin);

    FILE *f = fopen(tmp_path("bad.jsonl"), "w");
    fprintf(f, "{\"prompt_ids\": [3, 4], \"answer_ids\": [5]}\n{\"prompt_ids\": [3, 100], \"answer_ids\": [5]}\n");
    fclose(f);
    CHECK(expect_exit(bad_id, NULL, 2, "bad.jsonl:2"), "an id outside the model's vocab exits 2 naming FILE:LINE");
    CHECK(expect_exit(missing_task, NULL, 2, "nope.jsonl"), "a missing task file exits 2 naming it");

    pn_task_suite_free(&mc);
    pn_task_suite_free(&g1);
    pn_task_suite_free(&g2);
    pn_backbone_free(g_bb);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_root);
    return test_summary("test_evaluate");
}
