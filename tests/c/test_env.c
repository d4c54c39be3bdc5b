/* test_env.c -- the POSIX env: buffered appends, reads, maps, directory
 * operations, the database lock (in-process and across processes), error
 * messages, and the broken-after-failed-fsync rule. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "status.h"
#include "testutil.h"

static weir_env *E;

static void path_in(char *out, const char *dir, const char *name) {
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static int is_cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

static void fill_pattern(char *p, size_t n, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) p[i] = (char)test_rng_next(&r);
}

TEST(write_sync_reopen_pread_mmap_round_trip) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "000001.log");
    env_writable *w;
    CHECK_OK(E->ops->new_writable(E, path, &w));
    CHECK(is_cloexec(w->fd));
    CHECK_OK(env_append(w, "hello ", 6));
    CHECK_OK(env_append(w, "", 0));
    CHECK_OK(env_append(w, "world", 5));
    CHECK_EQ_INT(w->size, 11);
    /* still in weir's buffer: not yet in the file */
    uint64_t sz = 99;
    CHECK_OK(E->ops->file_size(E, path, &sz));
    CHECK_EQ_INT(sz, 0);
    CHECK_OK(env_flush(w));
    CHECK_OK(E->ops->file_size(E, path, &sz));
    CHECK_EQ_INT(sz, 11);
    CHECK_OK(env_append(w, "!", 1));
    CHECK_OK(env_sync(w));
    CHECK_OK(E->ops->file_size(E, path, &sz));
    CHECK_EQ_INT(sz, 12);
    CHECK_OK(env_close_writable(w));

    env_readable *r;
    CHECK_OK(E->ops->open_readable(E, path, &r));
    CHECK(is_cloexec(r->fd));
    CHECK_EQ_INT(r->size, 12);
    char got[32];
    size_t n;
    CHECK_OK(E->ops->pread(r, 0, got, 12, &n));
    CHECK(n == 12 && memcmp(got, "hello world!", 12) == 0);
    CHECK_OK(E->ops->pread(r, 6, got, 5, &n));
    CHECK(n == 5 && memcmp(got, "world", 5) == 0);
    /* reads past the end are short, not errors */
    CHECK_OK(E->ops->pread(r, 10, got, 10, &n));
    CHECK(n == 2 && memcmp(got, "d!", 2) == 0);
    CHECK_OK(E->ops->pread(r, 12, got, 10, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(E->ops->pread(r, 1000000, got, 10, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(E->ops->pread(r, UINT64_MAX - 5, got, 10, &n));
    CHECK_EQ_INT(n, 0);
    CHECK_OK(E->ops->pread(r, 3, got, 0, &n));
    CHECK_EQ_INT(n, 0);

    env_mapping m;
    CHECK_OK(E->ops->mmap(r, &m));
    CHECK(m.base != NULL && m.len == 12);
    CHECK(memcmp(m.base, "hello world!", 12) == 0);
    E->ops->munmap(r, &m);
    CHECK(m.base == NULL && m.len == 0);
    E->ops->close_readable(r);
    E->ops->close_readable(NULL);

    /* an empty file maps to nothing */
    char empty[PATH_MAX];
    path_in(empty, dir, "empty");
    CHECK_OK(env_write_file_synced(E, empty, "", 0));
    CHECK_OK(E->ops->open_readable(E, empty, &r));
    CHECK_OK(E->ops->mmap(r, &m));
    CHECK(m.base == NULL && m.len == 0);
    E->ops->munmap(r, &m);
    E->ops->close_readable(r);

    /* new_writable truncates */
    CHECK_OK(E->ops->new_writable(E, path, &w));
    CHECK_OK(env_close_writable(w));
    CHECK_OK(E->ops->file_size(E, path, &sz));
    CHECK_EQ_INT(sz, 0);
    test_rmtree(dir);
}

TEST(large_and_odd_sized_appends_round_trip) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "big");
    const size_t sizes[] = {0, 1, ENV_WRITE_BUFFER - 1, 1, ENV_WRITE_BUFFER, ENV_WRITE_BUFFER + 1,
                            3, 1 << 20, 7, 2 * ENV_WRITE_BUFFER + 5, ENV_WRITE_BUFFER - 3, 100};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    char *src = malloc(total);
    CHECK(src != NULL);
    fill_pattern(src, total, 5);
    env_writable *w;
    CHECK_OK(E->ops->new_writable(E, path, &w));
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK_OK(env_append(w, src + off, sizes[i]));
        off += sizes[i];
        CHECK_EQ_INT(w->size, off);
        CHECK(w->buf_len <= w->buf_cap);
    }
    CHECK_OK(env_close_writable(w));
    buf got = BUF_INIT;
    CHECK_OK(env_read_file(E, path, &got));
    CHECK_EQ_INT(got.len, total);
    CHECK(memcmp(got.data, src, total) == 0);
    buf_free(&got);

    /* many small appends crossing the buffer boundary repeatedly */
    CHECK_OK(E->ops->new_writable(E, path, &w));
    test_rng r;
    test_rng_seed(&r, 8);
    off = 0;
    while (off < total) {
        size_t n = (size_t)test_rng_uniform(&r, 3000);
        if (n > total - off) n = total - off;
        CHECK_OK(env_append(w, src + off, n));
        off += n;
    }
    CHECK_OK(env_sync(w));
    CHECK_OK(env_close_writable(w));
    env_readable *rd;
    CHECK_OK(E->ops->open_readable(E, path, &rd));
    env_mapping m;
    CHECK_OK(E->ops->mmap(rd, &m));
    CHECK(m.len == total && memcmp(m.base, src, total) == 0);
    E->ops->munmap(rd, &m);
    E->ops->close_readable(rd);
    free(src);
    test_rmtree(dir);
}

