// block_chunk.h — which form of the linear-attention recurrence the zoo blocks use.
//
// Every recurrent block (gla, retnet, mamba2, rwkv7) runs its recurrence through
// the chunked op of kernels/ops.h with chunk size pn_blocks_chunk() for forward,
// backward and prefill; 0 selects the token-by-token (recurrent) form. Both
// compute the same function, so this is a speed knob, used by the blocks
// benchmark and by tests that compare the two forms. One-token decode steps always
// use the recurrent form. pn_block_cfg has no such field, hence a process-wide
// setting (not thread-safe to change while blocks run).
#pragma once

#define PN_BLOCKS_DEFAULT_CHUNK 64

// Current chunk size (default PN_BLOCKS_DEFAULT_CHUNK).
int pn_blocks_chunk(void);
// chunk >= 0; 0 = recurrent form.
void pn_blocks_set_chunk(int chunk);
