/* tj_self.c: finds the container tailjet runs in (see tj_self.h). Runs once, on the thread that
 * starts discovery. */
#include "tj_self.h"

#include "tj_common.h"

#include <stdio.h>
#include <string.h>

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Whether s[0..n) holds exactly n hex digits and no more follow. */
static bool hex_run(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_hex(s[i]))
            return false;
    return !is_hex(s[n]);
}

/* The last 64-hex-digit id in line that starts after one of the markers ("/docker/ID",
 * "docker-ID.scope", "/containers/ID/"); copies it into id and returns true. */
static bool id_in(const char *line, const char *const *markers, size_t nmarkers, char *id)
{
    bool found = false;

    for (size_t m = 0; m < nmarkers; m++) {
        size_t len = strlen(markers[m]);
        for (const char *p = strstr(line, markers[m]); p; p = strstr(p + 1, markers[m])) {
            const char *v = p + len;
            if (strlen(v) >= TJ_SELF_ID_LEN && hex_run(v, TJ_SELF_ID_LEN)) {
                memcpy(id, v, TJ_SELF_ID_LEN);
                id[TJ_SELF_ID_LEN] = '\0';
                found = true;
            }
        }
    }
    return found;
}

/* cgroup v1 (and v2 without a cgroup namespace): "12:memory:/docker/ID",
 * "0::/system.slice/docker-ID.scope". */
static bool from_cgroup(const char *proc_dir, char *id)
{
    static const char *const markers[] = {"/docker/", "docker-", "/moby/"};
    char path[4096], line[4096];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "%s/self/cgroup", proc_dir);
    if (!(f = fopen(path, "re")))
        return false;
    while (!found && fgets(line, sizeof(line), f))
        found = id_in(line, markers, TJ_ARRAY_LEN(markers), id);
    fclose(f);
    return found;
}

/* cgroup v2 with a private cgroup namespace ("0::/"): Docker bind-mounts the container's own
 * DATA-ROOT/containers/ID/{hostname,hosts,resolv.conf} at /etc/...; the mount's root (field 4 of
 * mountinfo) names the id. Only those mount points count: a bind of the containers directory
 * itself (to read the logs) names no id, and one of another container's would name another. */
static bool from_mountinfo(const char *proc_dir, char *id)
{
    static const char *const markers[] = {"/containers/"};
    char path[4096], line[8192];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "%s/self/mountinfo", proc_dir);
    if (!(f = fopen(path, "re")))
        return false;
    while (!found && fgets(line, sizeof(line), f)) {
        char root[4096], point[4096];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2)
            continue;
        if (strcmp(point, "/etc/hostname") != 0 && strcmp(point, "/etc/hosts") != 0 &&
            strcmp(point, "/etc/resolv.conf") != 0)
            continue;
        found = id_in(root, markers, TJ_ARRAY_LEN(markers), id);
    }
    fclose(f);
    return found;
}

void tj_self_detect(struct tj_self *s, const char *proc_dir, const char *hostname)
{
    memset(s, 0, sizeof(*s));
    if (from_cgroup(proc_dir, s->id))
        s->how = "cgroup";
    else if (from_mountinfo(proc_dir, s->id))
        s->how = "mountinfo";
    else if (hostname && strlen(hostname) == 12 && hex_run(hostname, 12)) {
        memcpy(s->host, hostname, 13);
        s->how = "hostname";
    }
}

bool tj_self_is(const struct tj_self *s, const char *id)
{
    if (s->id[0])
        return strcmp(s->id, id) == 0;
    return s->host[0] && strncmp(s->host, id, 12) == 0;
}