TEST(read_file_and_write_file_synced) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "CURRENT");
    CHECK_OK(env_write_file_synced(E, path, "MANIFEST-000005\n", 16));
    buf b = BUF_INIT;
    CHECK(buf_append(&b, "junk", 4) == 0);
    CHECK_OK(env_read_file(E, path, &b));
    CHECK(b.len == 16 && memcmp(b.data, "MANIFEST-000005\n", 16) == 0);
    /* overwrite with shorter content */
    CHECK_OK(env_write_file_synced(E, path, "x", 1));
    CHECK_OK(env_read_file(E, path, &b));
    CHECK(b.len == 1 && b.data[0] == 'x');
    CHECK_OK(env_write_file_synced(E, path, "", 0));
    CHECK_OK(env_read_file(E, path, &b));
    CHECK_EQ_INT(b.len, 0);
    /* a file exactly 4096 bytes and one of 100 KiB */
    char *big = malloc(100 * 1024);
    CHECK(big != NULL);
    fill_pattern(big, 100 * 1024, 9);
    CHECK_OK(env_write_file_synced(E, path, big, 4096));
    CHECK_OK(env_read_file(E, path, &b));
    CHECK(b.len == 4096 && memcmp(b.data, big, 4096) == 0);
    CHECK_OK(env_write_file_synced(E, path, big, 100 * 1024));
    CHECK_OK(env_read_file(E, path, &b));
    CHECK(b.len == 100 * 1024 && memcmp(b.data, big, 100 * 1024) == 0);
    free(big);
    /* failures name the path */
    char missing[PATH_MAX];
    path_in(missing, dir, "nope/CURRENT");
    CHECK_STATUS(env_write_file_synced(E, missing, "x", 1), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), missing) != NULL);
    CHECK_STATUS(env_read_file(E, missing, &b), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), missing) != NULL);
    buf_free(&b);
    test_rmtree(dir);
}

