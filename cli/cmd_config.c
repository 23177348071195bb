// cmd_config.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_config(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas config: not implemented yet\n");
    return 1;
}
