/*
** check.h: the tiny assertion kit of the C tests. CHECK prints file:line and both values
** and keeps going; the test ends with "N passed, M failed" and exits non-zero on failure.
*/
#ifndef TRL_CHECK_H
#define TRL_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond) do { \
    if (cond) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
  } while (0)

#define CHECK_EQ(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: %s == %s failed: %lld vs %lld\n", \
                                 __FILE__, __LINE__, #a, #b, a_, b_); } \
  } while (0)

#define CHECK_NEAR(a, b, tol) do { \
    double a_ = (double)(a), b_ = (double)(b); \
    if (fabs(a_ - b_) <= (tol)) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g\n", \
                                 __FILE__, __LINE__, #a, #b, a_, b_); } \
  } while (0)

#define CHECK_OK(expr) do { \
    trl_status st_ = (expr); \
    if (st_ == TRL_OK) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, trl_errmsg()); } \
  } while (0)

// The call fails and its message contains 'needle'.
#define CHECK_FAILS(expr, needle) do { \
    trl_status st_ = (expr); \
    if (st_ != TRL_OK && strstr(trl_errmsg(), (needle))) check_pass++; \
    else { check_fail++; fprintf(stderr, "%s:%d: %s: expected failure with '%s', got status %d: '%s'\n", \
                                 __FILE__, __LINE__, #expr, (needle), (int)st_, trl_errmsg()); } \
  } while (0)

static int check_summary (void) {
  printf("%d passed, %d failed\n", check_pass, check_fail);
  return check_fail ? 1 : 0;
}

#endif
