/* tj_kafka_admin: creates topics on a real Kafka cluster for the `real` tests (the cluster has
 * auto-creation off), through librdkafka's Admin API: one CreateTopics request for all of them,
 * so hundreds of topics take a second, not a JVM start each.
 *
 *   tj_kafka_admin BOOTSTRAP PARTITIONS REPLICATION [NAME=VALUE...] TOPIC...
 *
 * NAME=VALUE arguments (those with '=') are topic configs (max.message.bytes=10000). Exits 0
 * when every topic exists afterwards (made now or already there), 1 naming each failure. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char why[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_NewTopic_t **topics;
    const char *cfgs[64];
    size_t ncfg = 0, ntopics = 0;
    int partitions, rf, bad = 0;

    if (argc < 5) {
        fprintf(stderr, "usage: tj_kafka_admin BOOTSTRAP PARTITIONS REPLICATION [NAME=VALUE...] "
                        "TOPIC...\n");
        return 2;
    }
    partitions = atoi(argv[2]);
    rf = atoi(argv[3]);
    topics = calloc((size_t)argc, sizeof(*topics));
    conf = rd_kafka_conf_new();
    if (!topics || rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], why, sizeof(why)) != 0) {
        fprintf(stderr, "tj_kafka_admin: %s\n", topics ? why : "out of memory");
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        fprintf(stderr, "tj_kafka_admin: %s\n", why);
        return 1;
    }
    for (int i = 4; i < argc; i++)
        if (strchr(argv[i], '=') && ncfg < sizeof(cfgs) / sizeof(*cfgs))
            cfgs[ncfg++] = argv[i];
    for (int i = 4; i < argc; i++) {
        rd_kafka_NewTopic_t *t;
        if (strchr(argv[i], '='))
            continue;
        t = rd_kafka_NewTopic_new(argv[i], partitions, rf, why, sizeof(why));
        if (!t) {
            fprintf(stderr, "tj_kafka_admin: topic %s: %s\n", argv[i], why);
            return 1;
        }
        for (size_t c = 0; c < ncfg; c++) {
            char name[256];
            const char *eq = strchr(cfgs[c], '=');
            snprintf(name, sizeof(name), "%.*s", (int)(eq - cfgs[c]), cfgs[c]);
            if (rd_kafka_NewTopic_set_config(t, name, eq + 1) != 0) {
                fprintf(stderr, "tj_kafka_admin: config %s refused\n", cfgs[c]);
                return 1;
            }
        }
        topics[ntopics++] = t;
    }
    q = rd_kafka_queue_new(rk);
    {
        rd_kafka_AdminOptions_t *opt =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_operation_timeout(opt, 30000, why, sizeof(why));
        rd_kafka_AdminOptions_set_request_timeout(opt, 60000, why, sizeof(why));
        rd_kafka_CreateTopics(rk, topics, ntopics, opt, q);
        rd_kafka_AdminOptions_destroy(opt);
    }
    {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 90000);
        const rd_kafka_CreateTopics_result_t *res;
        const rd_kafka_topic_result_t **tr;
        size_t n = 0;
        if (!ev) {
            fprintf(stderr, "tj_kafka_admin: no answer to CreateTopics within 90 s\n");
            return 1;
        }
        if (rd_kafka_event_error(ev)) {
            fprintf(stderr, "tj_kafka_admin: CreateTopics: %s\n", rd_kafka_event_error_string(ev));
            return 1;
        }
        res = rd_kafka_event_CreateTopics_result(ev);
        tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "tj_kafka_admin: topic %s: %s\n", rd_kafka_topic_result_name(tr[i]),
                        rd_kafka_topic_result_error_string(tr[i]));
                bad = 1;
            }
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_NewTopic_destroy_array(topics, ntopics);
    free(topics);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return bad;
}
