/*
 * librdkafka's producer as a load generator in C, for cluster/bench-kafka:
 * the same settings and output as tests/kafka/kbench.py, without Python in
 * the loop (so the generator is not what limits a single fast node).
 *
 *   kbench BOOTSTRAP TOPIC [SECONDS [RECORD_SIZE [LINGER_MS [BATCH_BYTES]]]]
 *
 * Keyless records of RECORD_SIZE random bytes, acks=all, no compression,
 * for SECONDS; progress each second on stderr, one JSON line on stdout:
 * {"records", "failed", "seconds", "records_per_s", "mb_per_s", "p50_ms",
 * "p99_ms"}. Exit 1 if any record was not acknowledged.
 *
 * KBENCH_CONF="key=value;key=value" adds client settings (e.g. the
 * security.protocol, ssl.* and sasl.* of a TLS listener).
 *
 * Build: cc -O2 -o kbench cluster/kbench.c -lrdkafka (Debian: librdkafka-dev).
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES (1 << 20)

static uint64_t acked, failed;
static int64_t samples[MAX_SAMPLES];
static size_t nsamples;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    failed++;
    return;
  }
  acked++;
  /* One latency sample in 16, as kbench.py. */
  if (acked % 16 == 0 && nsamples < MAX_SAMPLES) {
    int64_t us = rd_kafka_message_latency(m);
    if (us >= 0) samples[nsamples++] = us;
  }
}

static void set(rd_kafka_conf_t *conf, const char *key, const char *value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "kbench: %s=%s: %s\n", key, value, err);
    exit(2);
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pct_ms(double q) {
  if (nsamples == 0) return -1;
  return (double)samples[(size_t)(q * (double)(nsamples - 1))] / 1000.0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: kbench BOOTSTRAP TOPIC [SECONDS [RECORD_SIZE [LINGER_MS [BATCH_BYTES]]]]\n");
    return 2;
  }
  const char *bootstrap = argv[1], *topic = argv[2];
  double seconds = argc > 3 ? atof(argv[3]) : 10;
  size_t size = argc > 4 ? (size_t)atol(argv[4]) : 1024;
  const char *linger = argc > 5 ? argv[5] : "5";
  const char *batch = argc > 6 ? argv[6] : "1048576";

  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", bootstrap);
  set(conf, "acks", "all");
  set(conf, "linger.ms", linger);
  set(conf, "batch.size", batch);
  set(conf, "queue.buffering.max.kbytes", "262144");
  set(conf, "queue.buffering.max.messages", "1000000");
  set(conf, "compression.type", "none");
  set(conf, "partitioner", "murmur2_random");
  const char *extra = getenv("KBENCH_CONF");
  if (extra && *extra) {
    char *copy = strdup(extra), *save = NULL;
    for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
      char *eq = strchr(kv, '=');
      if (!eq) {
        fprintf(stderr, "kbench: KBENCH_CONF entry without '=': %s\n", kv);
        return 2;
      }
      *eq = 0;
      set(conf, kv, eq + 1);
    }
    free(copy);
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "kbench: %s\n", err);
    return 2;
  }

  char *payload = malloc(size);
  srand((unsigned)time(NULL));
  for (size_t i = 0; i < size; i++) payload[i] = (char)rand();

  double start = now_s(), end = start + seconds, next_report = start + 1;
  while (now_s() < end) {
    for (int i = 0; i < 1000; i++) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(payload, size), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk, 10);
        break;
      }
      if (e) {
        fprintf(stderr, "kbench: produce: %s\n", rd_kafka_err2str(e));
        return 2;
      }
    }
    rd_kafka_poll(rk, 0);
    double t = now_s();
    if (t >= next_report) {
      fprintf(stderr, "%5.1f s: %llu acknowledged\n", t - start, (unsigned long long)acked);
      next_report += 1;
    }
  }
  rd_kafka_flush(rk, 60000);
  int left = rd_kafka_outq_len(rk);
  double elapsed = now_s() - start;
  qsort(samples, nsamples, sizeof samples[0], cmp_i64);
  printf("{\"records\": %llu, \"failed\": %llu, \"seconds\": %.2f, \"records_per_s\": %.0f, "
         "\"mb_per_s\": %.2f, \"p50_ms\": %.1f, \"p99_ms\": %.1f, \"generator\": \"c\"}\n",
         (unsigned long long)acked, (unsigned long long)(failed + (uint64_t)left), elapsed,
         (double)acked / elapsed, (double)acked * (double)size / elapsed / 1e6, pct_ms(0.5),
         pct_ms(0.99));
  rd_kafka_destroy(rk);
  free(payload);
  return failed + (uint64_t)left == 0 ? 0 : 1;
}
