--[[
trl.checkpoint: save and restore a training run in a directory, so that a resumed run gives
the same numbers as one that was never stopped. A checkpoint is three files:
  model.<tag>.safetensors  the net's parameters by structural name (BN statistics included)
  trainer.<tag>.states     the Trainer's optimizer state (Trainer:save_states)
  state.json               epoch, the nd.random generator state, history, partial-epoch
                           counters, and the names of the two files above
<tag> is e<epoch>[b<batch>]. Each file is written to a temporary name and renamed into place;
state.json is renamed last and is the commit point, and the previous files are removed only
after it: a crash or Ctrl-C at any moment leaves a complete, consistent checkpoint.
Not here: the data order, which the DataLoader derives from (seed, epoch) by itself.
]]
local cjson = require 'cjson'
local nd = require 'trl.nd'

local M = {}

local FORMAT = 'trl.checkpoint.v1'
local read_state

local function tohex(s)
  return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
end

local function fromhex(h)
  if type(h) ~= 'string' or #h % 2 ~= 0 or h:find('[^%x]') then return nil end
  return (h:gsub('%x%x', function(x) return string.char(tonumber(x, 16)) end))
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- Rename 'tmp' over 'path' (atomic on POSIX); removes 'tmp' and raises on failure.
local function commit(tmp, path)
  local ok, err = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    error('checkpoint: cannot rename ' .. tmp .. ' to ' .. path .. ': ' .. tostring(err), 3)
  end
end

-- Write 'text' to 'path' atomically.
local function write_file(path, text)
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'wb')
  if not f then error('checkpoint: cannot write ' .. tmp .. ': ' .. tostring(err), 3) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error('checkpoint: cannot write ' .. tmp .. ': ' .. tostring(werr or cerr), 3)
  end
  commit(tmp, path)
end
M.write_file = write_file

--[[ {==================================================================
** The model file
** =================================================================== ]]

-- Structural name -> Parameter, in order (what save_parameters writes).
local function structural(net)
  if type(net.structural_params) ~= 'function' then
    error('checkpoint: net must be a Block (with structural_params), got a ' .. type(net), 3)
  end
  return net:structural_params()
end

-- Save the net's parameters to 'path' (safetensors). Uses net:save_parameters when the
-- net has it; otherwise writes the structural names through trl._serial.
local function save_model(net, path, tag)
  local tmp = path:gsub('%.safetensors$', '') .. '.tmp.safetensors'
  if type(net.save_parameters) == 'function' and type(net.load_parameters) == 'function' then
    net:save_parameters(tmp)
  else
    local S = require 'trl._serial'
    local names, tensors = {}, {}
    for i, e in ipairs(structural(net)) do
      local p = e[2]
      if not p:is_initialized() then
        error(string.format("checkpoint: parameter '%s' (%s) is not initialized yet; run a "
          .. "forward pass before saving", e[1], p.name), 3)
      end
      names[i], tensors[i] = e[1], p:data()
    end
    local ok, err = S.save_safetensors(tmp, names, tensors, {format = FORMAT, tag = tag})
    if not ok then
      os.remove(tmp)
      error('checkpoint: ' .. tostring(err), 3)
    end
  end
  commit(tmp, path)
end

-- Load 'path' into the net; returns true or nil, msg.
local function load_model(net, path)
  if type(net.save_parameters) == 'function' and type(net.load_parameters) == 'function' then
    local ok, err = pcall(net.load_parameters, net, path)
    if not ok then return nil, tostring(err) end
    return true
  end
  local S = require 'trl._serial'
  local tensors, err = S.load_safetensors(path)
  if not tensors then return nil, tostring(err) end
  local list = structural(net)
  local seen = {}
  for _, e in ipairs(list) do
    local name, p = e[1], e[2]
    local t = tensors[name]
    if t == nil then
      return nil, string.format("%s has no parameter '%s'", path, name)
    end
    local ok, serr = pcall(p._load_init, p, t)
    if not ok then return nil, string.format('%s: %s', path, tostring(serr)) end
    seen[name] = true
  end
  for name in pairs(tensors) do
    if not seen[name] then
      return nil, string.format("%s holds '%s', which the net does not have", path, name)
    end
  end
  return true
end

--[[ }================================================================== ]]

