--[[
trl.utils (also trl.d2l): the training-loop helpers of d2l's gluonbook (d2lzh, 2019):
train(train_iter, test_iter, net, loss, trainer, ctx, num_epochs, opts), evaluate_accuracy and
accuracy. train prints d2l's one line per epoch, and adds what a long CPU run needs: a live
progress line on a terminal, JSON lines, per-epoch checkpoints, exact resume and Ctrl-C.
Not here: data loading (trl.gluon.data), plots (trl.plot), checkpoint files (trl.checkpoint).
]]
local autograd = require 'trl.autograd'
local nd = require 'trl.nd'
local T = require 'trl._tensor'

local M = {}

--[[ {==================================================================
** Accuracy
** =================================================================== ]]

-- The batches of 'it': a DataLoader (its :iter(), which stops the epoch when the loop is
-- left early) or anything the generic for accepts.
local function batches(it)
  if type(it) == 'table' and type(it.iter) == 'function' then return it:iter() end
  return it
end

-- Number of correct predictions: argmax over dim 2 of y_hat (N, classes) equal to y (N).
function M.correct(y_hat, y)
  return y_hat:argmax(2):astype('float32'):eq(y:astype('float32')):astype('float32')
    :sum():asscalar()
end

-- accuracy(y_hat, y) -> fraction of correct predictions in one batch.
function M.accuracy(y_hat, y) return M.correct(y_hat, y) / y:shape()[1] end

-- evaluate_accuracy(data_iter, net [, ctx]) -> accuracy over every batch, computed in
-- inference mode (not recording, training false: BatchNorm uses its running statistics,
-- Dropout is off).
function M.evaluate_accuracy(data_iter, net)
  return autograd.pause(function()
    local acc, n = 0, 0
    for x, y in batches(data_iter) do
      acc = acc + M.correct(net(x), y)
      n = n + y:shape()[1]
    end
    if n == 0 then error('evaluate_accuracy: the data iterator gave no batches', 3) end
    return acc / n
  end, false)
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Progress line (stderr, terminals only)
** =================================================================== ]]

