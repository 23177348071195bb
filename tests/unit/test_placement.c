// test_placement.c — placement beam search and its traces on synthetic scores.
//
// Every expected answer is derived independently of the code under test: by
// sorting additive weights (top-k), by exhaustive enumeration of all sets (done
// here, in the test), or by counting by hand the distinct sets a beam must visit.
// Scoring functions are deterministic tables built from a local splitmix64.
#define _POSIX_C_SOURCE 200809L
#include "search/placement.h"
#include "search/trace.h"
#include "test_util.h"
#include <dirent.h>
#include <hdf5.h>
#include <jansson.h>

// ---------------------------------------------------------------- synthetic scores

enum { MAXL = 72, MAXT = 3 };

typedef struct {
    int L;
    double w[MAXT][MAXL];     // additive weights per task
    double pair_bonus;        // added when both pair_a and pair_b are full (task 0)
    int pair_a, pair_b;
    double *table;            // (2^L) when set: score = table[mask] (task 0), overrides the rest
    long calls;
    uint8_t seen[MAXT][1 << 12];  // (task, full mask) seen by the callback (L ≤ 12)
    int repeats;              // callbacks for a (task, mask) already seen
    // SWA
    double swa_w[MAXL];
    uint8_t fixed_full[MAXL];
    double *swa_table;        // (2^L) over the SWA mask when set
    int swa_bad;              // callbacks with a wrong full mask or overlapping masks
} synth;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

static unsigned mask_bits(const uint8_t *m, int L) {
    unsigned b = 0;
    for (int i = 0; i < L; i++)
        if (m[i]) b |= 1u << i;
    return b;
}

static double synth_score(const uint8_t *full, int task, void *ctx) {
    synth *s = ctx;
    s->calls++;
    if (s->L <= 12) {  // masks of wider models do not fit the bit tables
        unsigned b = mask_bits(full, s->L);
        if (s->seen[task][b]) s->repeats++;
        s->seen[task][b] = 1;
        if (s->table) return s->table[b];
    }
    double v = 0;
    for (int i = 0; i < s->L; i++)
        if (full[i]) v += s->w[task][i];
    if (task == 0 && full[s->pair_a] && full[s->pair_b]) v += s->pair_bonus;
    return v;
}

static double synth_swa_score(const uint8_t *full, const uint8_t *swa, int task, void *ctx) {
    synth *s = ctx;
    s->calls++;
    for (int i = 0; i < s->L; i++) {
        if ((full[i] != 0) != (s->fixed_full[i] != 0)) s->swa_bad++;
        if (full[i] && swa[i]) s->swa_bad++;
    }
    if (s->swa_table) return s->swa_table[mask_bits(swa, s->L)];
    double v = 0;
    for (int i = 0; i < s->L; i++) v += full[i] ? s->w[task][i] : swa[i] ? s->swa_w[i] : 0.0;
    return v;
}

static int popcount(unsigned x) {
    int c = 0;
    for (; x; x &= x - 1) c++;
    return c;
}

static unsigned members_bits(const int *m, int n) {
    unsigned b = 0;
    for (int i = 0; i < n; i++) b |= 1u << m[i];
    return b;
}

// Structural invariants of a result: per size ≤ w entries, ranks 0.., scores
// non-increasing, members sorted, distinct sets, no member outside `allowed`.
static void check_structure(const pn_beam_result *r, unsigned allowed, const char *what) {
    int bad = 0;
    for (int k = 1; k <= r->k_done; k++) {
        int n = 0;
        unsigned seen_sets[4096];
        double prev = INFINITY;
        for (int i = 0; i < r->n_entries; i++) {
            const pn_beam_entry *e = &r->entries[i];
            if (e->size != k) continue;
            if (e->rank != n) bad++;
            if (e->score > prev) bad++;
            prev = e->score;
            for (int j = 1; j < k; j++)
                if (e->members[j] <= e->members[j - 1]) bad++;
            unsigned b = members_bits(e->members, k);
            if ((b & ~allowed) != 0) bad++;
            for (int j = 0; j < n; j++)
                if (seen_sets[j] == b) bad++;
            if (n < 4096) seen_sets[n] = b;
            n++;
        }
        if (n < 1 || n > r->width) bad++;
    }
    CHECK(bad == 0, "%s: %d structural violations in the trace", what, bad);
}

// ---------------------------------------------------------------- (a) additive → top-k

