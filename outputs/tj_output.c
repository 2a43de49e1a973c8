/* tj_output.c: the static registry of outputs; picks one by the URI's scheme. Main thread, at
 * start-up and shutdown. */
#include "tj_output.h"

#include <stdio.h>
#include <string.h>

const struct tj_output_ops *const tj_outputs[] = {&tj_output_stdout, &tj_output_file,
                                                  &tj_output_kafka, &tj_output_es};
const size_t tj_noutputs = TJ_ARRAY_LEN(tj_outputs);

static bool name_is(const char *s, size_t k, const char *uri, size_t n)
{
    return k == n && strncmp(uri, s, n) == 0;
}

bool tj_output_matches(const struct tj_output_ops *ops, const char *uri)
{
    size_t n = strcspn(uri, ":");
    const char *a = ops->aliases;

    if (name_is(ops->scheme, strlen(ops->scheme), uri, n))
        return true;
    while (a && *a) {
        size_t k = strcspn(a, "|");
        if (name_is(a, k, uri, n))
            return true;
        a += k + (a[k] == '|');
    }
    return false;
}

void tj_output_help(FILE *f)
{
    for (size_t i = 0; i < tj_noutputs; i++) {
        const struct tj_output_ops *o = tj_outputs[i];
        if (!o->nopts)
            continue;
        fprintf(f, "\n%s output options (--%s NAME=VALUE, repeatable):\n", o->scheme, o->opt_flag);
        for (size_t k = 0; k < o->nopts; k++) {
            const struct tj_opt *t = &o->opts[k];
            char head[96];
            snprintf(head, sizeof(head), "%s=%s", t->name, t->metavar ? t->metavar : "VALUE");
            fprintf(f, "  %-28s %s", head, t->help);
            if (t->def)
                fprintf(f, " [default: %s]", t->def);
            if (t->env)
                fprintf(f, " [env: %s]", t->env);
            fputc('\n', f);
        }
    }
}

int tj_output_create(struct tj_output *out, const char *uri, const char *const *opts, size_t nopts,
                     tj_ack_fn ack, void *ack_arg, char *err, size_t errlen)
{
    out->ops = NULL;
    out->state = NULL;
    for (size_t i = 0; i < tj_noutputs; i++) {
        if (tj_output_matches(tj_outputs[i], uri)) {
            out->ops = tj_outputs[i];
            return out->ops->create(uri, opts, nopts, ack, ack_arg, &out->state, err, errlen);
        }
    }
    snprintf(err, errlen,
             "unknown output '%s': use stdout, file:PATH, kafka://HOST:PORT[,HOST:PORT]/TOPIC or "
             "elasticsearch://HOST:PORT[,HOST:PORT][/INDEX] (also http:// and https://)",
             uri);
    return TJ_EINVAL;
}

void tj_output_destroy(struct tj_output *out)
{
    if (out->ops)
        out->ops->destroy(out->state);
    out->ops = NULL;
    out->state = NULL;
}
