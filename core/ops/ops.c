/*
** ops.c: the op name table generated from ops.def.
*/
#include <assert.h>

#include "ops.h"

static const char *const op_names[] = {
#define X(e, n) #n,
#include "ops.def"
#undef X
};

static_assert(sizeof op_names / sizeof op_names[0] == TRL_OP_COUNT, "op_names out of sync with ops.def");

const char *trl_op_name (trl_op op) {
  return (unsigned)op < TRL_OP_COUNT ? op_names[op] : "?";
}