static void test_additive_topk(void) {
    uint64_t seed = 11;
    synth s = {.L = 12, .pair_a = 0, .pair_b = 1};
    // distinct weights: a shuffled 0..L-1 scaled, plus a small per-layer offset
    int perm[12];
    for (int i = 0; i < 12; i++) perm[i] = i;
    for (int i = 11; i > 0; i--) {
        int j = (int)(splitmix(&seed) % (uint64_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int i = 0; i < 12; i++) s.w[0][i] = 0.25 * perm[i] - 1.0 + 0.001 * unif(&seed);
    // top-k by sorting weights (independent of the search)
    int order[12];
    for (int i = 0; i < 12; i++) order[i] = i;
    for (int i = 0; i < 12; i++)
        for (int j = i + 1; j < 12; j++)
            if (s.w[0][order[j]] > s.w[0][order[i]]) {
                int tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
    int widths[2] = {1, 4};
    for (int wi = 0; wi < 2; wi++) {
        pn_placement p;
        pn_placement_init(&p, 12, 1, synth_score, NULL, &s);
        pn_beam_result r;
        int task = 0;
        pn_placement_beam(&p, &task, 1, widths[wi], 6, "task:a", &r);
        CHECK(r.k_done == 6, "additive w=%d: k_done %d, want 6", widths[wi], r.k_done);
        int wrong = 0;
        double max_dev = 0;
        for (int k = 1; k <= 6; k++) {
            const pn_beam_entry *e = pn_beam_best(&r, k);
            unsigned want = members_bits(order, k);
            double want_score = 0;
            for (int j = 0; j < k; j++) want_score += s.w[0][order[j]];
            if (!e || members_bits(e->members, e->size) != want) wrong++;
            if (e) max_dev = fmax(max_dev, fabs(e->score - want_score));
        }
        CHECK(wrong == 0, "additive w=%d: %d sizes where the best set is not the top-k layers", widths[wi], wrong);
        CHECK(max_dev < 1e-12, "additive w=%d: best score deviates from the sum of top-k weights by %.3g", widths[wi],
              max_dev);
        check_structure(&r, 0xfffu, widths[wi] == 1 ? "additive w=1" : "additive w=4");
        printf("additive top-k, w=%d: 6/6 sizes correct=%s, max |score - sum top-k| = %.3g, calls %ld\n", widths[wi],
               wrong ? "no" : "yes", max_dev, r.n_calls);
        pn_beam_result_free(&r);
        pn_placement_free(&p);
    }
}

// ---------------------------------------------------------------- (b) interaction: greedy fails

static void test_interaction(void) {
    // Layer 0 is the best single layer, but layers 1 and 2 together carry a bonus:
    // S({1,2}) = 0.9 + 0.8 + 1.0 = 2.7 > S({0,1}) = 1.9 (the best pair containing 0).
    synth s = {.L = 6, .pair_a = 1, .pair_b = 2, .pair_bonus = 1.0};
    double w[6] = {1.0, 0.9, 0.8, 0.1, 0.05, 0.02};
    memcpy(s.w[0], w, sizeof w);
    // exhaustive optimum of size 2 (in the test)
    uint8_t m[6];
    double best = -INFINITY;
    unsigned best_b = 0;
    int n_best = 0;
    for (unsigned b = 0; b < 64; b++) {
        if (popcount(b) != 2) continue;
        for (int i = 0; i < 6; i++) m[i] = (b >> i) & 1;
        double v = synth_score(m, 0, &s);
        if (v > best + 1e-12) {
            best = v;
            best_b = b;
            n_best = 1;
        } else if (fabs(v - best) <= 1e-12) {
            n_best++;
        }
    }
    CHECK(best_b == 0x6u && n_best == 1, "exhaustive optimum of size 2 should be the unique {1,2}, got mask %#x (%d ties)",
          best_b, n_best);
    memset(s.seen, 0, sizeof s.seen);
    int task = 0;
    pn_placement p;
    pn_placement_init(&p, 6, 1, synth_score, NULL, &s);
    pn_beam_result g, b4;
    pn_placement_beam(&p, &task, 1, 1, 2, "greedy", &g);
    pn_placement_beam(&p, &task, 1, 4, 2, "beam4", &b4);
    const pn_beam_entry *eg = pn_beam_best(&g, 2), *e4 = pn_beam_best(&b4, 2);
    unsigned gb = eg ? members_bits(eg->members, 2) : 0, b4b = e4 ? members_bits(e4->members, 2) : 0;
    CHECK(gb != best_b && gb == 0x3u, "greedy (w=1) should end in {0,1}, got mask %#x", gb);
    CHECK(b4b == best_b, "w=4 should find the optimum {1,2}, got mask %#x", b4b);
    CHECK(e4 && fabs(e4->score - best) < 1e-12, "w=4 best score %.17g, exhaustive %.17g", e4 ? e4->score : NAN, best);
    printf("interaction: exhaustive best {1,2} = %.3f; greedy -> {%d,%d} = %.3f; w=4 -> {%d,%d} = %.3f\n", best,
           eg ? eg->members[0] : -1, eg ? eg->members[1] : -1, eg ? eg->score : NAN, e4 ? e4->members[0] : -1,
           e4 ? e4->members[1] : -1, e4 ? e4->score : NAN);
    pn_beam_result_free(&g);
    pn_beam_result_free(&b4);
    pn_placement_free(&p);
}

// ---------------------------------------------------------------- (c) vs exhaustive

static void test_exhaustive_random(void) {
    enum { L = 8, KMAX = 3, N_INST = 25 };
    uint64_t seed = 2024;
    double table[1 << L];
    int mismatches = 0, greedy_suboptimal = 0;
    double max_gap = 0;
    for (int inst = 0; inst < N_INST; inst++) {
        for (int b = 0; b < (1 << L); b++) table[b] = unif(&seed) * 2.0 - 1.0;
        synth s = {.L = L, .table = table};
        pn_placement p;
        pn_placement_init(&p, L, 1, synth_score, NULL, &s);
        int task = 0;
        pn_beam_result r, g;
        pn_placement_beam(&p, &task, 1, 56 /* = C(8,3) ≥ C(8,k) for every k ≤ 3 */, KMAX, "wide", &r);
        pn_placement_beam(&p, &task, 1, 1, KMAX, "greedy", &g);
        for (int k = 1; k <= KMAX; k++) {
            double best = -INFINITY;
            unsigned best_b = 0;
            for (unsigned b = 0; b < (1u << L); b++)
                if (popcount(b) == k && table[b] > best) {
                    best = table[b];
                    best_b = b;
                }
            const pn_beam_entry *e = pn_beam_best(&r, k);
            if (!e || members_bits(e->members, k) != best_b || e->score != best) mismatches++;
            const pn_beam_entry *eg = pn_beam_best(&g, k);
            if (eg && eg->score < best) {
                greedy_suboptimal++;
                max_gap = fmax(max_gap, best - eg->score);
            }
        }
        check_structure(&r, 0xffu, "exhaustive wide beam");
        pn_beam_result_free(&r);
        pn_beam_result_free(&g);
        pn_placement_free(&p);
    }
    CHECK(mismatches == 0, "beam with w=56 missed the exhaustive optimum in %d of %d (instance, k) cases", mismatches,
          N_INST * KMAX);
    // not a requirement of the search, but the instances must be hard enough to mean something
    CHECK(greedy_suboptimal > 0, "random instances never defeat greedy: the comparison is too easy");
    printf("exhaustive: %d instances x k=1..3: w=56 mismatches %d; greedy suboptimal in %d cases (max gap %.3f)\n",
           N_INST, mismatches, greedy_suboptimal, max_gap);
}

// ---------------------------------------------------------------- (d) memoisation

static void test_memo(void) {
    synth s = {.L = 8};
    double w[8] = {0.8, 0.1, 0.7, 0.2, 0.3, 0.05, 0.6, 0.4};  // a=0, b=2, c=6
    memcpy(s.w[0], w, sizeof w);
    pn_placement p;
    pn_placement_init(&p, 8, 1, synth_score, NULL, &s);
    int task = 0;
    pn_beam_result r;
    pn_placement_beam(&p, &task, 1, 2, 3, "memo", &r);
    // By hand: base (empty set) 1; size 1: 8 singles; size 2: {a,x} (7) ∪ {b,x} (7)
    // share {a,b} → 13; beams {a,b},{a,c}; size 3: 6 + 6 sharing {a,b,c} → 11. Total 33.
    int distinct = 0;
    for (int b = 0; b < 256; b++) distinct += s.seen[0][b];
    CHECK(s.calls == 33, "memo: callback invoked %ld times, want 33 distinct sets", s.calls);
    CHECK(s.repeats == 0, "memo: %d callbacks for a set already scored", s.repeats);
    CHECK(p.n_calls == s.calls && r.n_calls == s.calls, "memo: counters %ld / %ld vs callback count %ld", p.n_calls,
          r.n_calls, s.calls);
    CHECK(distinct == 33, "memo: %d distinct sets seen", distinct);
    // candidates are deduplicated before scoring, so one search requests each set once
    CHECK(r.n_lookups == r.n_calls, "memo: lookups %ld vs calls %ld in one search", r.n_lookups, r.n_calls);
    // the same search again costs nothing; importance adds only the all-attention set
    pn_beam_result r2;
    pn_placement_beam(&p, &task, 1, 2, 3, "memo again", &r2);
    CHECK(r2.n_calls == 0 && r2.n_lookups == 33 && s.calls == 33, "memo: repeated search made %ld calls (%ld lookups)",
          r2.n_calls, r2.n_lookups);
    pn_importance imp;
    pn_placement_importance(&p, &imp);
    CHECK(s.calls == 34 && s.repeats == 0, "memo: importance after the search made %ld new calls, want 1",
          s.calls - 33);
    double dev = 0;
    for (int i = 0; i < 8; i++) dev = fmax(dev, fabs(imp.single[i] - w[i]));
    CHECK(dev == 0 && imp.all_linear[0] == 0 && fabs(imp.all_attention[0] - 3.15) < 1e-12,
          "importance values wrong: max dev %.3g, all_linear %g, all_attention %.17g", dev, imp.all_linear[0],
          imp.all_attention[0]);
    printf("memo: beam w=2 k=3 on 8 layers: %d callback calls = %d distinct sets (by hand 33); repeated search 0 "
           "calls; +importance 1 call; total lookups %ld, repeats %d\n",
           (int)r.n_calls, distinct, p.n_lookups, s.repeats);
    pn_importance_free(&imp);
    pn_beam_result_free(&r);
    pn_beam_result_free(&r2);
    pn_placement_free(&p);

    // memo across many layers (more than one 64-bit word per mask) and a growing table
    synth big = {.L = 70};
    for (int i = 0; i < 70; i++) big.w[0][i] = 0.01 * i;
    pn_placement pb;
    pn_placement_init(&pb, 70, 1, synth_score, NULL, &big);
    pn_importance ib;
    pn_placement_importance(&pb, &ib);
    long first = pb.n_calls;
    double last = ib.single[69];
    pn_importance_free(&ib);
    pn_placement_importance(&pb, &ib);  // second pass: all memo hits
    CHECK(ib.single[69] == last && fabs(last - 0.69) < 1e-15, "memo with 70 layers: layer 69 scored %g", last);
    CHECK(first == 72 && pb.n_calls == 72, "memo with 70 layers: %ld then %ld calls, want 72 and 72", first,
          pb.n_calls);
    pn_importance_free(&ib);
    pn_placement_free(&pb);
}

// ---------------------------------------------------------------- combined objective

static void test_combined(void) {
    // task 0: accuracy-like (0..1), prefers layers 3 and 5; task 1: −NLL-like
    // (about −4..−2), prefers layer 1. Scales differ by ~5×, so the raw mean would
    // be dominated by task 1; the normalised mean weighs both.
    enum { L = 7 };
    synth s = {.L = L};
    double w0[L] = {0.01, 0.02, 0.03, 0.30, 0.02, 0.25, 0.01};
    double w1[L] = {0.10, 1.20, 0.05, 0.20, 0.15, 0.10, 0.05};
    memcpy(s.w[0], w0, sizeof w0);
    memcpy(s.w[1], w1, sizeof w1);
    // the all-linear baseline of task 1 is 0 in this additive model; shift is irrelevant to ranking
    pn_placement p;
    pn_placement_init(&p, L, 2, synth_score, NULL, &s);
    int tasks[2] = {0, 1};
    pn_beam_result r;
    pn_placement_beam(&p, tasks, 2, 35 /* = C(7,3) */, 3, "combined", &r);
    CHECK(r.normalised, "two-task search should use the normalised objective");
    uint8_t m[L], all[L], none[L] = {0};
    memset(all, 1, sizeof all);
    double lin[2], span[2];
    for (int t = 0; t < 2; t++) {
        lin[t] = synth_score(none, t, &s);
        span[t] = fabs(synth_score(all, t, &s) - lin[t]);
    }
    int wrong = 0;
    double dev = 0;
    for (int k = 1; k <= 3; k++) {
        double best = -INFINITY;
        unsigned best_b = 0;
        for (unsigned b = 0; b < (1u << L); b++) {
            if (popcount(b) != k) continue;
            for (int i = 0; i < L; i++) m[i] = (b >> i) & 1;
            double v = 0.5 * ((synth_score(m, 0, &s) - lin[0]) / span[0] + (synth_score(m, 1, &s) - lin[1]) / span[1]);
            if (v > best) {
                best = v;
                best_b = b;
            }
        }
        const pn_beam_entry *e = pn_beam_best(&r, k);
        if (!e || members_bits(e->members, k) != best_b) wrong++;
        if (e) dev = fmax(dev, fabs(e->score - best));
    }
    CHECK(wrong == 0, "combined: %d sizes differ from the exhaustive normalised optimum", wrong);
    CHECK(dev < 1e-12, "combined: objective deviates from the documented normalisation by %.3g", dev);
    CHECK(fabs(r.base_score) < 1e-15, "combined: all-linear objective should be 0, got %g", r.base_score);
    const pn_beam_entry *e2 = pn_beam_best(&r, 2);
    printf("combined: k=1..3 match the exhaustive normalised optimum (%d wrong, max dev %.3g); best pair {%d,%d}\n",
           wrong, dev, e2 ? e2->members[0] : -1, e2 ? e2->members[1] : -1);
    pn_beam_result_free(&r);
    pn_placement_free(&p);
}

// ---------------------------------------------------------------- (e) SWA placement

static void test_swa(void) {
    enum { L = 8 };
    synth s = {.L = L};
    // full attention fixed at {2,5}; SWA weights favour 2 and 5 most, which must never be chosen
    double sw[L] = {0.30, 0.10, 9.0, 0.50, 0.20, 9.0, 0.40, 0.05};
    memcpy(s.swa_w, sw, sizeof sw);
    for (int i = 0; i < L; i++) s.w[0][i] = 1.0;
    s.fixed_full[2] = s.fixed_full[5] = 1;
    pn_placement p;
    pn_placement_init(&p, L, 1, synth_score, synth_swa_score, &s);
    int task = 0;
    pn_beam_result r;
    pn_placement_swa(&p, s.fixed_full, &task, 1, 4, 4, "swa", &r);
    // top SWA layers among the free ones {0,1,3,4,6,7}, by weight: 3, 6, 0, 4
    const unsigned want[5] = {0, 1u << 3, (1u << 3) | (1u << 6), (1u << 3) | (1u << 6) | 1u,
                              (1u << 3) | (1u << 6) | 1u | (1u << 4)};
    int wrong = 0;
    for (int k = 1; k <= 4; k++) {
        const pn_beam_entry *e = pn_beam_best(&r, k);
        if (!e || members_bits(e->members, k) != want[k]) wrong++;
    }
    CHECK(wrong == 0, "swa: %d sizes differ from the top-k free layers", wrong);
    CHECK(s.swa_bad == 0, "swa: %d callbacks with a wrong full mask or overlapping masks", s.swa_bad);
    CHECK(r.n_fixed == 2 && r.fixed[0] == 2 && r.fixed[1] == 5, "swa: fixed set recorded wrong");
    CHECK(fabs(r.base_score - 2.0) < 1e-12, "swa: no-SWA base score %g, want 2", r.base_score);
    check_structure(&r, 0xffu & ~((1u << 2) | (1u << 5)), "swa");
    pn_beam_result_free(&r);

    // asking for more SWA layers than are free is clipped
    pn_placement_swa(&p, s.fixed_full, &task, 1, 2, 7, "swa clip", &r);
    CHECK(r.k_done == 6 && r.k_max == 7, "swa clip: k_done %d (want 6), k_max %d", r.k_done, r.k_max);
    const pn_beam_entry *e6 = pn_beam_best(&r, 6);
    CHECK(e6 && members_bits(e6->members, 6) == (0xffu & ~0x24u), "swa clip: size 6 should be every free layer");
    pn_beam_result_free(&r);
    pn_placement_free(&p);

    // random SWA tables against exhaustive enumeration over the 6 free layers
    uint64_t seed = 77;
    double table[1 << L];
    int mism = 0;
    for (int inst = 0; inst < 15; inst++) {
        for (int b = 0; b < (1 << L); b++) table[b] = unif(&seed);
        synth st = {.L = L, .swa_table = table};
        st.fixed_full[2] = st.fixed_full[5] = 1;
        pn_placement q;
        pn_placement_init(&q, L, 1, synth_score, synth_swa_score, &st);
        pn_placement_swa(&q, st.fixed_full, &task, 1, 20 /* = C(6,3) */, 3, "swa wide", &r);
        for (int k = 1; k <= 3; k++) {
            double best = -INFINITY;
            unsigned best_b = 0;
            for (unsigned b = 0; b < (1u << L); b++)
                if (popcount(b) == k && !(b & 0x24u) && table[b] > best) {
                    best = table[b];
                    best_b = b;
                }
            const pn_beam_entry *e = pn_beam_best(&r, k);
            if (!e || members_bits(e->members, k) != best_b) mism++;
        }
        CHECK(st.swa_bad == 0, "swa random: %d bad callbacks", st.swa_bad);
        pn_beam_result_free(&r);
        pn_placement_free(&q);
    }
    CHECK(mism == 0, "swa random: %d of 45 (instance, k) cases missed the exhaustive optimum", mism);
    printf("swa: top-k free layers correct (%d wrong); random exhaustive mismatches %d of 45\n", wrong, mism);
}

// ---------------------------------------------------------------- (f) traces

static int count_tmp_files(const char *dir, int *n_files) {
    DIR *d = opendir(dir);
    int tmp = 0;
    *n_files = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        (*n_files)++;
        if (strstr(e->d_name, ".tmp")) tmp++;
    }
    closedir(d);
    return tmp;
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4200];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(dir);
}

static int json_members_equal(json_t *a, const int *m, int n) {
    if (!json_is_array(a) || (int)json_array_size(a) != n) return 0;
    for (int i = 0; i < n; i++)
        if (json_integer_value(json_array_get(a, (size_t)i)) != m[i]) return 0;
    return 1;
}

static void test_traces(void) {
    enum { L = 6, T = 2 };
    synth s = {.L = L, .pair_a = 1, .pair_b = 2, .pair_bonus = 1.0};
    double w0[L] = {1.0, 0.9, 0.8, 0.1, 0.05, 0.02};
    double w1[L] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    memcpy(s.w[0], w0, sizeof w0);
    memcpy(s.w[1], w1, sizeof w1);
    double sw[L] = {0.3, 0.2, 0.1, 0.6, 0.5, 0.4};
    memcpy(s.swa_w, sw, sizeof sw);
    pn_placement p;
    pn_placement_init(&p, L, T, synth_score, synth_swa_score, &s);
    pn_importance imp;
    pn_placement_importance(&p, &imp);
    pn_beam_result r0, r1, rc, rs;
    int t0 = 0, t1 = 1, both[2] = {0, 1};
    pn_placement_beam(&p, &t0, 1, 4, 3, "task:mc", &r0);
    pn_placement_beam(&p, &t1, 1, 4, 3, "task:gen", &r1);
    pn_placement_beam(&p, both, 2, 4, 3, "combined", &rc);
    const pn_beam_entry *chosen = pn_beam_best(&rc, 2);
    PN_ASSERT(chosen != NULL);
    uint8_t full[L] = {0};
    for (int i = 0; i < chosen->size; i++) full[chosen->members[i]] = 1;
    memcpy(s.fixed_full, full, sizeof full);
    pn_placement_swa(&p, full, &t0, 1, 4, 2, "swa", &rs);

    const char *names[T] = {"mc", "gen"};
    pn_placement_trace tr;
    pn_placement_trace_init(&tr, &p, names);
    const pn_beam_result *searches[3] = {&r0, &r1, &rc};
    tr.importance = &imp;
    tr.searches = searches;
    tr.n_searches = 3;
    tr.swa = &rs;
    tr.chosen_search = 2;
    tr.chosen_k = 2;

    char dir[] = "/tmp/pn_test_placement_XXXXXX";
    PN_ASSERT(mkdtemp(dir) != NULL);
    char jpath[256], hpath[256];
    snprintf(jpath, sizeof jpath, "%s/trace.json", dir);
    snprintf(hpath, sizeof hpath, "%s/trace.h5", dir);
    pn_placement_trace_write_json(&tr, jpath);
    pn_placement_trace_write_h5(&tr, hpath);
    int n_files = 0, n_tmp = count_tmp_files(dir, &n_files);
    CHECK(n_tmp == 0 && n_files == 2, "traces: %d files, %d temp files left (want 2, 0)", n_files, n_tmp);

    // ---- JSON back
    json_error_t err;
    json_t *root = json_load_file(jpath, 0, &err);
    CHECK(root != NULL, "trace.json does not parse: %s at line %d", err.text, err.line);
    if (root) {
        CHECK(json_integer_value(json_object_get(root, "n_layers")) == L, "json n_layers");
        json_t *ch = json_object_get(root, "chosen");
        CHECK(json_members_equal(json_object_get(ch, "members"), chosen->members, chosen->size) &&
                  strcmp(json_string_value(json_object_get(ch, "search")), "combined") == 0,
              "json chosen placement differs");
        json_t *im = json_object_get(root, "importance");
        double dev = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < L; i++)
                dev = fmax(dev, fabs(json_real_value(json_array_get(json_array_get(im, (size_t)t), (size_t)i)) -
                                     (s.w[t][i])));
        CHECK(dev == 0, "json importance differs from the synthetic single-layer scores by %.3g", dev);
        json_t *ss = json_object_get(root, "searches");
        CHECK(json_array_size(ss) == 3, "json: %zu searches", json_array_size(ss));
        int bad = 0;
        for (int si = 0; si < 3; si++) {
            json_t *best = json_object_get(json_array_get(ss, (size_t)si), "best");
            for (int k = 1; k <= 3; k++) {
                const pn_beam_entry *e = pn_beam_best(searches[si], k);
                json_t *bk = json_array_get(best, (size_t)(k - 1));
                if (!json_members_equal(json_object_get(bk, "members"), e->members, k)) bad++;
            }
            json_t *beams = json_object_get(json_array_get(ss, (size_t)si), "beams");
            if ((int)json_array_size(beams) != searches[si]->n_entries) bad++;
        }
        CHECK(bad == 0, "json: %d best sets / beam counts differ", bad);
        // the task-0 search recorded by the beam is the interaction optimum {1,2} at k=2
        json_t *b2 = json_array_get(json_object_get(json_array_get(ss, 0), "best"), 1);
        int want12[2] = {1, 2};
        CHECK(json_members_equal(json_object_get(b2, "members"), want12, 2), "json: task mc best pair is not {1,2}");
        json_t *swa = json_object_get(root, "swa");
        const pn_beam_entry *sb = pn_beam_best(&rs, 2);
        CHECK(json_members_equal(json_object_get(json_array_get(json_object_get(swa, "best"), 1), "members"),
                                 sb->members, 2) &&
                  json_members_equal(json_object_get(swa, "fixed"), rs.fixed, rs.n_fixed),
              "json: swa placement differs");
        CHECK(json_integer_value(json_object_get(root, "score_calls")) == p.n_calls, "json: score_calls");
        json_decref(root);
    }

    // ---- HDF5 back (C API)
    hid_t f = H5Fopen(hpath, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "trace.h5 does not open");
    if (f >= 0) {
        double im[T * L];
        hid_t d = H5Dopen2(f, "importance", H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[2] = {0, 0};
        H5Sget_simple_extent_dims(sp, dims, NULL);
        CHECK(dims[0] == T && dims[1] == L, "h5 importance shape (%llu, %llu)", (unsigned long long)dims[0],
              (unsigned long long)dims[1]);
        CHECK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, im) >= 0, "h5 importance read");
        double dev = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < L; i++) dev = fmax(dev, fabs(im[t * L + i] - s.w[t][i]));
        CHECK(dev == 0, "h5 importance differs by %.3g", dev);
        // task names attribute (variable-length strings)
        hid_t a = H5Aopen(d, "task_names", H5P_DEFAULT);
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        H5Tset_cset(st, H5T_CSET_UTF8);
        char *rn[T] = {0};
        CHECK(a >= 0 && H5Aread(a, st, rn) >= 0 && rn[0] && rn[1] && strcmp(rn[0], "mc") == 0 &&
                  strcmp(rn[1], "gen") == 0,
              "h5 task_names attribute");
        hid_t asp = H5Aget_space(a);
        H5Dvlen_reclaim(st, asp, H5P_DEFAULT, rn);
        H5Sclose(asp);
        H5Tclose(st);
        H5Aclose(a);
        H5Sclose(sp);
        H5Dclose(d);

        int ch[8] = {0};
        d = H5Dopen2(f, "chosen", H5P_DEFAULT);
        CHECK(d >= 0 && H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ch) >= 0 &&
                  ch[0] == chosen->members[0] && ch[1] == chosen->members[1],
              "h5 chosen differs");
        H5Dclose(d);
        int bm[9];
        d = H5Dopen2(f, "searches/00/best_members", H5P_DEFAULT);
        CHECK(d >= 0 && H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bm) >= 0 && bm[3] == 1 &&
                  bm[4] == 2 && bm[5] == -1,
              "h5 searches/00 best pair should be {1,2} padded with -1: got %d %d %d", bm[3], bm[4], bm[5]);
        H5Dclose(d);
        int sm[16];
        d = H5Dopen2(f, "swa/size_2/members", H5P_DEFAULT);
        const pn_beam_entry *sb = pn_beam_best(&rs, 2);
        CHECK(d >= 0 && H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, sm) >= 0 &&
                  sm[0] == sb->members[0] && sm[1] == sb->members[1],
              "h5 swa/size_2 first row differs");
        H5Dclose(d);
        H5Fclose(f);
    }
    printf("traces: json + h5 written (%d files, %d temp left), chosen {%d,%d}, swa best pair {%d,%d}, calls %ld\n",
           n_files, n_tmp, chosen->members[0], chosen->members[1], pn_beam_best(&rs, 2)->members[0],
           pn_beam_best(&rs, 2)->members[1], p.n_calls);
    if (getenv("PN_KEEP_TRACE")) {
        // PN_KEEP_TRACE=PREFIX keeps PREFIX.json and PREFIX.h5 (to check the plot script and h5py by hand)
        char keep[4096];
        snprintf(keep, sizeof keep, "%s.json", getenv("PN_KEEP_TRACE"));
        pn_placement_trace_write_json(&tr, keep);
        snprintf(keep, sizeof keep, "%s.h5", getenv("PN_KEEP_TRACE"));
        pn_placement_trace_write_h5(&tr, keep);
    }
    rm_dir(dir);
    pn_beam_result_free(&r0);
    pn_beam_result_free(&r1);
    pn_beam_result_free(&rc);
    pn_beam_result_free(&rs);
    pn_importance_free(&imp);
    pn_placement_free(&p);
}

