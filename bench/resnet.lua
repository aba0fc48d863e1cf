--[[
bench/resnet.lua: ResNet-18 v2 (224x224, 1000 classes) training and inference speed of trl.
  trl bench/resnet.lua [BATCH=32] [MODE=both|train|infer] [REPS=5] [profile|hybrid]
Train: one step is forward + backward + SGD update (gluon.Trainer) under autograd.record.
Infer: forward in predict mode, no recording. Prints medians of REPS steps after 2 warm-up
steps, the peak RSS (VmHWM) and tensor bytes, and with 'profile' a per-layer table: each leaf
layer timed alone on the input shape it saw in the network (forward, and forward + backward).
The net is hybridized, as d2l's train_fine_tuning does (Conv-BN-ReLU fused in inference,
BN-ReLU as one op in training); with 'hybrid', inference runs plain and hybridized
alternately, REPS rounds, and prints both medians and their ratio. Model: the zoo's resnet18_v2, or MODEL=mobilenet_v2 for
mobilenet_v2_1.0.
]]
local trl = require 'trl'
local nd, autograd, gluon = trl.nd, trl.autograd, trl.gluon
local nn = gluon.nn

local B = tonumber(arg[1]) or 32
local mode = arg[2] or 'both'
local reps = tonumber(arg[3]) or 5
local profile = arg[4] == 'profile' or arg[2] == 'profile'
local hybrid = arg[4] == 'hybrid'
if mode == 'profile' then mode = 'both' end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function vm(field)
  local f = io.open('/proc/self/status')
  if not f then return 0 end
  local s = f:read('a')
  f:close()
  return tonumber(s:match(field .. ':%s*(%d+)')) or 0
end

