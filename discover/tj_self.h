/* tj_self.h: which container tailjet itself runs in, so that discovery leaves its own log out
 * (a stdout output would otherwise ship its own records again, without end). */
#ifndef TJ_SELF_H
#define TJ_SELF_H

#include <stdbool.h>
#include <stddef.h>

#define TJ_SELF_ID_LEN 64

struct tj_self {
    char id[TJ_SELF_ID_LEN + 1]; /* the full container id, or "" when none was found */
    char host[13];               /* the host name when it is a short container id (12 hex
                                    digits, Docker's default), or "" */
    const char *how;             /* where the id was found: "cgroup", "mountinfo", "hostname",
                                    or NULL */
};

/* Looks for the container this process runs in: a 64-hex-digit id in proc_dir/self/cgroup
 * (cgroup v1: /docker/ID, docker-ID.scope), else in the mounts Docker makes for the container's
 * /etc/hostname, /etc/hosts and /etc/resolv.conf in proc_dir/self/mountinfo (cgroup v2, where the
 * cgroup path is "/"), else hostname (borrowed, may be NULL) when it is 12 hex digits. proc_dir
 * is "/proc" but in tests. Never fails: s is all empty when nothing says so. */
void tj_self_detect(struct tj_self *s, const char *proc_dir, const char *hostname);

/* Whether container id (full, 64 hex digits) is the one s describes. */
bool tj_self_is(const struct tj_self *s, const char *id);

#endif
