// backbone_summary.h — the human-readable description of a loaded model
// (`postnas info`, the demo, reports).
#pragma once
#include <stdio.h>
#include "supernet/backbone.h"

void pn_backbone_print_summary(const pn_backbone *bb, const char *dir, FILE *f);
