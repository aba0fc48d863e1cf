-- test_trainer.lua: gluon.Trainer with SGD/NAG/Adam against hand-worked updates (Gluon 1.x
-- formulas), lr_mult/wd_mult, grad_req 'null', learning-rate schedules, and saved states.
local trl = require 'trl'
local nd = trl.nd
local Trainer = require('trl.gluon.trainer').Trainer
local sched = require 'trl.gluon.lr_scheduler'

-- A stand-in Parameter: the Trainer needs name, grad_req, lr_mult, wd_mult and data().
local function param(name, values, grad)
  local t = nd.array(values):attach_grad()
  t.grad:set(nd.array(grad))
  return {name = name, grad_req = 'write', lr_mult = 1, wd_mult = 1, data = function() return t end}
end

test('SGD without momentum: w -= lr*lr_mult*(g/B + wd*wd_mult*w)', function()
  local p = param('w', {1, -2}, {4, 8})
  local tr = Trainer({p}, 'sgd', {learning_rate = 0.1, wd = 0.01})
  tr:step(4)                                  -- g/B = {1, 2}
  approx(p:data():totable(), {1 - 0.1 * (1 + 0.01 * 1), -2 - 0.1 * (2 + 0.01 * -2)}, 1e-6)
  p.lr_mult, p.wd_mult = 10, 0
  tr:step(4)
  local w1 = 1 - 0.1 * (1 + 0.01)
  approx(p:data():totable()[1], w1 - 1.0 * 1, 1e-6)
  approx(tr.learning_rate, 0.1)
end)

test('SGD with momentum: v = m*v - lr*(g/B + wd*w); w += v', function()
  local p = param('w', {1}, {2})
  local tr = Trainer({p}, 'sgd', {learning_rate = 0.5, momentum = 0.9})
  tr:step(2)                                  -- v = -0.5, w = 0.5
  approx(p:data():totable(), {0.5}, 1e-6)
  tr:step(2)                                  -- v = 0.9*-0.5 - 0.5 = -0.95, w = -0.45
  approx(p:data():totable(), {-0.45}, 1e-6)
end)

test("grad_req 'null' is skipped", function()
  local p = param('w', {3}, {100})
  p.grad_req = 'null'
  local tr = Trainer({p}, 'sgd', {learning_rate = 1})
  tr:step(1)
  approx(p:data():totable(), {3})
end)

test('NAG: mom = m*mom + g; w -= lr*(g + m*mom)', function()
  local p = param('w', {1}, {1})
  local tr = Trainer({p}, 'nag', {learning_rate = 0.1, momentum = 0.5})
  tr:step(1)                                  -- mom = 1, w = 1 - 0.1*(1 + 0.5) = 0.85
  approx(p:data():totable(), {0.85}, 1e-6)
  tr:step(1)                                  -- mom = 1.5, w = 0.85 - 0.1*(1 + 0.75) = 0.675
  approx(p:data():totable(), {0.675}, 1e-6)
end)

test('Adam with bias correction', function()
  local p = param('w', {1}, {2})
  local tr = Trainer({p}, 'adam', {learning_rate = 0.01})
  tr:step(1)
  -- t=1: mean = 0.2, var = 0.004, lr_t = 0.01*sqrt(0.001)/0.1; w -= lr_t*mean/(sqrt(var)+eps)
  local lr_t = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
  local w = 1 - lr_t * 0.2 / (math.sqrt(0.004) + 1e-8)
  approx(p:data():totable(), {w}, 1e-6)
  tr:step(1)
  local mean, var = 0.9 * 0.2 + 0.1 * 2, 0.999 * 0.004 + 0.001 * 4
  lr_t = 0.01 * math.sqrt(1 - 0.999 ^ 2) / (1 - 0.9 ^ 2)
  approx(p:data():totable(), {w - lr_t * mean / (math.sqrt(var) + 1e-8)}, 1e-6)
end)

test('unknown optimizer and options are refused', function()
  checkerror("unknown optimizer 'sgdd'", Trainer, {}, 'sgdd')
  checkerror("SGD: unknown option 'momentun'", Trainer, {}, 'sgd', {momentun = 0.9})
end)

test('learning rate schedules', function()
  local f = sched.FactorScheduler(2, {factor = 0.5, base_lr = 1})
  local got = {}
  for n = 1, 6 do got[n] = f(n) end
  approx(got, {1, 1, 0.5, 0.5, 0.25, 0.25})
  local m = sched.MultiFactorScheduler({2, 4}, {factor = 0.1, base_lr = 1})
  got = {}
  for n = 1, 5 do got[n] = m(n) end
  approx(got, {1, 1, 0.1, 0.1, 0.01})
  local c = sched.CosineScheduler(10, {base_lr = 1, final_lr = 0})
  approx(c(0), 1); approx(c(5), 0.5); approx(c(10), 0)
  local p = sched.PolyScheduler(10, {base_lr = 1, pwr = 2})
  approx(p(5), 0.25)
  local w = sched.CosineScheduler(12, {base_lr = 1, warmup_steps = 2, warmup_begin_lr = 0})
  approx(w(1), 0.5); approx(w(2), 1); approx(w(12), 0)
  -- the Trainer reads the schedule at each step
  local q = param('w', {0}, {1})
  local tr = Trainer({q}, 'sgd', {learning_rate = 1, lr_scheduler = sched.FactorScheduler(1, {factor = 0.5})})
  tr:step(1); tr:step(1)                     -- lr 1 then 0.5
  approx(q:data():totable(), {-1.5}, 1e-6)
  checkerror('follows an lr_scheduler', tr.set_learning_rate, tr, 0.1)
end)

test('save_states / load_states continue identically', function()
  local path = require('helpers').tmpdir() .. '/trainer.states'
  local a, b = param('w', {1, 2}, {1, -1}), param('w', {1, 2}, {1, -1})
  local ta = Trainer({a}, 'adam', {learning_rate = 0.1})
  ta:step(1); ta:step(1)
  ta:save_states(path)
  b:data():set(a:data())
  local tb = Trainer({b}, 'adam', {learning_rate = 0.1})
  tb:load_states(path)
  ta:step(1); tb:step(1)
  assert(a:data() == b:data(), 'resumed Adam differs')
  local tc = Trainer({b}, 'sgd', {learning_rate = 0.1})
  checkerror('holds Adam state, this trainer uses SGD', tc.load_states, tc, path)
  -- matched by position: another name still gets its state; another shape is refused
  local renamed = param('other_name', {1, 2}, {1, -1})
  local td = Trainer({renamed}, 'adam', {learning_rate = 0.1})
  td:load_states(path)
  assert(td.optimizer.state[1] and td.optimizer.counts[1] == 2)
  local wrong = param('w', {1, 2, 3}, {1, 1, 1})
  local te = Trainer({wrong}, 'adam', {learning_rate = 0.1})
  checkerror("is [2], parameter 1 ('w') is [3]", te.load_states, te, path)
  os.remove(path)
end)
