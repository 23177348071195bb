// synth.h — deterministic synthetic data: a training stream and three task suites.
//
// Small enough to train and search on a CPU, and built so each task probes one
// ability: (a) associative recall needs attention over the whole context (the
// task whose accuracy depends on where full attention stays), (b) arithmetic
// needs exact digit-level computation, (c) fact recall needs knowledge stored
// in the weights (the MC task). Everything is a pure function of the seed and
// the config: same inputs give byte-identical files.
//
// Token layout (vocab ids; sizes from the config, defaults in brackets):
//   0 PAD, 1 EOS, 2 SEP, 3 QUERY, 4 PLUS, 5 EQUALS, 6..7 reserved
//   8..17           digits 0..9
//   keys            n_keys [64] ids from 18
//   values          n_values [64] ids after the keys
//   entities        n_entities [48]
//   relations       n_relations [8]
//   objects         n_objects [32]
//   ... up to vocab_size [256] (the rest unused)
// Documents (each ends with EOS in the training stream):
//   recall:  k1 v1 k2 v2 .. kP vP SEP QUERY kq1 vq1 .. QUERY kqQ vqQ EOS
//            (P = kv_pairs distinct keys, values drawn with replacement, Q =
//            kv_queries distinct keys among the P). The task prompt stops after
//            the last QUERY kqQ; the answer is [vqQ].
//   math:    a PLUS b EQUALS c EOS, numbers as digit tokens, most significant
//            first, each of 1..max_digits digits. The task prompt ends with
//            EQUALS; the answer is c's digits then EOS (the model must stop).
//   copy:    s1 .. sn SEP s1 .. sn EOS, n ~ U{copy_min..copy_max} tokens drawn
//            from the key and value ids. Pure induction practice: every token
//            after SEP is predictable only by finding the same position in the
//            first half — the mechanism associative recall needs. Small models
//            trained without these documents stall on recall for thousands of
//            steps (the mechanism never forms); with 3 copy documents per
//            recall document a 4-layer model reaches > 90% recall in ~3k steps.
//   fact:    e r o EOS, o = KB[e][r]. The knowledge base maps every (entity,
//            relation) to an object, drawn once from the seed. The MC task has
//            context [e r] and n_choices single-token choices: the KB object and
//            distinct distractor objects, the answer at a random position.
// The training stream draws documents with probabilities proportional to
// mix_recall : mix_math : mix_facts : mix_copy and is cut at exactly train_tokens.
// Files: DIR/train.h5, DIR/valid.h5 (uint16 `tokens`, attrs eos_id, vocab_size),
// DIR/retrieval.jsonl, DIR/math.jsonl (generative, pre-tokenized),
// DIR/knowledge.jsonl (MC, pre-tokenized), DIR/synth.json (layout, sizes, KB).
#pragma once
#include "core/common.h"

enum { PN_SYN_PAD = 0, PN_SYN_EOS = 1, PN_SYN_SEP = 2, PN_SYN_QUERY = 3, PN_SYN_PLUS = 4, PN_SYN_EQUALS = 5 };
#define PN_SYN_DIGIT0 8
#define PN_SYN_FIRST_FREE 18

typedef struct {
    uint64_t train_tokens;  // [4,000,000]
    uint64_t valid_tokens;  // [200,000]
    int n_examples;         // per task suite [200]
    int vocab_size;         // [256]
    int n_keys, n_values;   // [64, 64]
    int n_entities, n_relations, n_objects;  // [48, 8, 32]
    int kv_pairs;           // key-value pairs per recall context [16]
    int kv_queries;         // queries per recall context [4]
    int max_digits;         // digits per operand, 1..9 [3]
    int n_choices;          // MC choices [4]
    double mix_recall, mix_math, mix_facts;  // document mix [1, 1, 1]
    double mix_copy;        // copy documents in the mix [3]
    int copy_min, copy_max; // copy document length n (first half) [8, 24]
} pn_synth_cfg;

// First id of each range, derived from the config.
typedef struct {
    int digit0, key0, value0, entity0, relation0, object0, end;  // end = first unused id
} pn_synth_layout;

void pn_synth_cfg_default(pn_synth_cfg *c);
// Exits 2 naming the field if the config is inconsistent (e.g. layout > vocab).
void pn_synth_cfg_check(const pn_synth_cfg *c);
pn_synth_layout pn_synth_layout_of(const pn_synth_cfg *c);
// Creates out_dir if needed; writes the files listed above (each atomically).
void pn_synth_generate(const char *out_dir, uint64_t seed, const pn_synth_cfg *cfg);
