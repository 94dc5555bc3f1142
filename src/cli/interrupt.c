/*
 * interrupt.c - SIGINT/SIGTERM for the commands that write files
 * (calibrate, convert, analyze --svg): the handler only records the signal;
 * the long loops and the atomic writers (lk_file_atomic_*, given the flag
 * as their lk_stop_flag) see it, stop, remove their temporary file and the
 * command exits with 128 + the signal number, leaving no partial output.
 *
 * The one exception to "no globals": a signal handler receives no context
 * pointer, so the flag it sets must be a file-scope volatile sig_atomic_t.
 * Nothing else is stored here.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli/cli.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t cli_stop_signal; /* 0, or the signal received */

/* Record the signal; async-signal-safe (one store). */
static void on_signal(int sig) { cli_stop_signal = sig; }

lk_stop_flag *cli_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* writes and reads resume; the loops poll the flag */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &cli_stop_signal;
}

int cli_interrupt_exit(const char *cmd, lk_stop_flag *stop) {
    fprintf(stderr, "\nloki %s: interrupted by signal %d (%s); no output written\n", cmd, (int)*stop,
            *stop == SIGINT ? "SIGINT" : *stop == SIGTERM ? "SIGTERM" : "?");
    return 128 + (int)*stop;
}
