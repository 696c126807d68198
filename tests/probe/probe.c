/* Syscall probe for the seccomp integration tests (tests/tests/seccomp.rs). Built with
 * `gcc -static` at test time and copied into a busybox rootfs. Each argument names one probe;
 * the program prints "<probe> ok" or "<probe> errno=<n>" per argument. Every probe is harmless
 * even when it is allowed: invalid commands, a throwaway child, or the per-process keyring. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEY_SPEC_PROCESS_KEYRING -2
#define KEYCTL_GET_KEYRING_ID 0

static void report(const char *name, long r, int err) {
    if (r < 0)
        printf("%s errno=%d\n", name, err);
    else
        printf("%s ok\n", name);
    fflush(stdout);
}

/* clone with flags in a throwaway child that exits at once. */
static long clone_child(unsigned long flags) {
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}

/* fork a child that sleeps, PTRACE_ATTACH to it, then kill it. */
static long ptrace_own_child(void) {
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    long r = ptrace(PTRACE_ATTACH, c, 0, 0);
    int e = errno;
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    errno = e;
    return r;
}

static void *thread_main(void *arg) { return arg; }

/* pthread_create: glibc tries clone3 first and falls back to clone on ENOSYS. */
static long run_thread(void) {
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_main, NULL);
    if (e != 0) {
        errno = e;
        return -1;
    }
    pthread_join(t, NULL);
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *n = argv[i];
        long r;
        errno = 0;
        if (!strcmp(n, "keyctl"))
            r = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1);
        else if (!strcmp(n, "add_key"))
            r = syscall(SYS_add_key, "user", "skiff-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
        else if (!strcmp(n, "reboot")) /* an invalid command: EINVAL even with CAP_SYS_BOOT */
            r = syscall(SYS_reboot, 0xfee1dead, 672274793, 0x0badc0de, NULL);
        else if (!strcmp(n, "kexec_load")) /* invalid flags: EINVAL even with CAP_SYS_BOOT */
            r = syscall(SYS_kexec_load, 0, 0, NULL, 0xffff0000UL);
        else if (!strcmp(n, "bpf")) /* an invalid command */
            r = syscall(SYS_bpf, -1, NULL, 0);
        else if (!strcmp(n, "clone_newuser"))
            r = clone_child(CLONE_NEWUSER);
        else if (!strcmp(n, "clone_plain"))
            r = clone_child(0);
        else if (!strcmp(n, "clone3")) /* NULL args: EFAULT/EINVAL when clone3 is reachable */
            r = syscall(SYS_clone3, NULL, 0);
        else if (!strcmp(n, "unshare_user"))
            r = unshare(CLONE_NEWUSER);
        else if (!strcmp(n, "mount"))
            r = mount("none", "/tmp", "tmpfs", 0, NULL);
        else if (!strcmp(n, "personality_rie")) /* READ_IMPLIES_EXEC is outside the allowed set */
            r = personality(READ_IMPLIES_EXEC);
        else if (!strcmp(n, "personality_query"))
            r = personality(0xffffffff);
        else if (!strcmp(n, "socket_vsock"))
            r = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
        else if (!strcmp(n, "socket_unix"))
            r = socket(AF_UNIX, SOCK_STREAM, 0);
        else if (!strcmp(n, "thread"))
            r = run_thread();
        else if (!strcmp(n, "ptrace_child"))
            r = ptrace_own_child();
        else if (!strncmp(n, "ptrace:", 7))
            r = ptrace(PTRACE_ATTACH, atoi(n + 7), 0, 0);
        else {
            fprintf(stderr, "probe: unknown probe %s\n", n);
            return 2;
        }
        report(n, r, errno);
    }
    return 0;
}