local tty_cache
-- True when stderr is a terminal (asked once; the shell's 'test -t' sees our descriptors).
function M.stderr_is_tty()
  if tty_cache == nil then tty_cache = os.execute('test -t 2') == true end
  return tty_cache
end

local function fmt_secs(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format('%d:%02d:%02d', s // 3600, s // 60 % 60, s % 60) end
  return string.format('%d:%02d', s // 60, s % 60)
end

local Progress = {}
Progress.__index = Progress

local function progress(enabled, total)
  return setmetatable({on = enabled, total = total, last = -1, drawn = false}, Progress)
end

-- Redraw (at most 10 times a second): batch i of total, images/s, ETA, running loss.
function Progress:update(epoch, i, images, elapsed, loss)
  if not self.on then return end
  local now = T.clock()
  if now - self.last < 0.1 and i ~= self.total then return end
  self.last = now
  local rate = elapsed > 0 and images / elapsed or 0
  local eta = ''
  if self.total and i > 0 then eta = ', ETA ' .. fmt_secs(elapsed / i * (self.total - i)) end
  io.stderr:write(string.format('\r\27[Kepoch %d: batch %d%s, %.1f img/s%s, loss %.4f', epoch,
                                i, self.total and '/' .. self.total or '', rate, eta, loss))
  io.stderr:flush()
  self.drawn = true
end

function Progress:clear()
  if self.drawn then
    io.stderr:write('\r\27[K')
    io.stderr:flush()
    self.drawn = false
  end
end

--[[ }================================================================== ]]

--[[ {==================================================================
** train
** =================================================================== ]]

-- Make the loader's next epoch the 0-based epoch 'e0' (its shuffle and augmentation depend
-- on (seed, epoch)), so a resumed run sees the same batches as an uninterrupted one.
local function set_loader_epoch(it, e0)
  if type(it) ~= 'table' then return end
  if type(it.set_epoch) == 'function' then it:set_epoch(e0) end
end

local function nbatches(it)
  if type(it) == 'table' then
    local mt = getmetatable(it)
    if mt and mt.__len then return #it end
  end
  return nil
end

local function json_line(path, rec, label)
  local f, err = io.open(path, 'a')
  if not f then error('train: cannot open ' .. path .. ': ' .. tostring(err), 3) end
  local run = label and string.format('"run": %s, ', require('cjson').encode(label)) or ''
  f:write(string.format('{%s"epoch": %d, "loss": %.9g, "train_acc": %.9g, "test_acc": %.9g, '
    .. '"time": %.3f, "lr": %.9g}\n', run, rec.epoch, rec.loss, rec.train_acc, rec.test_acc,
    rec.time, rec.lr))
  f:close()
end

-- The running statistics of every BatchNorm in 'net': a training-mode forward updates them in
-- place, so a Ctrl-C checkpoint must put them back to where the last whole batch left them.
local function bn_stats(net)
  local bn = require('trl.gluon.nn').BatchNorm
  local is_sub = require('trl.gluon.block').is_subclass
  local list = {}
  if type(net) == 'table' and type(net.apply) == 'function' then
    net:apply(function(b)
      if is_sub(getmetatable(b), bn) then
        list[#list + 1] = b.running_mean
        list[#list + 1] = b.running_var
      end
    end)
  end
  return list
end

-- Copies of the initialized ones among 'params' (nil for the others).
local function snapshot(params)
  local s = {}
  for i, p in ipairs(params) do s[i] = p:is_initialized() and p:data():copy() or false end
  return s
end

-- Put a snapshot back; false when some parameter was not initialized when it was taken.
local function restore(params, snap)
  for i, p in ipairs(params) do
    if not snap[i] then return false end
    p:data():set(snap[i])
  end
  return true
end

local function is_interrupt(err)
  return type(err) == 'string' and err:find('interrupted', 1, true) ~= nil
end

--[[
train(train_iter, test_iter, net, loss, trainer, ctx, num_epochs [, opts]) -> history, status
Each epoch prints, as d2l's gb.train:
  epoch 1, loss 0.3033, train acc 0.898, test acc 0.917, time 12.5 sec
loss is the mean per-example training loss, train acc the accuracy on the (augmented)
training batches in training mode, test acc evaluate_accuracy(test_iter, net), and time the
epoch's wall clock including the test pass. 'ctx' is accepted for d2l's signature and ignored.
opts:
  json=path        append one JSON object per epoch (epoch, loss, train_acc, test_acc, time,
                   lr; plus "run" when opts.label is set)
  checkpoint=dir   save a checkpoint (trl.checkpoint) after every epoch; Ctrl-C then saves
                   the run so far and returns status 'interrupted' instead of raising
  on_epoch=fn      fn(record, history) after each epoch; returning false stops training
  start_epoch=k    begin at epoch k (1-based); the data loader is set to the same epoch
  resume=state     what checkpoint.load returned: continue exactly where it stopped
  progress=bool    the live line on stderr (default: when stderr is a terminal)
  label=string     name of the run (JSON lines, messages)
  print=fn         where epoch lines go (default print)
history is the list of epoch records {epoch=, loss=, train_acc=, test_acc=, time=, lr=};
status is 'done', 'stopped' (on_epoch returned false) or 'interrupted'.
]]
function M.train(train_iter, test_iter, net, loss, trainer, ctx, num_epochs, opts)
  opts = opts or {}
  local out = opts.print or print
  local resume = opts.resume
  local history, partial = {}, nil
  local start = opts.start_epoch or 1
  if resume then
    for i, r in ipairs(resume.history or {}) do history[i] = r end
    start = (resume.epoch or 0) + 1
    partial = resume.partial
  end
  if math.type(start) ~= 'integer' or start < 1 then
    error('train: start_epoch must be an integer >= 1, got ' .. tostring(start), 2)
  end
  local total = nbatches(train_iter)
  local show = opts.progress
  if show == nil then show = M.stderr_is_tty() end
  local status = 'done'
  local stats = opts.checkpoint and bn_stats(net) or {}

  for epoch = start, num_epochs do
    set_loader_epoch(train_iter, epoch - 1)
    -- 'c' holds what a Ctrl-C checkpoint needs: the counters after the last whole batch
    local c = {batches = 0, loss_sum = 0, acc_sum = 0, n = 0, m = 0, elapsed = 0}
    local skip = 0
    if partial and partial.epoch == epoch then
      for k in pairs(c) do c[k] = partial[k] or 0 end
      skip = c.batches
    end
    partial = nil
    -- the state after the last whole batch: generator, BN statistics, counters 'c'
    local rng_at, stats_at = nd.random.get_state(), snapshot(stats)
    local in_update = false                 -- between the first parameter write and 'c'
    local t0 = T.clock() - c.elapsed
    local bar = progress(show, total)
    local test_acc

    local ok, err = pcall(function()
      local seen = 0
      if total and skip >= total then goto test end    -- stopped during the test pass
      for x, y in batches(train_iter) do
        seen = seen + 1
        if seen > skip then
          local l, y_hat = autograd.record(function()
            local yh = net(x)
            return loss(yh, y), yh
          end)
          l:backward()
          local bs = y:shape()[1]
          local lsum, acc = l:sum():asscalar(), M.correct(y_hat, y)
          in_update = true
          trainer:step(bs)
          c.loss_sum, c.acc_sum = c.loss_sum + lsum, c.acc_sum + acc
          c.n, c.m = c.n + l:numel(), c.m + bs
          c.batches = c.batches + 1
          rng_at = nd.random.get_state()
          if #stats > 0 then stats_at = snapshot(stats) end
          in_update = false
          bar:update(epoch, c.batches, c.m, T.clock() - t0, c.loss_sum / c.n)
        end
      end
      ::test::
      test_acc = M.evaluate_accuracy(test_iter, net)
    end)
    bar:clear()

    if not ok then
      if not (is_interrupt(err) and opts.checkpoint) then error(err, 0) end
      if type(train_iter) == 'table' and train_iter.stop then train_iter:stop() end
      local ck = require 'trl.checkpoint'
      if in_update or not restore(stats, stats_at) then
        -- stopped inside an update (or before the first BN statistics existed): the state is
        -- not that of a whole batch, so the last epoch's checkpoint stays the one to resume
        io.stderr:write(string.format('interrupted in epoch %d at a point that cannot be saved '
          .. 'exactly; %s keeps the end of epoch %d\n', epoch, opts.checkpoint, epoch - 1))
      else
        c.epoch, c.elapsed = epoch, T.clock() - t0
        ck.save(opts.checkpoint, {net = net, trainer = trainer, epoch = epoch - 1, rng = rng_at,
                                  history = history, partial = c})
        io.stderr:write(string.format('interrupted: saved epoch %d, batch %d%s to %s; resume '
          .. 'from there to continue\n', epoch, c.batches, total and '/' .. total or '',
          opts.checkpoint))
      end
      return history, 'interrupted'
    end

    if c.n == 0 then error('train: the training iterator gave no batches', 2) end
    local rec = {epoch = epoch, loss = c.loss_sum / c.n, train_acc = c.acc_sum / c.m,
                 test_acc = test_acc, time = T.clock() - t0, lr = trainer.learning_rate}
    history[#history + 1] = rec
    out(string.format('epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec',
                      epoch, rec.loss, rec.train_acc, rec.test_acc, rec.time))
    io.stdout:flush()
    if opts.json then json_line(opts.json, rec, opts.label) end
    if opts.checkpoint then
      require('trl.checkpoint').save(opts.checkpoint, {net = net, trainer = trainer,
        epoch = epoch, history = history})
    end
    if opts.on_epoch and opts.on_epoch(rec, history) == false then
      status = 'stopped'
      break
    end
  end
  return history, status
end

--[[ }================================================================== ]]

return M
