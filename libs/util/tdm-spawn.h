/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helper programs and child processes (spawn.c). Every wait is bounded:
 * nothing here blocks its caller, the event loop most of all, for longer
 * than the time it is given.
 */
#ifndef TDM_SPAWN_H
#define TDM_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tdm_spawn {
    int stdin_fd;           /* -1: /dev/null */
    int stdout_fd;          /* -1: inherited */
    int stderr_fd;          /* -1: inherited */
    /* The child's parent is init and it runs in a session of its own, so
     * that it outlives us (a guest's disk server, a restore process). It
     * starts only once it has been reparented: a program that asks for a
     * signal at its parent's death (PR_SET_PDEATHSIG, as Debian's nbdkit
     * does) then never gets one from us. */
    bool orphan;
};
void tdm_spawn_init(struct tdm_spawn *s);

/* Start argv (PATH searched). 0 with the pid in *pid_r, or -1 (err). */
int tdm_spawn(char *const argv[], const struct tdm_spawn *s, pid_t *pid_r,
              char *err, size_t errlen);
/* Run fn(arg) in a forked child, whose exit status is fn's return value
 * (0..255), through _exit (stdio buffers are not flushed). Standard
 * streams as in s; other descriptors are inherited, so
 * fn can use what it needs and close the rest. */
int tdm_fork_call(int (*fn)(void *arg), void *arg, const struct tdm_spawn *s,
                  pid_t *pid_r, char *err, size_t errlen);

/* Wait at most ms for our child pid to end: 0 with its wait status in
 * *status_r (may be NULL), or -1 if it still runs. */
int tdm_child_wait(pid_t pid, int ms, int *status_r);
/* End our child: SIGTERM, at most ms for it to go, then SIGKILL; reaped. */
void tdm_child_stop(pid_t pid, int ms);
/* A process that is not our child (an orphan, one an earlier tandemd left)
 * is gone: no such pid, or a zombie waiting for init. */
bool tdm_proc_gone(pid_t pid);
/* The same as tdm_child_stop, for a process that is not our child. */
void tdm_proc_stop(pid_t pid, int ms);

/* What a helper program (iptables, nbd-client) is given to finish. */
#define TDM_HELPER_TIMEOUT_MS 30000

/* Run argv to its end, for at most timeout_ms (killed then, and err says
 * so), stdin from /dev/null; its stdout into out (outlen bytes,
 * NUL-terminated; out may be NULL). Returns its exit status, with err set
 * to the first line of its stderr if not 0; -1 if it could not run, was
 * killed or timed out (err says why). */
int tdm_run(char *const argv[], int timeout_ms, char *out, size_t outlen,
            char *err, size_t errlen);

#endif
