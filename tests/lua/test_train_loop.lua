-- test_train_loop.lua: trl.utils (d2l's train / evaluate_accuracy), trl.freeze, trl.checkpoint
-- and trl.plot on tiny nets and in-memory data: the epoch line, inference mode, both BN
-- freeze policies, lr_mult, JSON lines, exact resume (after an epoch and after a real Ctrl-C
-- in the middle of one), and PNG plots.
local H = require 'helpers'
local test, checkerror, approx = H.test, H.checkerror, H.approx
local trl = require 'trl'
local nd, autograd, gluon = trl.nd, trl.autograd, trl.gluon
local nn = gluon.nn
local utils = require 'trl.utils'
local freeze = require 'trl.freeze'
local checkpoint = require 'trl.checkpoint'
local plot = require 'trl.plot'
local cjson = require 'cjson'

local TMP = H.tmpdir()
local TRL = arg and arg[-1] or 'trl'
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end

-- Three Gaussian blobs in 4-d, labels 0..2; 'n' points per class.
local function blobs(n, seed)
  nd.random.seed(seed)
  local x = nd.random.normal(0, 0.6, {3 * n, 4})
  local off, lab = {}, {}
  local centers = {{2, 0, 0, 1}, {-2, 2, 0, 0}, {0, -2, 2, 0}}
  for c = 1, 3 do
    for _ = 1, n do off[#off + 1] = centers[c]; lab[#lab + 1] = c - 1 end
  end
  return gluon.data.ArrayDataset(x + nd.array(off), lab)
end

local function loaders(seed)
  local train = gluon.data.DataLoader(blobs(20, 1), 8, {shuffle = true, seed = seed or 5})
  local test_ = gluon.data.DataLoader(blobs(10, 2), 16)
  return train, test_
end

-- Dense-BN-ReLU-Dropout-Dense, with a fixed init; Dropout makes resume depend on the RNG.
local function mlp(seed, rate)
  nd.random.seed(seed or 11)
  local net = nn.HybridSequential()
  net:add(nn.Dense(8, {in_units = 4}), nn.BatchNorm{in_channels = 8},
          nn.Activation('relu'), nn.Dropout(rate or 0.3), nn.Dense(3, {in_units = 8}))
  net:initialize(trl.init.Xavier())
  return net
end

local function params_table(net)
  local r = {}
  for i, e in ipairs(net:structural_params()) do
    r[i] = e[2]:data():reshape{-1}:totable()
  end
  return r
end

local LINE = '^epoch %d+, loss %d+%.%d%d%d%d, train acc %d%.%d%d%d, test acc %d%.%d%d%d, '
  .. 'time %d+%.%d sec$'

test('train prints one d2l epoch line per epoch and returns the history', function()
  local train, test_ = loaders()
  local net = mlp()
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.2})
  local lines = {}
  local hist, status = utils.train(train, test_, net, gluon.loss.SoftmaxCrossEntropyLoss(),
    trainer, 'cpu', 3, {print = function(s) lines[#lines + 1] = s end, progress = false})
  assert(status == 'done' and #lines == 3 and #hist == 3)
  for i, l in ipairs(lines) do
    assert(l:match(LINE), 'bad epoch line: ' .. l)
    assert(l:match('^epoch ' .. i .. ','))
    approx(tonumber(l:match('loss ([%d.]+)')), hist[i].loss, 1e-3)
    approx(tonumber(l:match('test acc ([%d.]+)')), hist[i].test_acc, 1e-2)
  end
  assert(hist[3].loss < hist[1].loss, 'the loss goes down')
  assert(hist[3].test_acc >= 0.9, 'blobs are separable: ' .. hist[3].test_acc)
  approx(hist[1].lr, 0.2)
end)

test('the epoch line on stdout; a progress line on stderr only when asked (or a tty)', function()
  local script = TMP .. '/train_lines.lua'
  local f = assert(io.open(script, 'w'))
  f:write([[
local trl = require 'trl'
local gluon, nd = trl.gluon, trl.nd
nd.random.seed(1)
local x = nd.random.normal(0, 1, {32, 4})
local lab = {}
for i = 1, 32 do lab[i] = i % 2 end
local ds = gluon.data.ArrayDataset(x, lab)
local net = gluon.nn.Dense(2, {in_units = 4})
net:initialize()
local tr = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.1})
require('trl.utils').train(gluon.data.DataLoader(ds, 8), gluon.data.DataLoader(ds, 8), net,
  gluon.loss.SoftmaxCrossEntropyLoss(), tr, nil, 2, {progress = arg[1] == 'bar'})
]])
  f:close()
  for _, mode in ipairs{'plain', 'bar'} do
    local out, err = TMP .. '/lines.out', TMP .. '/lines.err'
    assert(os.execute(string.format('%s %s %s >%s 2>%s', q(TRL), q(script), mode, q(out),
                                    q(err))))
    local lines = {}
    for l in slurp(out):gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert(#lines == 2, 'two epoch lines, got: ' .. slurp(out))
    for _, l in ipairs(lines) do assert(l:match(LINE), 'bad epoch line: ' .. l) end
    local e = slurp(err)
    if mode == 'plain' then
      assert(e == '', 'nothing on stderr when it is not a terminal, got: ' .. e)
    else
      assert(e:find('img/s', 1, true) and e:find('ETA', 1, true), 'progress: ' .. e)
      assert(e:sub(-4) == '\r\27[K', 'the progress line is cleared before the epoch line')
    end
  end
end)

-- Records the modes the net runs in.
local Spy = gluon.class('Spy', nn.HybridBlock)
function Spy:__init(inner) nn.HybridBlock.__init(self); self.inner = inner end
function Spy:forward(x)
  rawset(self, 'modes', {autograd.is_recording(), autograd.is_training()})
  return self.inner(x)
end

test('evaluate_accuracy: hand-checked accuracy, inference mode, BN statistics untouched', function()
  -- weight = identity on the first 2 inputs: the prediction is the larger of x[1], x[2]
  local dense = nn.Dense(2, {in_units = 2})
  dense:initialize()
  dense.weight:set_data(nd.array{{1, 0}, {0, 1}})
  local x = nd.array{{1, 0}, {0, 1}, {3, 2}, {0, 5}, {2, 1}}
  local ds = gluon.data.ArrayDataset(x, {0, 1, 1, 1, 0})   -- the 3rd label is wrong
  local spy = Spy(dense)
  approx(utils.evaluate_accuracy(gluon.data.DataLoader(ds, 2), spy), 4 / 5)
  assert(spy.modes[1] == false and spy.modes[2] == false, 'not recording, not training')
  -- even when called inside autograd.record
  autograd.record(function() utils.evaluate_accuracy(gluon.data.DataLoader(ds, 5), spy) end)
  assert(spy.modes[1] == false and spy.modes[2] == false)
  local net = mlp()
  local train = loaders()
  local bn = net[2]
  local before = bn.running_mean:data():totable()
  utils.evaluate_accuracy(train, net)
  approx(bn.running_mean:data():totable(), before, 0)
  approx(utils.accuracy(nd.array{{0.1, 0.9}, {0.8, 0.2}}, nd.array{1, 1}), 0.5)
end)

-- One SGD step on one batch with 'net'; returns copies of every parameter before and after.
local function one_step(net, lr)
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = lr or 0.5})
  local ds = blobs(4, 3)
  local x, y = gluon.data.DataLoader(ds, 12)()
  local before = params_table(net)
  local l = autograd.record(function()
    return gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
  end)
  l:backward()
  trainer:step(12)
  return before, params_table(net)
end

local function changed(a, b)
  for i = 1, #a do if a[i] ~= b[i] then return true end end
  return false
end

-- structural order: 0.weight 0.bias 1.gamma 1.beta 1.running_mean 1.running_var 4.weight 4.bias
test("freeze{bn='frozen'}: no weight moves and BN statistics stay; the head trains", function()
  local net = mlp()
  local features = nn.HybridSequential()   -- a view of the first layers, as net.features
  features:add(net[1], net[2])
  assert(freeze(features, {bn = 'frozen'}) == features and freeze.is_frozen(features))
  assert(net[2]._use_global_stats == true)
  local a, b = one_step(net)
  for i = 1, 6 do approx(b[i], a[i], 0) end
  assert(changed(a[7], b[7]) and changed(a[8], b[8]), 'the output layer trains')
  freeze.unfreeze(features)
  assert(net[2]._use_global_stats == false and net[1].weight.grad_req == 'write')
  assert(net[2].running_mean.grad_req == 'null' and net[2].gamma.grad_req == 'write')
  a, b = one_step(net)
  assert(changed(a[1], b[1]) and changed(a[5], b[5]), 'unfrozen: weights and stats move')
end)

test("freeze{bn='train'} (Gluon's setattr): weights fixed, BN statistics still move", function()
  for _, how in ipairs{'trl', 'gluon'} do
    local net = mlp()
    local features = nn.HybridSequential()
    features:add(net[1], net[2])
    if how == 'trl' then freeze(features, {bn = 'train'})
    else features:collect_params():setattr('grad_req', 'null') end
    assert(net[2]._use_global_stats == false)
    local a, b = one_step(net)
    for i = 1, 4 do approx(b[i], a[i], 0) end
    assert(changed(a[5], b[5]) and changed(a[6], b[6]), how .. ': the trap: statistics moved')
  end
  checkerror("bn must be 'frozen' or 'train'", freeze, nn.Dense(2), {bn = 'yes'})
  checkerror('expected a Block', freeze, {})
end)

test('lr_mult 10 on the output: its step is 10x, the rest is unchanged', function()
  local runs = {}
  for k, mult in ipairs{1, 10} do
    local net = mlp(11, 0)                 -- no dropout: the same forward in both runs
    net[5]:collect_params():setattr('lr_mult', mult)
    local a, b = one_step(net, 0.01)
    runs[k] = {a, b}
  end
  local r1, r10 = runs[1], runs[2]
  for i = 1, 6 do approx(r10[2][i], r1[2][i], 1e-6) end
  for i = 7, 8 do
    for j = 1, #r1[1][i] do
      approx(r10[2][i][j] - r10[1][i][j], 10 * (r1[2][i][j] - r1[1][i][j]), 1e-4)
    end
  end
end)

test('json lines: one object per epoch with epoch, loss, accuracies, time and lr', function()
  local path = TMP .. '/hist.jsonl'
  os.remove(path)
  local train, test_ = loaders()
  local net = mlp()
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.1})
  local hist = utils.train(train, test_, net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer,
    nil, 2, {json = path, label = 'mlp', print = function() end, progress = false})
  local n = 0
  for line in slurp(path):gmatch('[^\n]+') do
    n = n + 1
    local o = cjson.decode(line)
    assert(o.run == 'mlp' and o.epoch == n)
    approx({o.loss, o.train_acc, o.test_acc, o.lr}, {hist[n].loss, hist[n].train_acc,
           hist[n].test_acc, 0.1}, 1e-6)
    assert(o.time > 0)
  end
  assert(n == 2)
