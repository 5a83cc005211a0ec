/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helper programs and child processes: iptables, nbd-client, nbdkit, the
 * Xen restore process. One way to start them, and only bounded waits.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tdm-spawn.h"
#include "tdm-util.h"

extern char **environ;

/* An orphan's intermediate child exits at once; this bounds the wait. */
#define MID_WAIT_MS 5000

void tdm_spawn_init(struct tdm_spawn *s)
{
    s->stdin_fd = s->stdout_fd = s->stderr_fd = -1;
    s->orphan = false;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* In a forked child: its standard streams, and no signal blocked. */
static void child_stdio(const struct tdm_spawn *s)
{
    int fds[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
    sigset_t none;

    if (fds[0] < 0)
        fds[0] = open("/dev/null", O_RDONLY);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && fds[i] != i && dup2(fds[i], i) < 0)
            _exit(126);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static _Noreturn void child_run(char *const argv[], int (*fn)(void *),
                                void *arg, const struct tdm_spawn *s)
{
    static const char msg[] = "tandemd: cannot run a helper program\n";

    child_stdio(s);
    if (fn)
        _exit(fn(arg) & 255);
    execvp(argv[0], argv);
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(127);
    _exit(127);
}

/* Fork an orphan (struct tdm_spawn's orphan): an intermediate child in a
 * session of its own forks it and exits; it waits to be reparented. */
static int start_orphan(char *const argv[], int (*fn)(void *), void *arg,
                        const struct tdm_spawn *s, pid_t *pid_r, char *err,
                        size_t errlen)
{
    int p[2], st;
    pid_t mid, pid = 0;
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) < 0)
        return tdm_errf(err, errlen, "pipe: %s", strerror(errno));
    mid = fork();
    if (mid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return tdm_errf(err, errlen, "fork: %s", strerror(e));
    }
    if (mid == 0) {
        pid_t me = getpid(), g;

        setsid();
        g = fork();
        if (g == 0) {
            close(p[0]);
            close(p[1]);
            while (getppid() == me)
                sleep_ms(1);
            child_run(argv, fn, arg, s);
        }
        if (write(p[1], &g, sizeof(g)) != (ssize_t)sizeof(g))
            _exit(1);
        _exit(g < 0 ? 1 : 0);
    }
    close(p[1]);
    if (tdm_child_wait(mid, MID_WAIT_MS, &st) < 0)
        tdm_child_stop(mid, 0);
    n = read(p[0], &pid, sizeof(pid));
    close(p[0]);
    if (n != (ssize_t)sizeof(pid) || pid <= 0)
        return tdm_errf(err, errlen, "could not start %s as an orphan",
                        argv ? argv[0] : "a child");
    *pid_r = pid;
    return 0;
}

int tdm_spawn(char *const argv[], const struct tdm_spawn *s, pid_t *pid_r,
              char *err, size_t errlen)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none;
    int fds[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd}, r;

    if (s->orphan)
        return start_orphan(argv, NULL, NULL, s, pid_r, err, errlen);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    if (fds[0] < 0)
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && fds[i] != i)
            posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    r = posix_spawnp(pid_r, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r)
        return tdm_errf(err, errlen, "cannot run %s: %s", argv[0],
                        strerror(r));
    return 0;
}

int tdm_fork_call(int (*fn)(void *arg), void *arg, const struct tdm_spawn *s,
                  pid_t *pid_r, char *err, size_t errlen)
{
    pid_t pid;

    if (s->orphan)
        return start_orphan(NULL, fn, arg, s, pid_r, err, errlen);
    pid = fork();
    if (pid < 0)
        return tdm_errf(err, errlen, "fork: %s", strerror(errno));
    if (pid == 0)
        child_run(NULL, fn, arg, s);
    *pid_r = pid;
    return 0;
}

int tdm_child_wait(pid_t pid, int ms, int *status_r)
{
    uint64_t end = tdm_now_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000;
    int st, nap = 1;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid) {
            if (status_r)
                *status_r = st;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -1;          /* not our child (any more) */
        if (tdm_now_ns() >= end)
            return -1;
        sleep_ms(nap);
        nap = TDM_MIN(nap * 2, 10);
    }
}