TEST(open_missing_file_is_io_error_naming_path) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "000042.sst");
    env_readable *r = (env_readable *)1;
    CHECK_STATUS(E->ops->open_readable(E, path, &r), WEIR_IO_ERROR);
    CHECK(r == NULL);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    CHECK(strstr(weir_errmsg(), "No such file") != NULL);
    CHECK(!E->ops->file_exists(E, path));
    uint64_t sz;
    CHECK_STATUS(E->ops->file_size(E, path, &sz), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    CHECK_STATUS(E->ops->remove_file(E, path), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    test_rmtree(dir);
}

TEST(read_error_names_offset_and_path) {
    char dir[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    /* A directory opens for reading but pread fails with EISDIR. */
    env_readable *r;
    CHECK_OK(E->ops->open_readable(E, dir, &r));
    char b[8];
    size_t got = 7;
    CHECK_STATUS(E->ops->pread(r, 4096, b, sizeof b, &got), WEIR_IO_ERROR);
    CHECK_EQ_INT(got, 0);
    CHECK(strstr(weir_errmsg(), "offset 4096") != NULL);
    CHECK(strstr(weir_errmsg(), dir) != NULL);
    E->ops->close_readable(r);
    test_rmtree(dir);
}

TEST(list_dir_rename_link_truncate_remove) {
    char dir[PATH_MAX], a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], sub[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    env_dirent_list l;
    CHECK_OK(E->ops->list_dir(E, dir, &l));
    CHECK_EQ_INT(l.count, 0);
    env_dirent_list_free(&l);

    path_in(a, dir, "a");
    path_in(b, dir, "b");
    path_in(c, dir, "c");
    path_in(sub, dir, "sub");
    CHECK_OK(env_write_file_synced(E, a, "AAAA", 4));
    CHECK_OK(env_write_file_synced(E, b, "BB", 2));
    CHECK_OK(E->ops->create_dir(E, sub));
    CHECK_OK(E->ops->list_dir(E, dir, &l));
    CHECK_EQ_INT(l.count, 3);
    int seen = 0;
    for (size_t i = 0; i < l.count; i++) {
        if (strcmp(l.names[i], "a") == 0) seen |= 1;
        else if (strcmp(l.names[i], "b") == 0) seen |= 2;
        else if (strcmp(l.names[i], "sub") == 0) seen |= 4;
        else seen |= 8;
    }
    CHECK_EQ_INT(seen, 7);
    env_dirent_list_free(&l);
    CHECK(l.names == NULL && l.count == 0);
    env_dirent_list_free(&l);

    /* rename replaces the target atomically */
    CHECK_OK(E->ops->rename_file(E, a, b));
    CHECK(!E->ops->file_exists(E, a));
    buf got = BUF_INIT;
    CHECK_OK(env_read_file(E, b, &got));
    CHECK(got.len == 4 && memcmp(got.data, "AAAA", 4) == 0);
    CHECK_STATUS(E->ops->rename_file(E, a, c), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), a) != NULL && strstr(weir_errmsg(), c) != NULL);

    /* hard links share content; linking onto an existing name fails */
    CHECK_OK(E->ops->link_file(E, b, c));
    CHECK_OK(env_read_file(E, c, &got));
    CHECK(got.len == 4 && memcmp(got.data, "AAAA", 4) == 0);
    CHECK_STATUS(E->ops->link_file(E, b, c), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "exists") != NULL);
    CHECK_OK(E->ops->remove_file(E, b));
    CHECK_OK(env_read_file(E, c, &got)); /* survives removal of the other name */
    CHECK_EQ_INT(got.len, 4);

    /* truncate shrinks and grows (with zeros) */
    uint64_t sz;
    CHECK_OK(E->ops->truncate_file(E, c, 2));
    CHECK_OK(E->ops->file_size(E, c, &sz));
    CHECK_EQ_INT(sz, 2);
    CHECK_OK(E->ops->truncate_file(E, c, 10));
    CHECK_OK(env_read_file(E, c, &got));
    CHECK(got.len == 10 && memcmp(got.data, "AA\0\0\0\0\0\0\0\0", 10) == 0);
    CHECK_STATUS(E->ops->truncate_file(E, a, 0), WEIR_IO_ERROR);
    CHECK_STATUS(E->ops->truncate_file(E, c, UINT64_MAX), WEIR_INVALID);

    CHECK_OK(E->ops->sync_dir(E, dir));
    CHECK_STATUS(E->ops->remove_dir(E, dir), WEIR_IO_ERROR); /* not empty */
    CHECK_OK(E->ops->remove_dir(E, sub));
    CHECK(!E->ops->file_exists(E, sub));
    CHECK_OK(E->ops->remove_file(E, c));
    CHECK_OK(E->ops->list_dir(E, dir, &l));
    CHECK_EQ_INT(l.count, 0);
    env_dirent_list_free(&l);

    CHECK_STATUS(E->ops->list_dir(E, a, &l), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), a) != NULL);
    CHECK(l.names == NULL && l.count == 0);
    CHECK_STATUS(E->ops->sync_dir(E, a), WEIR_IO_ERROR);
    buf_free(&got);
    test_rmtree(dir);
}

