--[[
trl.gluon.Trainer: applies an optimizer to a set of Parameters, as Gluon 1.x's Trainer.
  local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate=0.1, wd=1e-3})
  trainer:step(batch_size)     -- gradients are rescaled by 1/batch_size
Parameters with grad_req 'null' are skipped. lr_mult/wd_mult are read at every step, so
`params:setattr('lr_mult', 10)` takes effect at once. Gluon also raises on a "stale" gradient
(one no backward touched since the last step); trl does not track that and updates anyway.
]]
local optimizer = require 'trl.gluon.optimizer'

local M = {}
local Trainer = {__name = 'Trainer'}

-- Accepts a ParameterDict (with :items()), a list of Parameters or a name -> Parameter table.
local function param_list(params)
  local list = {}
  if type(params) == 'table' and params.items then
    for _, p in params:items() do list[#list + 1] = p end
  elseif type(params) == 'table' and params[1] ~= nil then
    for i, p in ipairs(params) do list[i] = p end
  elseif type(params) == 'table' then
    local names = {}
    for k in pairs(params) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do list[#list + 1] = params[k] end
  else
    error('Trainer: params must be a ParameterDict or a list of Parameters, got ' .. type(params), 3)
  end
  for i, p in ipairs(list) do
    if type(p) ~= 'table' or type(p.data) ~= 'function' then
      error(string.format('Trainer: item %d is not a Parameter', i), 3)
    end
  end
  return list
end

function M.new(params, opt, optimizer_params, opts)
  opts = opts or {}
  local self = setmetatable({}, Trainer)
  self._params = param_list(params)
  if type(opt) == 'string' then
    opt = optimizer.create(opt, optimizer_params)
  elseif optimizer_params ~= nil then
    error('Trainer: optimizer_params must be nil when an optimizer object is given', 2)
  end
  self._optimizer = opt
  self._scale = opts.scale or 1   -- Gluon's rescale_grad before division by batch size
  return self
end

function Trainer.__index(self, k)
  if k == 'learning_rate' then return self._optimizer:current_lr() end
  if k == 'optimizer' then return self._optimizer end
  return Trainer[k]
end

function Trainer:set_learning_rate(lr) self._optimizer:set_learning_rate(lr) end

-- One update of every trainable parameter with gradients rescaled by 1/batch_size.
function Trainer:step(batch_size)
  assert(type(batch_size) == 'number' and batch_size > 0, 'Trainer:step: batch_size must be a positive number')
  local opt = self._optimizer
  opt.rescale_grad = self._scale / batch_size
  for i, p in ipairs(self._params) do
    if p.grad_req ~= 'null' then
      local w = p:data()
      local g = w.grad
      if g == nil then
        error(string.format("Trainer:step: Parameter '%s' has no gradient buffer", p.name), 2)
      end
      opt:update(i, w, g, p.lr_mult or 1, p.wd_mult or 1)
    end
  end
end

-- Gluon's allreduce_grads + update: with one device, update alone is step without the rescale.
function Trainer:update(batch_size) return self:step(batch_size) end

--[[ {==================================================================
** States: counts, learning rate and every state tensor, in one safetensors file.
** States are matched to parameters by position, as Gluon does, so a net rebuilt with other
** name prefixes still gets its momentum back; shapes are checked.
** =================================================================== ]]

function Trainer:save_states(path)
  local S = require 'trl._serial'
  local opt = self._optimizer
  local names, tensors, counts, pnames = {}, {}, {}, {}
  for i, p in ipairs(self._params) do
    counts[i] = string.format('%d', opt.counts[i] or 0)
    pnames[i] = p.name
    local st = opt.state[i]
    if st then
      local keys = {}
      for k in pairs(st) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        names[#names + 1] = string.format('%d.%s', i, k)
        tensors[#tensors + 1] = st[k]
      end
    end
  end
  local meta = {
    format = 'trl.trainer.v1', optimizer = opt.__name, num_update = tostring(opt.num_update),
    learning_rate = string.format('%.17g', opt.learning_rate), counts = table.concat(counts, ','),
    params = table.concat(pnames, ','),
  }
  local ok, err = S.save_safetensors(path, names, tensors, meta)
  if not ok then error('Trainer:save_states: ' .. err, 2) end
end

function Trainer:load_states(path)
  local S = require 'trl._serial'
  local tensors, err, meta = S.load_safetensors(path)
  if not tensors then error('Trainer:load_states: ' .. tostring(err), 2) end
  local opt = self._optimizer
  if not meta or meta.format ~= 'trl.trainer.v1' then
    error('Trainer:load_states: ' .. path .. ' is not a trl trainer state file', 2)
  end
  if meta.optimizer ~= opt.__name then
    error(string.format('Trainer:load_states: %s holds %s state, this trainer uses %s', path,
                        tostring(meta.optimizer), opt.__name), 2)
  end
  local counts = {}
  for c in (meta.counts or ''):gmatch('[^,]+') do counts[#counts + 1] = tonumber(c) end
  if #counts ~= #self._params then
    error(string.format('Trainer:load_states: %s has states for %d parameters, this trainer has %d',
                        path, #counts, #self._params), 2)
  end
  local states = {}
  for name, t in pairs(tensors) do
    local i, k = name:match('^(%d+)%.(.+)$')
    i = tonumber(i)
    if i == nil or self._params[i] == nil then
      error(string.format("Trainer:load_states: %s: unexpected entry '%s'", path, name), 2)
    end
    local want, got = self._params[i]:data():shape(), t:shape()
    if table.concat(want, ',') ~= table.concat(got, ',') then
      error(string.format("Trainer:load_states: %s: state '%s' is [%s], parameter %d ('%s') is [%s]",
                          path, name, table.concat(got, ','), i, self._params[i].name,
                          table.concat(want, ',')), 2)
    end
    states[i] = states[i] or {}
    states[i][k] = t
  end
  opt.num_update = tonumber(meta.num_update) or 0
  if not opt.lr_scheduler then opt.learning_rate = tonumber(meta.learning_rate) or opt.learning_rate end
  for i = 1, #self._params do
    opt.counts[i] = counts[i] > 0 and counts[i] or nil
    opt.state[i] = states[i]
  end
end

--[[ }================================================================== ]]

setmetatable(Trainer, {__call = function(_, ...) return M.new(...) end})
M.Trainer = Trainer
return M
