// cmd_info.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas info: not implemented yet\n");
    return 1;
}