// ---------------------------------------------------------------- bad input

static synth g_bad = {.L = 4};
static void run_width0(void *arg) {
    pn_placement p;
    pn_placement_init(&p, 4, 1, synth_score, NULL, &g_bad);
    pn_beam_result r;
    int t = 0;
    pn_placement_beam(&p, &t, 1, 0, 2, "x", &r);
}
static void run_kmax_big(void *arg) {
    pn_placement p;
    pn_placement_init(&p, 4, 1, synth_score, NULL, &g_bad);
    pn_beam_result r;
    int t = 0;
    pn_placement_beam(&p, &t, 1, 4, 5, "x", &r);
}
static void run_bad_path(void *arg) {
    pn_placement p;
    pn_placement_init(&p, 4, 1, synth_score, NULL, &g_bad);
    pn_placement_trace tr;
    pn_placement_trace_init(&tr, &p, NULL);
    if (arg)
        pn_placement_trace_write_h5(&tr, "/nonexistent-dir-pn/trace.h5");
    else
        pn_placement_trace_write_json(&tr, "/nonexistent-dir-pn/trace.json");
}

static void test_bad_input(void) {
    CHECK(expect_exit(run_width0, NULL, 2, "search.beam_width"), "beam width 0 should exit 2 naming the key");
    CHECK(expect_exit(run_kmax_big, NULL, 2, "search.k_max"), "k_max > n_layers should exit 2 naming the key");
    CHECK(expect_exit(run_bad_path, NULL, 2, "/nonexistent-dir-pn/trace.json"), "unwritable json path should exit 2");
    CHECK(expect_exit(run_bad_path, (void *)1, 2, "/nonexistent-dir-pn/trace.h5"), "unwritable h5 path should exit 2");
}

int main(void) {
    test_additive_topk();
    test_interaction();
    test_exhaustive_random();
    test_memo();
    test_combined();
    test_swa();
    test_traces();
    test_bad_input();
    return test_summary("test_placement");
}
