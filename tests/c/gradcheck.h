/*
** gradcheck.h: a central-difference gradient checker for the C tests (nn's Jacobian test,
** ggml's test-backend-ops). The caller's loss function evaluates the op with one input
** element moved by 'delta' and returns a scalar in double; the caller picks eps and the
** tolerances per op. Header-only: include it from one test file.
*/
#ifndef TRL_GRADCHECK_H
#define TRL_GRADCHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

// The loss with element 'i' of the checked input moved by 'delta' (and put back afterwards).
typedef double (*gc_loss_fn) (void *ctx, int64_t i, double delta);

// Compare ana[i] (n analytic derivatives) with (f(+eps) - f(-eps)) / (2 eps): an element fails
// when |num - ana| > atol + rtol * |num|. Prints the first few failures under 'what' and
// returns how many failed.
static int gradcheck (const char *what, gc_loss_fn f, void *ctx, int64_t n, const float *ana,
                      double eps, double atol, double rtol) {
  int bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double num = (f(ctx, i, eps) - f(ctx, i, -eps)) / (2 * eps);
    double err = fabs(num - ana[i]);
    if (err > atol + rtol * fabs(num)) {
      if (bad < 5)
        printf("  gradcheck %s: element %lld numeric %.8g analytic %.8g (diff %.3g)\n", what,
               (long long)i, num, (double)ana[i], err);
      bad++;
    }
    if (err > worst) worst = err;
  }
  if (bad) printf("  gradcheck %s: %d of %lld elements off, worst diff %.3g\n", what, bad,
                  (long long)n, worst);
  return bad;
}

// sum(r .* y) in double: the scalar loss whose gradient wrt y is r.
static double gc_dot (const float *r, const float *y, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)r[i] * y[i];
  return s;
}

// Move float element p[i] by 'delta' and return the old value (for float-input ops).
static float gc_nudge (float *p, int64_t i, double delta) {
  float old = p[i];
  p[i] = (float)(old + delta);
  return old;
}

#endif
