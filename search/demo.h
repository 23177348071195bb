// demo.h — the short CPU demo (`postnas demo`): load the configured model, print
// its summary, run a forward (and one backward) and report the loss. The full
// PostNAS pipeline (`postnas run`) replaces it as the README's main job.
#pragma once
#include "supernet/job_config.h"

// Runs the demo described by c; writes OUT_DIR/config.resolved.yaml and
// OUT_DIR/demo.json. Returns 0.
int pn_demo_run(const pn_job_config *c);
