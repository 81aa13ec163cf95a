/*
 * oscar-agent: runs the scripts of a warm container's calls, one at a time, as its children.
 *
 * Built static by the server (engine/runtimes/agent.py) and mounted read-only into warm
 * containers, where it runs as root under docker-init and listens on a Unix socket in a
 * directory only root may enter. A call costs a fork instead of an Engine API exec.
 *
 * Request: a 4-byte length (host order), then NUL-terminated fields: uid, gid, timeout in
 * milliseconds (0: none), work directory, script, then "NAME=value" variables.
 * Answer: frames of a type byte and a 4-byte length: 'O' output (stdout and stderr, as they
 * come), then one 'X' with the wait status (4 bytes) and whether the timeout killed it (1 byte).
 *
 * Once the script has ended (or timed out, or the server hung up), every other process of the
 * container but docker-init and the agent is killed (kill(-1)), and /tmp and /dev/shm are
 * emptied, before the 'X' frame: nothing of one call is there for the next.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST (16u << 20)
#define MAX_FIELDS 4096

static int write_full(int fd, const void *data, size_t size) {
    const char *at = data;
    while (size > 0) {
        ssize_t done = write(fd, at, size);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return -1;
        at += done;
        size -= (size_t)done;
    }
    return 0;
}

static int read_full(int fd, void *data, size_t size) {
    char *at = data;
    while (size > 0) {
        ssize_t done = read(fd, at, size);
        if (done < 0 && errno == EINTR) continue;
        if (done <= 0) return -1;
        at += done;
        size -= (size_t)done;
    }
    return 0;
}

static int send_frame(int fd, char type, const void *data, uint32_t size) {
    char header[5];
    header[0] = type;
    memcpy(header + 1, &size, 4);
    if (write_full(fd, header, 5) < 0) return -1;
    return size ? write_full(fd, data, size) : 0;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    if (ftw->level == 0) return 0; /* the directory itself stays */
    if (flag == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

static void empty_directory(const char *path) {
    nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Every process of the container but docker-init (1) and this one. */
static void kill_the_rest(void) {
    kill(-1, SIGKILL);
}

static void run_script(char **fields, int count, int output) {
    uid_t uid = (uid_t)strtoul(fields[0], NULL, 10);
    gid_t gid = (gid_t)strtoul(fields[1], NULL, 10);
    setsid();
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(output, 1);
    dup2(output, 2);
    signal(SIGPIPE, SIG_DFL);
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        dprintf(2, "oscar-agent: cannot become %s:%s: %s\n", fields[0], fields[1], strerror(errno));
        _exit(126);
    }
    if (chdir(fields[3]) < 0) {
        dprintf(2, "oscar-agent: cannot enter %s: %s\n", fields[3], strerror(errno));
        _exit(126);
    }
    setenv("HOME", "/tmp", 1);
    for (int i = 5; i < count; i++) putenv(fields[i]);
    execl("/bin/sh", "sh", fields[4], (char *)NULL);
    dprintf(2, "oscar-agent: cannot run /bin/sh: %s\n", strerror(errno));
    _exit(127);
}

static void handle(int connection) {
    uint32_t size;
    if (read_full(connection, &size, 4) < 0 || size == 0 || size > MAX_REQUEST) return;
    char *request = malloc(size + 1);
    if (request == NULL || read_full(connection, request, size) < 0) {
        free(request);
        return;
    }
    request[size] = '\0';
    char *fields[MAX_FIELDS];
    int count = 0;
    for (char *at = request; at < request + size && count < MAX_FIELDS; at += strlen(at) + 1)
        fields[count++] = at;
    if (count < 5) {
        free(request);
        return;
    }
    long long timeout = atoll(fields[2]);
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        free(request);
        return;
    }
    pid_t child = fork();
    if (child == 0) run_script(fields, count, pipe_fds[1]);
    close(pipe_fds[1]);
    int output = pipe_fds[0];
    int pidfd = child > 0 ? (int)syscall(SYS_pidfd_open, child, 0) : -1;
    long long deadline = timeout > 0 ? now_ms() + timeout : 0;
    int status = 0, ended = child < 0, timed_out = 0, hung_up = 0;
    if (child < 0) status = 127 << 8;
    char buffer[65536];
    while (!ended) {
        struct pollfd watched[3] = {
            {output, output >= 0 ? POLLIN : 0, 0}, {connection, POLLIN, 0}, {pidfd, POLLIN, 0}};
        int wait_ms = pidfd >= 0 ? -1 : 10; /* without a pidfd, look for the end every 10 ms */
        if (deadline) {
            long long left = deadline - now_ms();
            if (left <= 0) {
                timed_out = 1;
                break;
            }
            if (wait_ms < 0 || left < wait_ms) wait_ms = (int)left;
        }
        if (poll(watched, 3, wait_ms) < 0 && errno != EINTR) break;
        if (output >= 0 && (watched[0].revents & (POLLIN | POLLHUP))) {
            ssize_t got = read(output, buffer, sizeof buffer);
            if (got > 0) {
                if (send_frame(connection, 'O', buffer, (uint32_t)got) < 0) hung_up = 1;
            } else if (got == 0) {
                close(output);
                output = -1;
            }
        }
        if (watched[1].revents) hung_up = 1; /* the server gave up on the call */
        if (hung_up) break;
        if (waitpid(child, &status, WNOHANG) == child) ended = 1;
    }
    kill_the_rest();
    if (!ended && child > 0) waitpid(child, &status, 0);
    /* Drain what the script's processes wrote before they died; their ends are closed now. */
    while (output >= 0) {
        struct pollfd watched = {output, POLLIN, 0};
        if (poll(&watched, 1, 2000) <= 0) break;
        ssize_t got = read(output, buffer, sizeof buffer);
        if (got <= 0) break;
        if (!hung_up && send_frame(connection, 'O', buffer, (uint32_t)got) < 0) hung_up = 1;
    }
    if (output >= 0) close(output);
    if (pidfd >= 0) close(pidfd);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    empty_directory("/tmp");
    empty_directory("/dev/shm");
    char end[5];
    int32_t raw = status;
    memcpy(end, &raw, 4);
    end[4] = (char)timed_out;
    if (!hung_up) send_frame(connection, 'X', end, 5);
    free(request);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: oscar-agent SOCKET\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof address.sun_path) return 2;
    strcpy(address.sun_path, argv[1]);
    unlink(argv[1]);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    umask(077);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 4) < 0) {
        perror("oscar-agent");
        return 1;
    }
    for (;;) {
        int connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (connection < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        handle(connection);
        close(connection);
    }
}
