--[[
trl.autograd: recording and training mode, as Gluon's mx.autograd.
  autograd.record(function() loss = net(x) end)   -- records, in training mode
  loss:backward()
Gluon's `with autograd.record():` block becomes a function; its results are returned.
]]
local T = require 'trl._tensor'

local autograd = {}

-- Run fn(...) with recording and training set; restore both even if fn raises.
local function scoped(rec, train, fn, ...)
  local prev_rec, prev_train = T.tape_set(rec, train)
  local res = table.pack(pcall(fn, ...))
  T.tape_set(prev_rec, prev_train)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local train_hooks = {}

-- _on_train(f): f() runs whenever record starts in training mode. trl.gluon.nn.fused frees
-- there what inference has kept (conv packs): a training step's memory comes first.
function autograd._on_train(f) train_hooks[#train_hooks + 1] = f end

-- record(fn, train_mode=true)
function autograd.record(fn, train_mode)
  if train_mode == nil then train_mode = true end
  if train_mode then
    for i = 1, #train_hooks do train_hooks[i]() end
  end
  return scoped(true, train_mode, fn)
end

-- pause(fn, train_mode=false): run fn without recording.
function autograd.pause(fn, train_mode)
  return scoped(false, train_mode or false, fn)
end

function autograd.train_mode(fn) local rec = T.tape_state(); return scoped(rec, true, fn) end
function autograd.predict_mode(fn) local rec = T.tape_state(); return scoped(rec, false, fn) end

function autograd.is_recording() return (T.tape_state()) end
function autograd.is_training() return select(2, T.tape_state()) end

-- backward(heads [, head_grads] [, retain_graph])
function autograd.backward(y, head, retain_graph) return y:backward(head, retain_graph) end

return autograd
