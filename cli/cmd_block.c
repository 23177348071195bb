// cmd_block.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_block(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas block: not implemented yet\n");
    return 1;
}