TEST(list_dir_many_entries) {
    char dir[PATH_MAX], p[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    for (int i = 0; i < 500; i++) {
        char name[32];
        snprintf(name, sizeof name, "%06d.sst", i);
        path_in(p, dir, name);
        CHECK_OK(env_write_file_synced(E, p, "", 0));
    }
    env_dirent_list l;
    CHECK_OK(E->ops->list_dir(E, dir, &l));
    CHECK_EQ_INT(l.count, 500);
    env_dirent_list_free(&l);
    test_rmtree(dir);
}

TEST(create_dir_semantics) {
    char dir[PATH_MAX], p[PATH_MAX], file[PATH_MAX], under[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(p, dir, "db");
    CHECK_OK(E->ops->create_dir(E, p));
    CHECK_OK(E->ops->create_dir(E, p)); /* existing directory is fine */
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));

    path_in(file, dir, "plainfile");
    CHECK_OK(env_write_file_synced(E, file, "x", 1));
    CHECK_STATUS(E->ops->create_dir(E, file), WEIR_INVALID);
    CHECK(strstr(weir_errmsg(), "exists and is not a directory") != NULL);
    CHECK(strstr(weir_errmsg(), file) != NULL);

    /* a path under a regular file fails for everyone, root included */
    path_in(under, file, "db");
    CHECK_STATUS(E->ops->create_dir(E, under), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "Not a directory") != NULL);
    CHECK(strstr(weir_errmsg(), under) != NULL);
    env_writable *w;
    CHECK_STATUS(E->ops->new_writable(E, under, &w), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), under) != NULL);

    /* only the last component is created */
    path_in(p, dir, "x/y/z");
    CHECK_STATUS(E->ops->create_dir(E, p), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "No such file") != NULL);
    test_rmtree(dir);
}

TEST(permission_denied_or_root_override) {
    char dir[PATH_MAX], ro[PATH_MAX], p[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(ro, dir, "readonly");
    CHECK_OK(E->ops->create_dir(E, ro));
    CHECK(chmod(ro, 0500) == 0);
    path_in(p, ro, "db");
    int rc = E->ops->create_dir(E, p);
    env_writable *w = NULL;
    char f[PATH_MAX];
    path_in(f, ro, "000001.log");
    int rc2 = E->ops->new_writable(E, f, &w);
    if (geteuid() == 0) {
        /* root bypasses directory permissions (CAP_DAC_OVERRIDE) */
        CHECK_OK(rc);
        CHECK_OK(rc2);
        CHECK_OK(env_close_writable(w));
        CHECK_OK(E->ops->remove_dir(E, p));
        /* ...so check the unprivileged behaviour from a child that drops to
         * an ordinary uid (exit 77: could not drop, nothing to check). */
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
            if (E->ops->create_dir(E, p) != WEIR_IO_ERROR) _exit(1);
            if (!strstr(weir_errmsg(), "Permission denied") || !strstr(weir_errmsg(), p)) _exit(2);
            if (!strstr(weir_errmsg(), "check the permissions")) _exit(3);
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) printf("     cannot drop privileges; unprivileged case unchecked\n");
        else CHECK_EQ_INT(WEXITSTATUS(status), 0);
    } else {
        CHECK_EQ_INT(rc, WEIR_IO_ERROR);
        CHECK_EQ_INT(rc2, WEIR_IO_ERROR);
        CHECK(strstr(weir_errmsg(), "Permission denied") != NULL);
        CHECK(strstr(weir_errmsg(), f) != NULL);
    }
    chmod(ro, 0700);
    /* Fails for root too: writing through a read-only descriptor. */
    char file[PATH_MAX];
    path_in(file, dir, "victim");
    CHECK_OK(E->ops->new_writable(E, file, &w));
    int rdonly = open(file, O_RDONLY | O_CLOEXEC);
    CHECK(rdonly >= 0);
    int saved = w->fd;
    w->fd = rdonly;
    CHECK_OK(env_append(w, "abc", 3));
    CHECK_STATUS(env_flush(w), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), file) != NULL);
    CHECK(strstr(weir_errmsg(), "write") != NULL);
    /* the unwritten bytes are kept: a retry on a good descriptor succeeds */
    w->fd = saved;
    close(rdonly);
    CHECK_OK(env_flush(w));
    CHECK_OK(env_close_writable(w));
    buf got = BUF_INIT;
    CHECK_OK(env_read_file(E, file, &got));
    CHECK(got.len == 3 && memcmp(got.data, "abc", 3) == 0);
    buf_free(&got);
    test_rmtree(dir);
}

