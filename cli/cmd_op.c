// cmd_op.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_op(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas op: not implemented yet\n");
    return 1;
}
