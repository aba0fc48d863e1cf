-- bench/matmul.lua: GFLOP/s of square float32 matmul through trl.nd (checks, output
-- allocation, the Lua call) against raw OpenBLAS sgemm on preallocated buffers, in the same
-- process, alternating the two so that machine noise hits both alike. Medians of REPS.
--   trl bench/matmul.lua [REPS]
-- build/trl-bench-sgemm N REPS times sgemm in a separate C program, for a third opinion.
local trl = require 'trl'
local nd = trl.nd

local reps = tonumber(arg[1]) or 9

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

print(string.format('threads: %d   reps: %d (median, alternating)   OPENBLAS_CORETYPE=%s',
                    trl.get_num_threads(), reps, os.getenv('OPENBLAS_CORETYPE') or '(unset)'))
print(string.format('%6s  %12s  %12s  %9s', 'n', 'trl GFLOP/s', 'raw GFLOP/s', 'overhead'))
for _, n in ipairs{512, 1024, 2048} do
  local a = nd.random.uniform(0, 1, {n, n})
  local b = nd.random.uniform(0, 1, {n, n})
  local c = nd.zeros{n, n}
  local _ = a:matmul(b)                 -- warm-up both paths
  trl.debug.sgemm_raw(a, b, c)
  local tt, tr = {}, {}
  for r = 1, reps do
    local t0 = trl.clock()
    local y = a:matmul(b)
    tt[r] = trl.clock() - t0
    y = nil
    t0 = trl.clock()
    trl.debug.sgemm_raw(a, b, c)
    tr[r] = trl.clock() - t0
  end
  local flop = 2.0 * n * n * n
  local mt, mr = median(tt), median(tr)
  print(string.format('%6d  %12.1f  %12.1f  %8.1f%%', n, flop / mt / 1e9, flop / mr / 1e9, (mt / mr - 1) * 100))
end