TEST(full_disk_is_no_space) {
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full < 0) {
        printf("     /dev/full unavailable; skipping ENOSPC check\n");
        return;
    }
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "000007.log");
    env_writable *w;
    CHECK_OK(E->ops->new_writable(E, path, &w));
    int saved = w->fd;
    w->fd = full;
    CHECK_OK(env_append(w, "x", 1));
    CHECK_STATUS(env_sync(w), WEIR_NO_SPACE);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    /* a large append writing through fails the same way */
    char *big = calloc(1, 3 * ENV_WRITE_BUFFER);
    CHECK(big != NULL);
    CHECK_STATUS(env_append(w, big, 3 * ENV_WRITE_BUFFER), WEIR_NO_SPACE);
    free(big);
    w->fd = saved;
    close(full);
    /* close reports the still-unwritten buffer's fate (here: writes now
     * succeed, so close is fine) and frees everything either way */
    CHECK_OK(env_close_writable(w));
    test_rmtree(dir);
}

TEST(failed_fsync_leaves_file_broken) {
    char dir[PATH_MAX], path[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(path, dir, "000009.log");
    env_writable *w;
    CHECK_OK(E->ops->new_writable(E, path, &w));
    CHECK_OK(env_append(w, "record", 6));
    /* fdatasync on a pipe fails with EINVAL: stands in for an EIO from the
     * disk. */
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    int saved = w->fd;
    w->fd = pipefd[1];
    CHECK_STATUS(env_sync(w), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "fsync") != NULL);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    /* Even with a healthy descriptor back, the file stays failed: a retried
     * fsync can "succeed" after the kernel dropped the dirty pages. */
    w->fd = saved;
    CHECK_STATUS(env_sync(w), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), "earlier fsync") != NULL);
    CHECK_STATUS(env_sync(w), WEIR_IO_ERROR);
    CHECK_STATUS(env_append(w, "more", 4), WEIR_IO_ERROR);
    CHECK_STATUS(env_flush(w), WEIR_IO_ERROR);
    CHECK_STATUS(env_close_writable(w), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), path) != NULL);
    close(pipefd[0]);
    close(pipefd[1]);
    test_rmtree(dir);
}

