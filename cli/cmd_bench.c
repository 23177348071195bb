// cmd_bench.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_bench(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas bench: not implemented yet\n");
    return 1;
}
