// cmd_demo.c — placeholder, being written.
#include "commands.h"
#include <stdio.h>
int cmd_demo(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "postnas demo: not implemented yet\n");
    return 1;
}