TEST(lock_twice_in_one_process_is_busy) {
    char dir[PATH_MAX], lock[PATH_MAX], alias[2 * PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(lock, dir, "LOCK");
    int fd1 = -1, fd2 = 123;
    CHECK_OK(E->ops->lock_file(E, lock, &fd1));
    CHECK(fd1 >= 0);
    CHECK(is_cloexec(fd1));
    CHECK(E->ops->file_exists(E, lock));
    CHECK_STATUS(E->ops->lock_file(E, lock, &fd2), WEIR_BUSY);
    CHECK_EQ_INT(fd2, -1);
    CHECK(strstr(weir_errmsg(), "already open") != NULL);
    CHECK(strstr(weir_errmsg(), dir) != NULL);
    /* another spelling of the same directory is the same lock */
    snprintf(alias, sizeof alias, "%s/./LOCK", dir);
    CHECK_STATUS(E->ops->lock_file(E, alias, &fd2), WEIR_BUSY);
    char link_dir[PATH_MAX + 8];
    snprintf(link_dir, sizeof link_dir, "%s-link", dir);
    unlink(link_dir);
    CHECK(symlink(dir, link_dir) == 0);
    snprintf(alias, sizeof alias, "%s/LOCK", link_dir);
    CHECK_STATUS(E->ops->lock_file(E, alias, &fd2), WEIR_BUSY);
    unlink(link_dir);

    /* The failed attempts must not have dropped the kernel lock: a child
     * process cannot take it. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(lock, O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int r = fcntl(fd, F_SETLK, &fl);
        _exit(r != 0 && (errno == EAGAIN || errno == EACCES) ? 0 : 1);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    E->ops->unlock_file(E, fd1);
    CHECK_OK(E->ops->lock_file(E, lock, &fd2));
    E->ops->unlock_file(E, fd2);
    E->ops->unlock_file(E, -1); /* harmless */
    test_rmtree(dir);
}

TEST(lock_held_by_parent_blocks_forked_child) {
    char dir[PATH_MAX], lock[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(lock, dir, "LOCK");
    int fd;
    CHECK_OK(E->ops->lock_file(E, lock, &fd));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int cfd;
        int rc = E->ops->lock_file(E, lock, &cfd);
        /* independent of the inherited registry: the kernel lock too */
        int raw = open(lock, O_RDWR | O_CLOEXEC);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int r = fcntl(raw, F_SETLK, &fl);
        _exit(rc == WEIR_BUSY && r != 0 ? 0 : 1);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    E->ops->unlock_file(E, fd);
    test_rmtree(dir);
}

TEST(lock_held_by_other_process_is_busy) {
    char dir[PATH_MAX], lock[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(lock, dir, "LOCK");
    int ready[2], done[2];
    CHECK(pipe(ready) == 0 && pipe(done) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int cfd;
        char c = E->ops->lock_file(E, lock, &cfd) == WEIR_OK ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1) _exit(2);
        if (read(done[0], &c, 1) < 0) _exit(3);
        _exit(0);
    }
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(c == 'y');
    int fd = 77;
    /* this process's registry is empty: only the fcntl lock says no */
    CHECK_STATUS(E->ops->lock_file(E, lock, &fd), WEIR_BUSY);
    CHECK(strstr(weir_errmsg(), "already open") != NULL);
    CHECK(strstr(weir_errmsg(), dir) != NULL);
    CHECK_EQ_INT(fd, -1);
    CHECK(write(done[1], "x", 1) == 1);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* child gone, lock released with it */
    CHECK_OK(E->ops->lock_file(E, lock, &fd));
    E->ops->unlock_file(E, fd);
    close(ready[0]);
    close(ready[1]);
    close(done[0]);
    close(done[1]);
    test_rmtree(dir);
}

TEST(lock_in_missing_directory_fails) {
    char dir[PATH_MAX], lock[PATH_MAX];
    test_tmpdir(dir, sizeof dir, "env");
    path_in(lock, dir, "missing/LOCK");
    int fd;
    CHECK_STATUS(E->ops->lock_file(E, lock, &fd), WEIR_IO_ERROR);
    CHECK(strstr(weir_errmsg(), lock) != NULL);
    test_rmtree(dir);
}

TEST(clock_and_sleep) {
    uint64_t a = E->ops->now_micros(E);
    uint64_t wall = (uint64_t)time(NULL) * 1000000u;
    /* wall clock, not monotonic since boot */
    CHECK(a + 2000000u > wall && a < wall + 2000000u);
    E->ops->sleep_micros(E, 20000);
    uint64_t b = E->ops->now_micros(E);
    CHECK(b >= a + 20000);
    CHECK(b < a + 5000000u);
    E->ops->sleep_micros(E, 0);
}

static const test_case tests[] = {
    TEST_ENTRY(write_sync_reopen_pread_mmap_round_trip),
    TEST_ENTRY(large_and_odd_sized_appends_round_trip),
    TEST_ENTRY(read_file_and_write_file_synced),
    TEST_ENTRY(open_missing_file_is_io_error_naming_path),
    TEST_ENTRY(read_error_names_offset_and_path),
    TEST_ENTRY(list_dir_rename_link_truncate_remove),
    TEST_ENTRY(list_dir_many_entries),
    TEST_ENTRY(create_dir_semantics),
    TEST_ENTRY(permission_denied_or_root_override),
    TEST_ENTRY(full_disk_is_no_space),
    TEST_ENTRY(failed_fsync_leaves_file_broken),
    TEST_ENTRY(lock_twice_in_one_process_is_busy),
    TEST_ENTRY(lock_held_by_parent_blocks_forked_child),
    TEST_ENTRY(lock_held_by_other_process_is_busy),
    TEST_ENTRY(lock_in_missing_directory_fails),
    TEST_ENTRY(clock_and_sleep),
    TEST_END,
};

int main(int argc, char **argv) {
    E = env_posix();
    signal(SIGPIPE, SIG_IGN);
    return test_main(argc, argv, tests);
}
