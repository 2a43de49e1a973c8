/* tj_output.c: the static registry of outputs; picks one by the URI's scheme. Main thread, at
 * start-up and shutdown. */
#include "tj_output.h"

#include <stdio.h>
#include <string.h>

const struct tj_output_ops *const tj_outputs[] = {&tj_output_stdout, &tj_output_file,
                                                  &tj_output_kafka};
const size_t tj_noutputs = TJ_ARRAY_LEN(tj_outputs);

int tj_output_create(struct tj_output *out, const char *uri, const char *const *opts, size_t nopts,
                     tj_ack_fn ack, void *ack_arg, char *err, size_t errlen)
{
    size_t n = strcspn(uri, ":");

    out->ops = NULL;
    out->state = NULL;
    for (size_t i = 0; i < tj_noutputs; i++) {
        const char *s = tj_outputs[i]->scheme;
        if (strlen(s) == n && strncmp(uri, s, n) == 0) {
            out->ops = tj_outputs[i];
            return out->ops->create(uri, opts, nopts, ack, ack_arg, &out->state, err, errlen);
        }
    }
    snprintf(err, errlen,
             "unknown output '%s': use stdout, file:PATH or kafka://HOST:PORT[,HOST:PORT]/TOPIC",
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
