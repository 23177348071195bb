// backbone_summary.c — see backbone_summary.h. KV-cache bytes per token count K
// and V of every layer's pretrained attention, the number PostNAS shrinks.
#include "supernet/backbone_summary.h"

void pn_backbone_print_summary(const pn_backbone *bb, const char *dir, FILE *f) {
    const pn_hf_config *c = &bb->cfg;
    int64_t params = pn_backbone_numel(bb);
    int64_t kv = pn_backbone_kv_per_token(bb);
    fprintf(f, "model:               %s\n", dir);
    fprintf(f, "architecture:        %s (model_type %s)\n", c->architecture[0] ? c->architecture : "-",
            c->model_type);
    fprintf(f, "dtype:               %s\n", c->dtype[0] ? c->dtype : "-");
    fprintf(f, "layers:              %d\n", c->num_hidden_layers);
    fprintf(f, "hidden size:         %d\n", c->hidden_size);
    fprintf(f, "intermediate size:   %d\n", c->intermediate_size);
    fprintf(f, "attention heads:     %d (kv heads %d, head dim %d)\n", c->num_attention_heads,
            c->num_key_value_heads, c->head_dim);
    fprintf(f, "vocab size:          %d\n", c->vocab_size);
    fprintf(f, "rope theta:          %g\n", c->rope_theta);
    fprintf(f, "rms norm eps:        %g\n", c->rms_norm_eps);
    fprintf(f, "biases:              q/k/v %s, o %s\n", c->qkv_bias ? "yes" : "no", c->o_bias ? "yes" : "no");
    fprintf(f, "q/k norm:            %s\n", c->qk_norm ? "yes" : "no");
    fprintf(f, "tied embeddings:     %s\n", c->tie_word_embeddings ? "yes" : "no");
    fprintf(f, "parameters:          %lld (%.3f M)\n", (long long)params, (double)params / 1e6);
    fprintf(f, "kv cache per token:  %lld bytes bf16, %lld bytes f32\n", (long long)(kv * 2), (long long)(kv * 4));
}
