--[[
trl.gluon.nn.fused: what hybridize() means for inference. A hybridized block, called outside
autograd.record and in predict mode, runs
  Conv2D -> BatchNorm -> ReLU / ReLU6   as one conv whose epilogue applies the BatchNorm's
                                        running statistics and the clamp to each chunk of
                                        output while it is in cache (no BN or ReLU pass, no
                                        intermediate tensors; the weights are not modified),
  BatchNorm -> ReLU / ReLU6             as one pass.
While training or recording, a hybridized BatchNorm -> ReLU / ReLU6 is one op that clamps
its output and masks the gradient (lo < y < hi) inside BatchNorm's backward: same outputs and,
for ReLU, the same gradients bit for bit (ReLU6 differs only where its input is exactly 0 or 6).
HybridSequential finds these runs among its children; the zoo's ResNet blocks call
conv_bn_act / bn_act themselves. Anything else (a block that is not hybridized, a layer whose
shapes are not known yet) runs the layers one by one. Folding BN needs no snapshot, so
weights changed after hybridize() are always the ones used.
Every hybridized Conv2D keeps its weight prepacked for inference (a conv pack, trl._nn: GEMM
panels, or the Winograd transform, 4x the weight's size): built on the first inference call,
reused while the weight's storage keeps its stamp (any write through the tensor API, a
Trainer step, set_data or load_parameters moves it, and the next call rebuilds), released
when any net starts training (autograd.record), when the conv runs in training or recording,
or is hybridized off.
A hybridized HybridSequential (and the zoo's blocks) also releases each intermediate tensor as
soon as the next layer has consumed it, in training too (autograd keeps what backward needs):
its memory goes back to the block cache at once instead of when the garbage collector gets to
it, so the next layer reuses it (no fresh pages) and the peak stays near the live working set.
As in Gluon, where a hybridized block's intermediates are symbols, a child that keeps its input
for later sees a released tensor.
]]
local autograd = require 'trl.autograd'

local M = {}

local ops
local function nn_ops()
  ops = ops or require 'trl._nn'
  return ops
end

-- on(block): block is hybridized and this call neither records nor trains.
function M.on(block)
  return rawget(block, '_active') == true and not autograd.is_recording()
    and not autograd.is_training()
end

-- drop(t, keep1, keep2): release tensor t (an intermediate this code made and no longer
-- needs) unless it is one of the keeps (an input or the result).
function M.drop(t, keep1, keep2)
  if t ~= keep1 and t ~= keep2 then t:release() end
end

-- features_output(net, x) = net.output(net.features(x)), the zoo's forward; hybridized, the
-- features' output is released once the classifier has read it.
function M.features_output(net, x)
  local f = net.features(x)
  local y = net.output(f)
  if rawget(net, '_active') == true then M.drop(f, x, y) end
  return y
end

-- The packs that inference has used since training last started (weak: a dead block's pack
-- goes with it).
local used = setmetatable({}, {__mode = 'k'})

-- pack(conv): the conv pack of a hybridized Conv2D, made on first use.
local function pack(conv)
  local p = rawget(conv, '_pack')
  if p == nil then
    p = nn_ops().conv_pack()
    rawset(conv, '_pack', p)
  end
  used[p] = true
  return p
end

-- Training of any net frees every pack (the notebook trains the net from scratch while the
-- fine-tuned one, evaluated last, would still hold 150 MB); inference rebuilds them.
autograd._on_train(function()
  if next(used) == nil then return end
  for p in pairs(used) do p:clear() end
  used = setmetatable({}, {__mode = 'k'})
end)

-- release_pack(conv): free what conv's pack holds (training, or hybridize(false)).
function M.release_pack(conv)
  local p = rawget(conv, '_pack')
  if p ~= nil then p:clear() end
end

-- The clamp [lo, hi] equal to 'act': nil (none), 'relu', an Activation('relu'|'relu6') or
-- the zoo's RELU6 block; nil, nil when it has none.
local function bounds(act)
  if act == nil then return -math.huge, math.huge end
  local t = act == 'relu' and 'relu' or type(act) == 'table' and rawget(act, '_act_type')
  if t == 'relu' then return 0, math.huge end
  if t == 'relu6' or type(act) == 'table' and act._class_name == 'RELU6' then return 0, 6 end
  return nil, nil
end
M.bounds = bounds

-- The tensors of a predict-mode BatchNorm over axis 2 with 'c' channels, or nil.
local function bn_ref(bn, c)
  if bn._class_name ~= 'BatchNorm' or bn._axis ~= 2 or bn.gamma.shape[1] ~= c then return nil end
  return {gamma = not bn._fix_gamma and bn.gamma:data() or nil, beta = bn.beta:data(),
          mean = bn.running_mean:data(), var = bn.running_var:data(), eps = bn._eps}
end

local function apply(act, x)
  if act == nil then return x end
  if act == 'relu' then return x:relu() end
  return act(x)
end

-- act(bn(x)) for a hybridized bn while training or recording: the clamp fused into BatchNorm.
local function bn_clamped(bn, act, x)
  local lo, hi = bounds(act)
  if act ~= nil and lo and rawget(bn, '_active') == true and bn._class_name == 'BatchNorm' then
    return bn:_forward(x, lo, hi)
  end
  return apply(act, bn(x))
end

-- clamp(bn(conv(x)), lo, hi) by trl._nn.conv2d_bn_act with conv's pack; ref is bn_ref's
-- table or nil.
local function packed_conv(conv, ref, lo, hi, x)
  local kw, b = conv._kwargs, conv.bias
  return nn_ops().conv2d_bn_act(x, conv.weight:data(), b and b:data() or nil, ref,
    {stride = kw.stride, pad = kw.pad, dilation = kw.dilate, groups = kw.num_group,
     lo = lo, hi = hi, pack = pack(conv)})
end

-- conv_bn_act(conv, bn, act, x) = act(bn(conv(x))), fused when it can be; bn and act may be
-- nil, act is a block or 'relu'.
function M.conv_bn_act(conv, bn, act, x)
  local lo, hi = bounds(act)
  if lo and M.on(conv) and (bn == nil or M.on(bn)) and conv._class_name == 'Conv2D'
      and conv.act == nil then
    local shape, w, kw = x:shape(), conv.weight, conv._kwargs
    if #shape == 4 and w.shape[2] ~= 0 and w.shape[2] * kw.num_group == shape[2] then
      local ref = bn and bn_ref(bn, w.shape[1])
      if bn == nil or ref then
        return packed_conv(conv, ref, lo, hi, x)
      end
    end
  end
  x = conv(x)
  if bn then return bn_clamped(bn, act, x) end
  return apply(act, x)
end

-- conv_forward(conv, x): a hybridized Conv2D's own forward in an inference call, through its
-- pack (its activation folded in when that is a clamp, else applied after); nil when this is
-- not an inference call. Conv2D:forward has checked the shapes.
function M.conv_forward(conv, x)
  if not M.on(conv) then
    M.release_pack(conv)
    return nil
  end
  local act = conv.act
  local lo, hi = bounds(act)
  local y = packed_conv(conv, nil, lo or -math.huge, hi or math.huge, x)
  if act ~= nil and lo == nil then
    local z = act(y)
    if z ~= y then y:release() end
    return z
  end
  return y
end

-- bn_act(bn, act, x) = act(bn(x)), one pass when it can be.
function M.bn_act(bn, act, x)
  local lo, hi = bounds(act)
  if lo and act ~= nil and M.on(bn) then
    local shape = x:shape()
    local ref = #shape >= 2 and bn_ref(bn, shape[2])
    if ref then return nn_ops().bn_act(x, ref, {lo = lo, hi = hi}) end
  end
  return bn_clamped(bn, act, x)
end

-- The stage table of trl._nn.bottleneck for conv -> bn -> act over input channels 'cin', or
-- nil: conv is a hybridized Conv2D of kernel k (k x k, stride 'stride', pad k // 2, groups 1
-- or, with 'dw', one per channel), no activation of its own, its weight's shape known; bn a
-- hybridized BatchNorm over its channels; act nil or a clamp.
local function stage(conv, bn, act, cin, k, stride, dw)
  local lo, hi = bounds(act)
  if not lo or conv == nil or conv._class_name ~= 'Conv2D' or conv.act ~= nil
      or not M.on(conv) or bn == nil or not M.on(bn) then return nil end
  local kw, ws = conv._kwargs, conv.weight.shape
  local groups = dw and cin or 1
  local function pair(v, want) return v[1] == want and v[2] == want end
  if #ws ~= 4 or ws[2] * groups ~= cin or ws[3] ~= k or ws[4] ~= k or kw.num_group ~= groups
      or (dw and ws[1] ~= cin) or not pair(kw.kernel, k) or not pair(kw.stride, stride)
      or not pair(kw.pad, k // 2) or not pair(kw.dilate, 1) then return nil end
  local ref = bn_ref(bn, ws[1])
  if not ref then return nil end
  local b = conv.bias
  return {w = conv.weight:data(), b = b and b:data() or nil, bn = ref, lo = lo, hi = hi,
          pack = not dw and pack(conv) or nil}
end

-- bottleneck(blocks, x, stride, shortcut): MobileNetV2's LinearBottleneck body (blocks:
-- Conv2D 1x1, BatchNorm, clamp, Conv2D 3x3 depthwise, BatchNorm, clamp, Conv2D 1x1,
-- BatchNorm), plus x with 'shortcut', as one op (trl._nn.bottleneck: the expanded tensors
-- stay in cache); nil when this call is not an inference call or the blocks do not match.
function M.bottleneck(blocks, x, stride, shortcut)
  local shape = x:shape()
  if #blocks ~= 8 or #shape ~= 4 or (stride ~= 1 and stride ~= 2) then return nil end
  local e = stage(blocks[1], blocks[2], blocks[3], shape[2], 1, 1, false)
  local d = e and stage(blocks[4], blocks[5], blocks[6], e.w:shape()[1], 3, stride, true)
  local p = d and stage(blocks[7], blocks[8], nil, e.w:shape()[1], 1, 1, false)
  if not p then return nil end
  return nn_ops().bottleneck(x, {e, d, p}, {stride = stride, residual = shortcut})
end

-- sequential(blocks, x): the children of a hybridized HybridSequential, in order, with the
-- runs above fused.
function M.sequential(blocks, x)
  local input, prev = x, nil
  local i, n = 1, #blocks
  while i <= n do
    local b, nxt = blocks[i], blocks[i + 1]
    local isbn = nxt and nxt._class_name == 'BatchNorm'
    prev = x
    if b._class_name == 'Conv2D' and isbn then
      local act = blocks[i + 2]
      if act and bounds(act) == nil then act = nil end
      x = M.conv_bn_act(b, nxt, act, x)
      i = i + (act and 3 or 2)
    elseif b._class_name == 'Conv2D' and nxt and bounds(nxt) ~= nil then
      x = M.conv_bn_act(b, nil, nxt, x)
      i = i + 2
    elseif b._class_name == 'BatchNorm' and nxt and bounds(nxt) ~= nil then
      x = M.bn_act(b, nxt, x)
      i = i + 2
    else
      x = b(x)
      i = i + 1
    end
    M.drop(prev, input, x)
  end
  return x
end

return M
