/* pa-bench cp-decode / cp-prefill (cp_cli.c). */
#ifndef PA_BENCH_CP_CLI_H
#define PA_BENCH_CP_CLI_H

/* argv[1] is "cp-decode" or "cp-prefill"; execs the bench, returns only on
 * a usage error or when it cannot be started (exit status). */
int cp_cli_main(int argc, char **argv);

#endif
