-- bench/matmul.lua: GFLOP/s of square float32 matmul through trl.nd against raw OpenBLAS
-- (bench/sgemm_raw.c, built as trl-bench-sgemm next to trl), medians of REPS runs.
--   trl bench/matmul.lua [REPS]
-- The binding's cost is the difference: output allocation, argument checks, the Lua call.
local trl = require 'trl'
local nd = trl.nd

local reps = tonumber(arg[1]) or 7
local exe_dir = (arg[-1] or 'trl'):match('^(.*)/[^/]*$') or '.'
local raw_exe = exe_dir .. '/trl-bench-sgemm'

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local function time_trl(n)
  local a = nd.random.uniform(0, 1, {n, n})
  local b = nd.random.uniform(0, 1, {n, n})
  local c = a:matmul(b)   -- warm-up
  local times = {}
  for r = 1, reps do
    local t0 = trl.clock()
    c = a:matmul(b)
    times[r] = trl.clock() - t0
  end
  return median(times)
end

local function time_raw(n)
  local p = assert(io.popen(string.format('%q %d %d', raw_exe, n, reps)))
  local out = p:read('a')
  p:close()
  return assert(tonumber(out), 'trl-bench-sgemm failed: ' .. tostring(out))
end

print(string.format('threads: %d   reps: %d (median)   OPENBLAS_CORETYPE=%s', trl.get_num_threads(), reps,
                    os.getenv('OPENBLAS_CORETYPE') or '(unset)'))
print(string.format('%6s  %12s  %12s  %9s', 'n', 'trl GFLOP/s', 'raw GFLOP/s', 'overhead'))
for _, n in ipairs{512, 1024, 2048} do
  local flop = 2.0 * n * n * n
  local tt, tr = time_trl(n), time_raw(n)
  print(string.format('%6d  %12.1f  %12.1f  %8.1f%%', n, flop / tt / 1e9, flop / tr / 1e9, (tt / tr - 1) * 100))
end
