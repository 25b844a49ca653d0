/* SPDX-License-Identifier: Apache-2.0 */
/* One rank of the collectives bench on Open MPI (or any MPI), timed exactly as
 * bench/peers/nodeccl_worker.js times nodeccl: same patterns, same check, warm-up, a barrier
 * before each timed call, slowest rank's time, median. bench/collectives.js compiles it with
 * mpicc into build-bench/ and runs it under mpirun; rank 0 prints "RESULT {json}" lines. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALLREDUCE, BROADCAST, ALLGATHER, REDUCESCATTER, NCOLL };
static const char* kNames[NCOLL] = {"allreduce", "broadcast", "allgather", "reducescatter"};

typedef struct {
  int colls[NCOLL], ncolls;
  long sizes[64];
  int nsizes, iters, warmup;
  long max_iter_bytes;
} Plan;

static float p(long i) { return (float)(i % 13 + 1); }

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void parse_plan(int argc, char** argv, Plan* plan) {
  memset(plan, 0, sizeof(*plan));
  plan->iters = 20, plan->warmup = 5, plan->max_iter_bytes = 1L << 31;
  for (int i = 1; i + 1 < argc; i += 2) {
    char* v = argv[i + 1];
    if (!strcmp(argv[i], "--colls")) {
      for (char* t = strtok(v, ","); t; t = strtok(NULL, ","))
        for (int c = 0; c < NCOLL; c++)
          if (!strcmp(t, kNames[c])) plan->colls[plan->ncolls++] = c;
    } else if (!strcmp(argv[i], "--sizes")) {
      for (char* t = strtok(v, ","); t && plan->nsizes < 64; t = strtok(NULL, ","))
        plan->sizes[plan->nsizes++] = atol(t);
    } else if (!strcmp(argv[i], "--iters")) plan->iters = atoi(v);
    else if (!strcmp(argv[i], "--warmup")) plan->warmup = atoi(v);
    else if (!strcmp(argv[i], "--max-iter-bytes")) plan->max_iter_bytes = atol(v);
  }
}

/* The collective on the preallocated buffers; all-reduce in place, like the others. */
static void run_op(int coll, float* a, float* b, long c) {
  switch (coll) {
    case ALLREDUCE:
      MPI_Allreduce(MPI_IN_PLACE, a, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
    case BROADCAST: MPI_Bcast(a, (int)c, MPI_FLOAT, 0, MPI_COMM_WORLD); break;
    case ALLGATHER:
      MPI_Allgather(a, (int)c, MPI_FLOAT, b, (int)c, MPI_FLOAT, MPI_COMM_WORLD);
      break;
    case REDUCESCATTER:
      MPI_Reduce_scatter_block(a, b, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
  }
}

/* Fills the pattern of nodeccl_worker.js and, after one call, counts wrong elements. */
static double check(int coll, float* a, float* b, long c, int r, int n) {
  long in = coll == REDUCESCATTER ? c * n : c, wrong = 0;
  float tri = (float)(n * (n + 1) / 2);
  for (long i = 0; i < in; i++) a[i] = coll == BROADCAST ? (r == 0 ? p(i) : 0.f) : (r + 1) * p(i);
  run_op(coll, a, b, c);
  for (long i = 0; i < c; i++) {
    if (coll == ALLREDUCE) wrong += a[i] != tri * p(i);
    if (coll == BROADCAST) wrong += a[i] != p(i);
    if (coll == REDUCESCATTER) wrong += b[i] != tri * p(r * c + i);
    if (coll == ALLGATHER)
      for (int k = 0; k < n; k++) wrong += b[k * c + i] != (k + 1) * p(i);
  }
  return (double)wrong;
}

static void measure(int coll, long nbytes, const Plan* plan, float* a, float* b, int r, int n) {
  long c = coll == ALLREDUCE || coll == BROADCAST ? nbytes / 4 : nbytes / 4 / n;
  if (c == 0) return;
  double wrong = check(coll, a, b, c, r, n);
  if (coll == ALLREDUCE) memset(a, 0, c * sizeof(float)); /* sums would grow to inf */
  long warmup = plan->max_iter_bytes / nbytes; /* as plan.js warmupFor */
  warmup = warmup < plan->warmup ? warmup : plan->warmup;
  warmup = warmup < 2 ? 2 : warmup;
  for (long i = 0; i < warmup; i++) run_op(coll, a, b, c);
  long iters = plan->max_iter_bytes / nbytes;
  iters = iters < plan->iters ? iters : plan->iters;
  iters = iters < 3 ? 3 : iters;
  double* t = calloc(iters, sizeof(double));
  for (long i = 0; i < iters; i++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    run_op(coll, a, b, c);
    t[i] = (MPI_Wtime() - t0) * 1e6;
  }
  MPI_Allreduce(MPI_IN_PLACE, t, (int)iters, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  qsort(t, iters, sizeof(double), cmp_double);
  double med = iters % 2 ? t[iters / 2] : (t[iters / 2 - 1] + t[iters / 2]) / 2;
  long size = coll == ALLGATHER || coll == REDUCESCATTER ? c * n : c;
  if (r == 0) {
    printf("RESULT {\"coll\":\"%s\",\"bytes\":%ld,\"count\":%ld,\"us\":%.3f,\"wrong\":%.0f,"
           "\"iters\":%ld}\n", kNames[coll], size * 4, size, med, wrong, iters);
    fflush(stdout);
  }
  free(t);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int r, n;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  Plan plan;
  parse_plan(argc, argv, &plan);
  long max_bytes = 4;
  for (int s = 0; s < plan.nsizes; s++)
    if (plan.sizes[s] > max_bytes) max_bytes = plan.sizes[s];
  /* Written once, so first-touch page faults stay out of the timing. */
  float* a = malloc(max_bytes);
  float* b = malloc(max_bytes);
  if (!a || !b) {
    fprintf(stderr, "mpi_bench: rank %d could not allocate 2 x %ld bytes\n", r, max_bytes);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  memset(a, 0, max_bytes);
  memset(b, 0, max_bytes);
  for (int k = 0; k < plan.ncolls; k++)
    for (int s = 0; s < plan.nsizes; s++) measure(plan.colls[k], plan.sizes[s], &plan, a, b, r, n);
  free(a);
  free(b);
  MPI_Finalize();
  return 0;
}
