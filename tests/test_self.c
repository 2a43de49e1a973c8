/* test_self.c: discover/ finding the container tailjet runs in (tj_self_detect, tj_self_is) from
 * fake /proc trees written as Docker makes them: cgroup v1, systemd's cgroup driver, cgroup v2
 * with a private cgroup namespace (the id only in the mounts of /etc/hostname, /etc/hosts,
 * /etc/resolv.conf), a host process, and the host name as the last resort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tj_self.h"
#include "tj_test.h"

#define ID  "3f2a6c0d9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
#define ID2 "9999999999999999999999999999999999999999999999999999999999999999"

/* A fake proc dir with self/cgroup and self/mountinfo holding these texts (NULL: no file).
 * Returns its path (static storage of the caller's buffer). */
static const char *fake_proc(char *dir, size_t n, const char *cgroup, const char *mountinfo)
{
    char path[512];
    FILE *f;

    snprintf(dir, n, "/tmp/tj-test-self-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/self", dir);
    CHECK(mkdir(path, 0700) == 0);
    if (cgroup) {
        snprintf(path, sizeof(path), "%s/self/cgroup", dir);
        CHECK((f = fopen(path, "w")) != NULL);
        fputs(cgroup, f);
        fclose(f);
    }
    if (mountinfo) {
        snprintf(path, sizeof(path), "%s/self/mountinfo", dir);
        CHECK((f = fopen(path, "w")) != NULL);
        fputs(mountinfo, f);
        fclose(f);
    }
    return dir;
}

static void rm_proc(const char *dir)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/self/cgroup", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/self/mountinfo", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/self", dir);
    rmdir(path);
    rmdir(dir);
}

/* The mounts a container gets under cgroup v2: its root, proc, the log directory bind-mounted to
 * read the logs (no id of its own), and Docker's three files of the container. */
static const char *const MOUNTS_V2 =
    "1045 1012 0:98 / / rw,relatime master:512 - overlay overlay rw,lowerdir=/var/lib/docker/"
    "overlay2/l/ABC\n"
    "1046 1045 0:101 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "1050 1045 8:1 /var/lib/docker/containers /var/lib/docker/containers ro,relatime - ext4 "
    "/dev/sda1 rw\n"
    "1051 1045 8:1 /var/lib/docker/containers/" ID "/resolv.conf /etc/resolv.conf rw,relatime - "
    "ext4 /dev/sda1 rw\n"
    "1052 1045 8:1 /var/lib/docker/containers/" ID "/hostname /etc/hostname rw,relatime - ext4 "
    "/dev/sda1 rw\n"
    "1053 1045 8:1 /var/lib/docker/containers/" ID "/hosts /etc/hosts rw,relatime - ext4 "
    "/dev/sda1 rw\n";

static void test_cgroup_v1(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir),
              "12:pids:/docker/" ID "\n11:memory:/docker/" ID "\n0::/system.slice/containerd\n",
              NULL);
    tj_self_detect(&s, dir, "myhost");
    CHECK_STR(s.id, ID);
    CHECK_STR(s.how, "cgroup");
    CHECK(tj_self_is(&s, ID));
    CHECK(!tj_self_is(&s, ID2));
    rm_proc(dir);
}

static void test_cgroup_systemd_driver(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir), "0::/system.slice/docker-" ID ".scope\n", NULL);
    tj_self_detect(&s, dir, NULL);
    CHECK_STR(s.id, ID);
    rm_proc(dir);
}

static void test_cgroup_v2_mountinfo(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir), "0::/\n", MOUNTS_V2);
    tj_self_detect(&s, dir, "3f2a6c0d9b8e");
    CHECK_STR(s.id, ID);
    CHECK_STR(s.how, "mountinfo");
    CHECK(tj_self_is(&s, ID));
    CHECK(!tj_self_is(&s, ID2));
    rm_proc(dir);
}

/* Another container's directory bind-mounted somewhere else names no one: only Docker's three
 * files at /etc count. */
static void test_other_mounts_ignored(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir), "0::/\n",
              "1050 1045 8:1 /var/lib/docker/containers/" ID2 " /logs ro - ext4 /dev/sda1 rw\n"
              "1051 1045 8:1 /var/lib/docker/containers/" ID2 "/hostname /data/hostname rw - "
              "ext4 /dev/sda1 rw\n");
    tj_self_detect(&s, dir, "build-host");
    CHECK_STR(s.id, "");
    CHECK(s.how == NULL);
    CHECK(!tj_self_is(&s, ID2));
    rm_proc(dir);
}

/* A process on the host: no id anywhere, a host name that is no short id. */
static void test_host(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir), "0::/user.slice/user-0.slice/session-3.scope\n",
              "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n");
    tj_self_detect(&s, dir, "node-1");
    CHECK(s.how == NULL);
    CHECK(!tj_self_is(&s, ID));
    tj_self_detect(&s, "/nonexistent", "abcdef12345"); /* 11 digits */
    CHECK(s.how == NULL);
    tj_self_detect(&s, "/nonexistent", "ABCDEF123456"); /* Docker's ids are lower case */
    CHECK(s.how == NULL);
    rm_proc(dir);
}

/* Nothing in /proc says it (a cgroup namespace, no Docker mounts): the host name Docker gives a
 * container by default, its id's first 12 digits. */
static void test_hostname(void)
{
    struct tj_self s;

    tj_self_detect(&s, "/nonexistent", "3f2a6c0d9b8e");
    CHECK_STR(s.how, "hostname");
    CHECK(tj_self_is(&s, ID));
    CHECK(!tj_self_is(&s, ID2));
}

/* A truncated or longer hex run is no id. */
static void test_not_an_id(void)
{
    char dir[64];
    struct tj_self s;

    fake_proc(dir, sizeof(dir),
              "4:memory:/docker/3f2a6c0d9b8e7f6a5b4c3d2e1f0a9b8c\n"
              "3:pids:/docker/" ID "00\n",
              NULL);
    tj_self_detect(&s, dir, NULL);
    CHECK(s.how == NULL);
    rm_proc(dir);
}

int main(int argc, char **argv)
{
    static const struct tj_test tests[] = {
        {"cgroup_v1", test_cgroup_v1},
        {"cgroup_systemd_driver", test_cgroup_systemd_driver},
        {"cgroup_v2_mountinfo", test_cgroup_v2_mountinfo},
        {"other_mounts_ignored", test_other_mounts_ignored},
        {"host", test_host},
        {"hostname", test_hostname},
        {"not_an_id", test_not_an_id},
    };
    return tj_test_main(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
}