--[[
save(dir, {net=, trainer=, epoch=, rng=true, history=, partial=, extra=}) -> dir
  epoch     the last COMPLETE epoch (0 before the first)
  rng       true: the current nd.random state; a string: that state (a snapshot); false: none
  history   list of per-epoch records (utils.train's), kept for plots after a resume
  partial   nil, or the counters of an epoch stopped part-way (utils.train fills it)
  extra     any JSON-able table, returned by load as state.extra
]]
function M.save(dir, o)
  if type(dir) ~= 'string' then error('checkpoint.save: dir must be a path string', 2) end
  if type(o) ~= 'table' or o.net == nil then
    error('checkpoint.save: expected {net=, trainer=, epoch=, ...}', 2)
  end
  local epoch = o.epoch or 0
  if math.type(epoch) ~= 'integer' or epoch < 0 then
    error('checkpoint.save: epoch must be an integer >= 0, got ' .. tostring(epoch), 2)
  end
  local ok, err = require('trl._io').makedirs(dir)
  if not ok then error('checkpoint.save: cannot create ' .. dir .. ': ' .. tostring(err), 2) end
  local old = read_state(dir)
  local tag = string.format('e%d', epoch)
  if o.partial then tag = tag .. string.format('b%d', o.partial.batches or 0) end
  local files = {model = 'model.' .. tag .. '.safetensors'}
  save_model(o.net, dir .. '/' .. files.model, tag)
  if o.trainer then
    files.trainer = 'trainer.' .. tag .. '.states'
    local tmp = dir .. '/trainer.tmp.states'
    local sok, serr = pcall(o.trainer.save_states, o.trainer, tmp)
    if not sok then
      os.remove(tmp)
      error('checkpoint.save: ' .. tostring(serr), 2)
    end
    commit(tmp, dir .. '/' .. files.trainer)
  end
  local rng = o.rng
  if rng == nil or rng == true then rng = nd.random.get_state() end
  local state = {
    format = FORMAT, tag = tag, epoch = epoch, model = files.model, trainer = files.trainer,
    rng = rng and tohex(rng) or nil, history = o.history or {}, partial = o.partial,
    extra = o.extra,
  }
  if #state.history == 0 then state.history = cjson.empty_array end
  write_file(dir .. '/state.json', cjson.encode(state) .. '\n')   -- the commit point
  if old then
    for _, k in ipairs{'model', 'trainer'} do
      local f = old[k]
      if type(f) == 'string' and f ~= files[k] and not f:find('/', 1, true) then
        os.remove(dir .. '/' .. f)
      end
    end
  end
  return dir
end

-- The decoded state.json of 'dir', or nil, msg.
function read_state(dir)
  local path = dir .. '/state.json'
  local f = io.open(path, 'rb')
  if not f then return nil, string.format('no checkpoint in %s (%s is missing)', dir, path) end
  local text = f:read('a')
  f:close()
  local ok, state = pcall(cjson.decode, text)
  if not ok or type(state) ~= 'table' or state.format ~= FORMAT then
    return nil, path .. ' is not a trl checkpoint state (' .. FORMAT .. ')'
  end
  for k, v in pairs(state) do if v == cjson.null then state[k] = nil end end
  -- JSON numbers come back as floats: counters are integers again
  state.epoch = math.tointeger(state.epoch) or state.epoch
  for _, t in ipairs{state.partial or {}, table.unpack(state.history or {})} do
    for _, k in ipairs{'epoch', 'batches', 'n', 'm'} do
      if t[k] ~= nil then t[k] = math.tointeger(t[k]) or t[k] end
    end
  end
  return state
end

-- exists(dir) -> true when dir holds a checkpoint (a state.json).
function M.exists(dir) return exists(dir .. '/state.json') end

--[[
load(dir, {net=, trainer=, rng=true}) -> state, or nil, msg when there is no usable
checkpoint. Restores the net's parameters, the trainer's states and (unless rng=false) the
nd.random generator. state = {epoch=, history=, partial=, extra=}; resume at state.epoch + 1
(utils.train does this given opts.resume = state).
]]
function M.load(dir, o)
  o = o or {}
  local state, err = read_state(dir)
  if not state then return nil, err end
  local path = dir .. '/state.json'
  if o.net then
    local mok, merr = load_model(o.net, dir .. '/' .. tostring(state.model))
    if not mok then return nil, 'checkpoint: ' .. merr end
  end
  if o.trainer then
    if not state.trainer or not exists(dir .. '/' .. state.trainer) then
      return nil, 'checkpoint: ' .. dir .. ' has no trainer states'
    end
    local tok, terr = pcall(o.trainer.load_states, o.trainer, dir .. '/' .. state.trainer)
    if not tok then return nil, 'checkpoint: ' .. tostring(terr) end
  end
  if o.rng ~= false and state.rng then
    local s = fromhex(state.rng)
    if not s then return nil, path .. ': bad generator state' end
    nd.random.set_state(s)
  end
  state.history = state.history or {}
  return state
end

return M
