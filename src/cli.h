/*
 * cli.h - sub-commands that live outside main.c. Each takes the arguments
 * after its own name and returns the process exit status.
 */
#ifndef WN_CLI_H
#define WN_CLI_H

int wn_cmd_tokenizer(int argc, char **argv);
int wn_cmd_train(int argc, char **argv);
int wn_cmd_inspect(int argc, char **argv);
int wn_cmd_experiment(int argc, char **argv);
int wn_cmd_serve(int argc, char **argv);

#endif