end)

-- A fresh run (net, trainer with momentum, loaders) of the same seeds. Name counters restart
-- as in a new process: Trainer:load_states matches states by parameter name.
local function run_setup(init_seed)
  require('trl.gluon.block')._reset_name_counters()
  local net = mlp(init_seed)
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.1,
                                                              momentum = 0.9, wd = 1e-3})
  local train, test_ = loaders(9)
  return net, trainer, train, test_
end
local quiet = {print = function() end, progress = false}
local function with(t, extra)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  for k, v in pairs(extra) do r[k] = v end
  return r
end

test('resume: 1 epoch + checkpoint + 2 resumed epochs == 3 uninterrupted epochs', function()
  local ce = gluon.loss.SoftmaxCrossEntropyLoss()
  local net, trainer, train, test_ = run_setup()
  nd.random.seed(77)
  local full = utils.train(train, test_, net, ce, trainer, nil, 3, quiet)
  local want = params_table(net)

  local dir = TMP .. '/ckpt_resume'
  os.execute('rm -rf ' .. q(dir))
  net, trainer, train, test_ = run_setup()
  nd.random.seed(77)
  utils.train(train, test_, net, ce, trainer, nil, 1, with(quiet, {checkpoint = dir}))
  assert(checkpoint.exists(dir))
  nd.random.seed(12345)                   -- whatever happens in between
  net, trainer, train, test_ = run_setup(99)   -- another init: the checkpoint replaces it
  local state = assert(checkpoint.load(dir, {net = net, trainer = trainer}))
  assert(state.epoch == 1 and #state.history == 1)
  local hist = utils.train(train, test_, net, ce, trainer, nil, 3,
                           with(quiet, {resume = state, checkpoint = dir}))
  approx(params_table(net), want, 0)
  assert(#hist == 3)
  for i = 1, 3 do
    approx({hist[i].loss, hist[i].train_acc, hist[i].test_acc},
           {full[i].loss, full[i].train_acc, full[i].test_acc}, 1e-12)
  end
  -- only the newest files stay
  local files = {}
  for name in require('lfs').dir(dir) do
    if name:sub(1, 1) ~= '.' then files[#files + 1] = name end
  end
  table.sort(files)
  assert(table.concat(files, ' ') == 'model.e3.safetensors state.json trainer.e3.states',
         table.concat(files, ' '))
  local nothing, msg = checkpoint.load(TMP .. '/no_such_ckpt', {net = net})
  assert(nothing == nil and msg:find('no checkpoint in', 1, true))
end)

test('Ctrl-C in the middle of an epoch saves a checkpoint; resuming it is exact', function()
  -- the child runs 3 epochs and sends itself SIGINT during the 4th batch of epoch 2
  local dir = TMP .. '/ckpt_sigint'
  os.execute('rm -rf ' .. q(dir))
  local script = TMP .. '/sigint.lua'
  local f = assert(io.open(script, 'w'))
  f:write(string.format([[
package.path = %q .. '/?.lua;' .. package.path
local setup = dofile(%q)
local pid = io.open('/proc/self/stat'):read('l'):match('^(%%d+)')
local calls = 0
local ce = require('trl').gluon.loss.SoftmaxCrossEntropyLoss()
local function loss(a, b)
  calls = calls + 1
  -- 8 batches per epoch; popen, since os.execute (system) ignores SIGINT while it waits
  if calls == 8 + 4 then io.popen('kill -INT ' .. pid):close() end
  return ce(a, b)
end
local net, trainer, train, test_ = setup()
require('trl').nd.random.seed(77)
local _, status = require('trl.utils').train(train, test_, net, loss, trainer, nil, 3,
  {checkpoint = %q, progress = false})
print('status ' .. status)
]], TMP, TMP .. '/setup.lua', dir))
  f:close()
  -- the child's setup is this file's run_setup, written out
  f = assert(io.open(TMP .. '/setup.lua', 'w'))
  f:write([[
local trl = require 'trl'
local nd, gluon, nn = trl.nd, trl.gluon, trl.gluon.nn
local function blobs(n, seed)
  nd.random.seed(seed)
  local x = nd.random.normal(0, 0.6, {3 * n, 4})
  local off, lab = {}, {}
  local centers = {{2, 0, 0, 1}, {-2, 2, 0, 0}, {0, -2, 2, 0}}
  for c = 1, 3 do for _ = 1, n do off[#off + 1] = centers[c]; lab[#lab + 1] = c - 1 end end
  return gluon.data.ArrayDataset(x + nd.array(off), lab)
end
return function(init_seed)
  require('trl.gluon.block')._reset_name_counters()
  nd.random.seed(init_seed or 11)
  local net = nn.HybridSequential()
  net:add(nn.Dense(8, {in_units = 4}), nn.BatchNorm{in_channels = 8},
          nn.Activation('relu'), nn.Dropout(0.3), nn.Dense(3, {in_units = 8}))
  net:initialize(trl.init.Xavier())
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.1,
                                                              momentum = 0.9, wd = 1e-3})
  local train = gluon.data.DataLoader(blobs(20, 1), 8, {shuffle = true, seed = 9})
  return net, trainer, train, gluon.data.DataLoader(blobs(10, 2), 16)
end
]])
  f:close()
  local out, err = TMP .. '/sigint.out', TMP .. '/sigint.err'
  os.execute(string.format('%s %s >%s 2>%s', q(TRL), q(script), q(out), q(err)))
  local o, e = slurp(out), slurp(err)
  assert(o:find('status interrupted', 1, true), 'stdout: ' .. o .. '\nstderr: ' .. e)
  assert(select(2, o:gsub('\nepoch ', '')) + (o:sub(1, 6) == 'epoch ' and 1 or 0) == 1,
         'one epoch line before the interrupt: ' .. o)
  assert(e:find('interrupted: saved epoch 2, batch 3/8', 1, true), e)

  local ce = gluon.loss.SoftmaxCrossEntropyLoss()
  local net, trainer, train, test_ = run_setup()
  nd.random.seed(77)
  local full = utils.train(train, test_, net, ce, trainer, nil, 3, quiet)
  local want = params_table(net)
  net, trainer, train, test_ = run_setup(5)
  local state = assert(checkpoint.load(dir, {net = net, trainer = trainer}))
  assert(state.epoch == 1 and state.partial.batches == 3)
  local hist = utils.train(train, test_, net, ce, trainer, nil, 3,
                           with(quiet, {resume = state}))
  approx(params_table(net), want, 0)
  for i = 1, 3 do approx(hist[i].loss, full[i].loss, 1e-9) end
end)

test('plot.curves writes a PNG through gnuplot; a missing gnuplot names gnuplot-nox', function()
  local hist = {{epoch = 1, loss = 0.5, train_acc = 0.8, test_acc = 0.85},
                {epoch = 2, loss = 0.3, train_acc = 0.9, test_acc = 0.88}}
  local msg = checkerror('gnuplot-nox', plot.curves, hist, TMP .. '/x.png',
                         {gnuplot = 'no-such-gnuplot-trl'})
  assert(msg:find('not found', 1, true))
  if not os.execute('command -v gnuplot >/dev/null 2>&1') then
    print('SKIP plot.curves: gnuplot is not installed (apt-get install gnuplot-nox)')
    return
  end
  local path = TMP .. '/curves.png'
  os.remove(path)
  assert(plot.curves(hist, path, {title = "it's a test"}) == path)
  assert(slurp(path):sub(1, 8) == '\137PNG\r\n\26\n', 'a PNG file')
  assert(io.open(path .. '.tmp.png') == nil, 'no temporary file left')
  local p2 = TMP .. '/compare.png'
  plot.compare({{'a', hist}, {'b', hist}}, p2, {key = 'loss'})
  assert(slurp(p2):sub(1, 4) == '\137PNG')
  checkerror('non-empty list', plot.curves, {}, path)
end)