void tdm_child_stop(pid_t pid, int ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    if (tdm_child_wait(pid, ms, NULL) == 0)
        return;
    kill(pid, SIGKILL);
    /* SIGKILL cannot be refused; the reaping is only a matter of time */
    if (tdm_child_wait(pid, 5000, NULL) < 0)
        log_warnx("child %d did not end after SIGKILL", (int)pid);
}

bool tdm_proc_gone(pid_t pid)
{
    char p[64], buf[256], *rp;
    FILE *f;
    size_t n;

    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(p, "r")))
        return true;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');     /* "pid (comm) S ..." */
    return rp && rp[1] == ' ' && rp[2] == 'Z';
}

void tdm_proc_stop(pid_t pid, int ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < ms / 10 && !tdm_proc_gone(pid); i++)
        sleep_ms(10);
    if (!tdm_proc_gone(pid))
        kill(pid, SIGKILL);
}

int tdm_run(char *const argv[], int timeout_ms, char *out, size_t outlen,
            char *err, size_t errlen)
{
    struct tdm_spawn s;
    int opipe[2] = {-1, -1}, epipe[2] = {-1, -1};
    char ebuf[512];
    size_t olen = 0, elen = 0;
    uint64_t end = tdm_now_ns() + (uint64_t)timeout_ms * 1000000;
    pid_t pid = -1;
    int status, rc = -1;
    bool timed_out = false;
    struct pollfd pf[2];

    if (pipe2(opipe, O_CLOEXEC) < 0 || pipe2(epipe, O_CLOEXEC) < 0) {
        tdm_errf(err, errlen, "pipe: %s", strerror(errno));
        goto out;
    }
    tdm_spawn_init(&s);
    s.stdout_fd = opipe[1];
    s.stderr_fd = epipe[1];
    if (tdm_spawn(argv, &s, &pid, err, errlen) < 0) {
        pid = -1;
        goto out;
    }
    close(opipe[1]);
    close(epipe[1]);
    opipe[1] = epipe[1] = -1;
    /* Drain both pipes until both are closed, so a chatty child never
     * blocks on a full pipe; never past the deadline. */
    pf[0] = (struct pollfd){.fd = opipe[0], .events = POLLIN};
    pf[1] = (struct pollfd){.fd = epipe[0], .events = POLLIN};
    while (pf[0].fd >= 0 || pf[1].fd >= 0) {
        uint64_t now = tdm_now_ns();
        int r;

        if (now >= end) {
            timed_out = true;
            break;
        }
        r = poll(pf, 2, (int)((end - now) / 1000000) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        for (int i = 0; i < 2; i++) {
            char tmp[4096];
            ssize_t n;

            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(pf[i].fd, tmp, sizeof(tmp));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                pf[i].fd = -1;
                continue;
            }
            if (i == 0 && out && olen + 1 < outlen) {
                size_t k = TDM_MIN((size_t)n, outlen - 1 - olen);
                memcpy(out + olen, tmp, k);
                olen += k;
            } else if (i == 1 && elen + 1 < sizeof(ebuf)) {
                size_t k = TDM_MIN((size_t)n, sizeof(ebuf) - 1 - elen);
                memcpy(ebuf + elen, tmp, k);
                elen += k;
            }
        }
    }
    if (out)
        out[olen] = '\0';
    ebuf[elen] = '\0';
    if (timed_out || tdm_child_wait(pid, timed_out ? 0 :
                                    (int)TDM_MAX((int64_t)(end - tdm_now_ns()) /
                                                 1000000, 0) + 1,
                                    &status) < 0) {
        tdm_child_stop(pid, 0);
        tdm_errf(err, errlen, "%s did not finish within %d ms: killed",
                 argv[0], timeout_ms);
        goto out;
    }
    if (!WIFEXITED(status)) {
        tdm_errf(err, errlen, "%s killed by signal %d", argv[0],
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        goto out;
    }
    rc = WEXITSTATUS(status);
    if (rc != 0) {
        char *nl = strchr(ebuf, '\n');
        if (nl)
            *nl = '\0';
        tdm_errf(err, errlen, "%s exited with %d: %s", argv[0], rc,
                 ebuf[0] ? ebuf : "(no message)");
    }
out:
    for (int i = 0; i < 2; i++) {
        if (opipe[i] >= 0)
            close(opipe[i]);
        if (epipe[i] >= 0)
            close(epipe[i]);
    }
    return rc;
}
