// commands.h — one entry point per subcommand (cli/cmd_*.c). argv[0] is the subcommand.
#pragma once

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_op(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_init_model(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_ablate(int argc, char **argv);
int cmd_search(int argc, char **argv);
