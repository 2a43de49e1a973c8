/* tj_es_loop.h: the Elasticsearch output's thread: a curl multi loop that takes the pieces
 * submit queued, starts up to request.concurrency bulk requests on keep-alive connections (one
 * slot, one easy handle each) to hosts that are up, puts the index template in first when there
 * is one, and hands each finished request to tj_es_result_done. */
#ifndef TJ_ES_LOOP_H
#define TJ_ES_LOOP_H

#include "tj_es_out.h"

/* Sets up slot s (its curl handle, its buffers, the connection options of o). Returns 0 or
 * TJ_ENOMEM (what was set up is freed by the output's destroy). Main thread, in create. */
int tj_es_loop_slot_init(struct out_es *o, struct slot *s);

/* The output thread (pthread_create's start routine, arg: the struct out_es). Runs until o->stop
 * is set under o->lock and curl_multi_wakeup wakes it; returns NULL. */
void *tj_es_loop_main(void *arg);

#endif
