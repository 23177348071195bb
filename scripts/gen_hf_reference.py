#!/usr/bin/env python3
"""gen_hf_reference.py — tiny random Llama and Qwen3 checkpoints with float64
reference outputs computed by Hugging Face transformers (an implementation
independent of postnas), for tests/unit/test_backbone.c.

Writes, for each model, DIR/config.json + DIR/model.safetensors
(save_pretrained) and DIR/reference.safetensors in the layout of
../shared/fixtures/qwen2-tiny/reference.safetensors: input_ids, logits,
hidden.i (= output_hidden_states[i]), loss (mean CE of logits[:, :-1] vs
input_ids[:, 1:]) and grad.NAME for every parameter, all F32 except input_ids.

  llama-tiny: LlamaForCausalLM, hidden 64, 4 heads / 2 KV heads, 2 layers, vocab 256,
              untied lm_head, attention_bias false, rope_theta 50000, eps 1e-5,
              weights stored as float16, config.json rewritten to the transformers
              4.x form (top-level rope_theta + rope_scaling null, torch_dtype).
  qwen3-tiny: Qwen3ForCausalLM, hidden 64, 4 heads of head_dim 32 (!= 64/4), 2 KV
              heads, q/k norm, tied embeddings, rope_theta 1e6, weights stored as
              bfloat16; config.json in the 5.x form save_pretrained writes.

  llama-bias-tiny: LlamaForCausalLM with attention_bias true (q/k/v/o biases, drawn
              at random so they matter), 3 layers, 4 heads / 1 KV head, tied
              embeddings, float32 weights, config.json in the 5.x form.

The reference runs model.double() on the stored (f16 / bf16) weights upcast to
float64, so it is exactly the model postnas loads. Usage:
  python3 scripts/gen_hf_reference.py [OUT_ROOT]      (default tests/data)
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file


def randomize_norms(model, gen):
    # Norm weights of 1 would hide a missing or misplaced norm; make them visible.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))


def reference(model_dir, ids, note):
    cls = transformers.AutoModelForCausalLM
    model = cls.from_pretrained(model_dir, attn_implementation="eager", dtype=None)
    model = model.double()
    rp = getattr(model.config, "rope_parameters", None) or {}
    print(f"  {model_dir}: loaded rope_theta {rp.get('rope_theta')}, head_dim {model.config.head_dim}")
    model.eval()
    out = model(input_ids=ids, labels=ids, output_hidden_states=True)
    out.loss.backward()
    t = {"input_ids": ids.clone().contiguous()}
    t["logits"] = out.logits.detach().float().contiguous()
    for i, h in enumerate(out.hidden_states):
        t[f"hidden.{i}"] = h.detach().float().contiguous()
    t["loss"] = out.loss.detach().float().reshape(1).contiguous()
    for name, p in model.named_parameters():
        t[f"grad.{name}"] = p.grad.detach().float().contiguous()
    meta = {
        "note": note,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    save_file(t, os.path.join(model_dir, "reference.safetensors"), metadata=meta)
    os.chmod(os.path.join(model_dir, "reference.safetensors"), 0o644)
    os.chmod(os.path.join(model_dir, "model.safetensors"), 0o644)
    print(f"wrote {model_dir}/reference.safetensors: {len(t)} tensors, loss {out.loss.item():.6f}")


def to_4x_form(config_path):
    with open(config_path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters", None) or {}
    c["rope_theta"] = rp.get("rope_theta", 10000.0)
    c["rope_scaling"] = None
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types", None)
    c.pop("head_dim", None)  # exercise the default hidden_size / num_attention_heads
    with open(config_path, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


NOTE = ("float64 forward/backward of HF transformers on these weights (upcast from the stored dtype); "
        "loss = mean CE of logits[:, :-1] against input_ids[:, 1:]; hidden.i = output_hidden_states[i]; "
        "grad.NAME = d loss / d NAME")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    gen = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)

    # ---- llama-tiny
    cfg = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False,
        max_position_embeddings=512, initializer_range=0.1,
        rope_parameters={"rope_theta": 50000.0, "rope_type": "default"}, bos_token_id=None, eos_token_id=None,
        pad_token_id=None)
    model = transformers.LlamaForCausalLM(cfg)
    randomize_norms(model, gen)
    d = os.path.join(root, "llama-tiny")
    model.half().save_pretrained(d)
    to_4x_form(os.path.join(d, "config.json"))
    ids = torch.randint(0, 256, (1, 80), generator=gen)
    reference(d, ids, NOTE)

    # ---- qwen3-tiny
    cfg = transformers.Qwen3Config(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
        max_position_embeddings=512, initializer_range=0.1,
        rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, use_sliding_window=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.Qwen3ForCausalLM(cfg)
    randomize_norms(model, gen)
    d = os.path.join(root, "qwen3-tiny")
    model.to(torch.bfloat16).save_pretrained(d)
    ids = torch.randint(0, 256, (2, 33), generator=gen)
    reference(d, ids, NOTE)

    # ---- llama-bias-tiny
    cfg = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=True,
        max_position_embeddings=512, initializer_range=0.1,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, bos_token_id=None, eos_token_id=None,
        pad_token_id=None)
    model = transformers.LlamaForCausalLM(cfg)
    randomize_norms(model, gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    d = os.path.join(root, "llama-bias-tiny")
    model.save_pretrained(d)
    ids = torch.randint(0, 256, (2, 29), generator=gen)
    reference(d, ids, NOTE)


if __name__ == "__main__":
    main()