-- Minor page faults of this process so far (field 10 of /proc/self/stat): a step that
-- allocates nothing new after warm-up takes almost none.
local function minflt()
  local f = io.open('/proc/self/stat')
  if not f then return 0 end
  local s = f:read('a')
  f:close()
  local rest = s:match('%) (.*)$') or ''
  local fields = {}
  for w in rest:gmatch('%S+') do fields[#fields + 1] = w end
  return tonumber(fields[8]) or 0
end

local zoo_name = (os.getenv('MODEL') or 'resnet18') == 'mobilenet_v2' and 'mobilenet_v2_1_0'
  or 'resnet18_v2'
local net = gluon.model_zoo.vision[zoo_name]{classes = 1000}
local source = 'trl.gluon.model_zoo.vision.' .. zoo_name
net:initialize(trl.init.Xavier{rnd_type = 'gaussian', magnitude = 2})
nd.random.seed(1)
local x = nd.random.uniform(-1, 1, {B, 3, 224, 224})
local labels = {}
for i = 1, B do labels[i] = (i * 37) % 1000 end
local y = nd.array(labels)
local ce = gluon.loss.SoftmaxCrossEntropyLoss()
local trainer = gluon.Trainer(net:collect_params(), 'sgd',
                              {learning_rate = 0.01, momentum = 0.9, wd = 1e-4})

local function train_step()
  local l
  autograd.record(function() l = ce(net(x), y):sum() end)
  l:backward()
  trainer:step(B)
  return l
end

local function predict() return autograd.predict_mode(function() return net(x) end) end

local infer_step = predict
net:hybridize()

local function bench(step, name)
  for _ = 1, 2 do step() end
  local mem0, flt0 = trl.debug.mem_bytes(), minflt()
  local times = {}
  for r = 1, reps do
    local t0 = trl.clock()
    step()
    times[r] = trl.clock() - t0
  end
  local m = median(times)
  print(string.format('%-6s batch %3d: %7.2f img/s  (median %.3f s, min %.3f s, %d reps)'
    .. '  tensor bytes %+.1f MB after warm-up, %.0f page faults a step', name, B, B / m, m,
    math.min(table.unpack(times)), reps, (trl.debug.mem_bytes() - mem0) / 2^20,
    (minflt() - flt0) / reps))
  return B / m
end

print(string.format('trl %s; threads %d; OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s'
  .. ' OMP_WAIT_POLICY=%s', source, trl.get_num_threads(), os.getenv('OPENBLAS_CORETYPE') or
  '(unset)', os.getenv('OPENBLAS_L2_SIZE') or '(unset)', os.getenv('OMP_WAIT_POLICY') or '(unset)'))
local res = {}
if mode == 'both' or mode == 'train' then res.train = bench(train_step, 'train') end
if (mode == 'both' or mode == 'infer') and not hybrid then
  res.infer = bench(infer_step, 'infer')
end
if (mode == 'both' or mode == 'infer') and hybrid then
  local t = {[false] = {}, [true] = {}}
  for _, h in ipairs{false, true, false, true} do net:hybridize(h); predict() end  -- warm-up
  for r = 1, reps do
    for _, h in ipairs{false, true} do
      net:hybridize(h)
      local t0 = trl.clock()
      predict()
      t[h][r] = trl.clock() - t0
    end
  end
  net:hybridize()
  local p, f = B / median(t[false]), B / median(t[true])
  print(string.format('infer  batch %3d: %7.2f img/s plain, %7.2f img/s hybridized (%.2fx), '
    .. 'alternating, medians of %d', B, p, f, f / p, reps))
  res.infer = f
end
print(string.format('peak RSS (VmHWM) %.0f MB, tensor bytes held %.0f MB',
                    vm('VmHWM') / 1024, trl.debug.mem_bytes() / 2^20))
-- one machine-readable line for bench/vs_torch.sh
print(string.format('RESULT trl batch=%d train=%.3f infer=%.3f hwm_mb=%.0f', B, res.train or 0,
                    res.infer or 0, vm('VmHWM') / 1024))

--[[ {==================================================================
** Per-layer profile
** =================================================================== ]]

if profile then
  local leaves, seen = {}, {}
  local function hook(b)
    if #b._child_names == 0 and not seen[b] then
      seen[b] = true
      local f = b.forward
      rawset(b, 'forward', function(self, inp, ...)
        if not self._prof_shape then
          leaves[#leaves + 1] = self
          rawset(self, '_prof_shape', inp:shape())
        end
        return f(self, inp, ...)
      end)
    end
  end
  net:apply(hook)
  train_step()
  local n = 3
  local rows, tot_f, tot_fb = {}, 0, 0
  for i, layer in ipairs(leaves) do
    local inp = nd.random.uniform(-1, 1, layer._prof_shape)
    inp:attach_grad()
    local out
    local function fwd() autograd.record(function() out = layer(inp) end) end
    local function fb()
      fwd()
      out:backward(nd.ones_like(out))
    end
    fb()
    local tf, tb = {}, {}
    for r = 1, n do
      local t0 = trl.clock(); fwd(); tf[r] = trl.clock() - t0
      t0 = trl.clock(); fb(); tb[r] = trl.clock() - t0
    end
    local s = layer._prof_shape
    rows[#rows + 1] = {name = layer.name, kind = layer._class_name, f = median(tf),
                       fb = median(tb), shape = table.concat(s, 'x'), str = tostring(layer)}
    tot_f, tot_fb = tot_f + median(tf), tot_fb + median(tb)
  end
  local by = {}
  for _, r in ipairs(rows) do
    local k = by[r.kind] or {f = 0, fb = 0, n = 0}
    k.f, k.fb, k.n = k.f + r.f, k.fb + r.fb, k.n + 1
    by[r.kind] = k
  end
  print(string.format('\nper-layer profile (each layer alone, median of %d; the residual adds,'
    .. ' relu calls and the loss/update are not leaves)', n))
  print(string.format('%-14s %4s %10s %10s %6s', 'kind', 'n', 'fwd ms', 'fwd+bwd ms', '%'))
  for k, v in pairs(by) do
    print(string.format('%-14s %4d %10.1f %10.1f %5.1f%%', k, v.n, v.f * 1e3, v.fb * 1e3,
                        100 * v.fb / tot_fb))
  end
  print(string.format('%-14s %4d %10.1f %10.1f', 'total', #rows, tot_f * 1e3, tot_fb * 1e3))
  table.sort(rows, function(a, b) return a.fb > b.fb end)
  print('\nslowest layers:')
  for i = 1, math.min(15, #rows) do
    local r = rows[i]
    print(string.format('%8.1f ms fwd %8.1f ms fwd+bwd  in %-14s %s', r.f * 1e3, r.fb * 1e3,
                        r.shape, r.str:gsub('\n.*', '')))
  end
end

--[[ }================================================================== ]]
