// cmd_forward.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_forward(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas forward: not implemented yet\n");
    return 1;
}
