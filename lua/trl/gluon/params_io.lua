--[[
trl.gluon.params_io: Block:load_parameters / Block:save_parameters (Gluon 1.x block.py) over
trl._serial: MXNet .params, safetensors and PyTorch .pth files, by content. A file may use any
name style: structural ('features.0.weight', what save_parameters writes), flat
('conv0_weight', Gluon's legacy path: no '.' in any key, the net's prefix is prepended) or
prefixed ('squeezenet0_conv0_weight'), with 'arg:'/'aux:' stripped. Loading is strict and
atomic: every missing, unexpected and shape-mismatched name goes into ONE error and nothing
is set. Requiring this module installs the methods on trl.gluon.block's Block.
]]
local serial = require 'trl._serial'
local block = require 'trl.gluon.block'

local M = {}

local function shape_str(s) return '[' .. table.concat(s, ',') .. ']' end

-- How errors name the net: the zoo name when it has one ('resnet50_v2').
local function net_label(net)
  local z = rawget(net, '_model_name')
  if z then return z end
  return string.format("%s '%s'", net._class_name, net.name)
end

local function check_net(net, fname)
  if not block.is_block(net) then
    error(string.format("%s: expected a Block, got a %s", fname, type(net)), 3)
  end
end

-- Known dims of the parameter agree with the file's shape (0 = not known yet).
local function shape_ok(pshape, fshape)
  if #pshape == 0 then return true end
  if #pshape ~= #fshape then return false end
  for i, d in ipairs(pshape) do
    if d ~= 0 and d ~= fshape[i] then return false end
  end
  return true
end

local function escape(s) return (s:gsub('[%^%$%(%)%%%.%[%]%*%+%-%?]', '%%%0')) end

-- The file's arrays as an ordered list of {name, tensor}: 'arg:'/'aux:' stripped, then
-- opts.name_map (a table old -> new, or a function(name) -> new name, or false to drop it).
local function read_file(path, name_map)
  local tensors, names = serial.load(path)
  if not tensors then error(string.format('load_parameters: %s', names), 4) end
  if #names == 0 and #tensors > 0 then
    error(string.format('load_parameters: %s holds %d unnamed arrays; parameters are matched '
      .. 'by name', path, #tensors), 4)
  end
  local list, seen = {}, {}
  for _, k in ipairs(names) do
    local n = k:gsub('^arg:', ''):gsub('^aux:', '')
    if name_map ~= nil then
      local m
      if type(name_map) == 'function' then m = name_map(n) else m = name_map[n] end
      if m == nil and type(name_map) == 'table' then m = n end
      n = m
    end
    if n then
      if seen[n] then
        error(string.format("load_parameters: %s: the name '%s' occurs twice (from '%s' and "
          .. "'%s')", path, n, seen[n], k), 4)
      end
      seen[n] = k
      list[#list + 1] = {n, tensors[k]}
    end
  end
  return list
end

--[[
match(net, path, opts) -> report: how the file's names meet the net's parameters, without
setting anything. report = {style = 'structural'|'legacy', assign = {{param, tensor, name}},
missing = {names}, unexpected = {names}, mismatched = {{name, file_shape, net_shape}}}.
Missing names are given in the file's style (structural, or the prefixed name minus the net's
prefix for the legacy path).
]]
function M.match(net, path, opts)
  check_net(net, 'load_parameters')
  opts = opts or {}
  local list = read_file(path, opts.name_map)
  local legacy = true
  for _, e in ipairs(list) do
    if e[1]:find('.', 1, true) then legacy = false break end
  end
  if #list == 0 then legacy = false end
  local targets, byname = {}, {}             -- {display name, param} in net order
  local prefix = net.prefix
  if legacy then
    for name, p in net:collect_params():items() do
      local shown = name:sub(1, #prefix) == prefix and name:sub(#prefix + 1) or name
      targets[#targets + 1] = {shown, p, name}
      byname[name] = #targets
    end
  else
    for _, e in ipairs(net:structural_params()) do
      targets[#targets + 1] = {e[1], e[2], e[1]}
      byname[e[1]] = #targets
    end
  end
  -- another instance's prefix ('resnetv21_...' into 'resnetv20_'), as exports write them
  local alias = prefix:match('^(.-)%d+_$')
  local function find(k)
    if not legacy then return byname[k] end
    local i = byname[prefix .. k] or byname[k]
    if i == nil and alias and alias ~= '' then
      local rest = k:match('^' .. escape(alias) .. '%d+_(.+)$')
      if rest then i = byname[prefix .. rest] end
    end
    return i
  end
  local r = {style = legacy and 'legacy' or 'structural', assign = {}, missing = {},
             unexpected = {}, mismatched = {}}
  local taken = {}
  for _, e in ipairs(list) do
    local k, t = e[1], e[2]
    local i = find(k)
    if i == nil or taken[i] then
      r.unexpected[#r.unexpected + 1] = k
    else
      taken[i] = true
      local p = targets[i][2]
      local fs = t:shape()
      if shape_ok(p.shape, fs) then
        r.assign[#r.assign + 1] = {p, t, k}
      else
        r.mismatched[#r.mismatched + 1] = {k, fs, p.shape}
      end
    end
  end
  for i, tg in ipairs(targets) do
    if not taken[i] then r.missing[#r.missing + 1] = tg[1] end
  end
  return r
end

local function name_list(names)
  local n, shown = #names, {}
  for i = 1, math.min(n, 20) do shown[i] = names[i] end
  local s = table.concat(shown, ', ')
  if n > 20 then s = s .. string.format(', ... (%d more)', n - 20) end
  return string.format('(%d) %s', n, s)
end

--[[
load_parameters(net, path, {allow_missing=false, ignore_extra=false, name_map=nil}) -> net.
Raises one error listing every problem; sets the data of every matched parameter (deferred
ones take the file's shape) only when there is none. Tensors of another dtype are cast.
]]
function M.load_parameters(net, path, opts)
  check_net(net, 'load_parameters')
  if type(path) ~= 'string' then
    error("load_parameters: path must be a string, got " .. type(path), 2)
  end
  opts = opts or {}
  if type(opts) ~= 'table' then
    error("load_parameters: options must be a table {allow_missing=, ignore_extra=, "
      .. "name_map=}, got " .. type(opts), 2)
  end
  local r = M.match(net, path, opts)
  local lines = {}
  if #r.missing > 0 and not opts.allow_missing then
    lines[#lines + 1] = '  Missing ' .. name_list(r.missing)
  end
  if #r.unexpected > 0 and not opts.ignore_extra then
    lines[#lines + 1] = '  Unexpected ' .. name_list(r.unexpected)
  end
  if #r.mismatched > 0 then
    local parts = {}
    for i, m in ipairs(r.mismatched) do
      parts[i] = string.format('%s: file %s vs net %s', m[1], shape_str(m[2]), shape_str(m[3]))
    end
    lines[#lines + 1] = '  Shape mismatch ' .. name_list(parts)
  end
  if #lines > 0 then
    local hint = {}
    if #r.missing > 0 and not opts.allow_missing then hint[#hint + 1] = 'allow_missing=true' end
    if #r.unexpected > 0 and not opts.ignore_extra then hint[#hint + 1] = 'ignore_extra=true' end
    error(string.format('Error(s) in loading parameters from %s into %s (%s names):\n%s%s',
      path, net_label(net), r.style, table.concat(lines, '\n'),
      #hint > 0 and '\n  (' .. table.concat(hint, ' or ') .. ' skips those names)' or ''), 2)
  end
  for _, a in ipairs(r.assign) do
    local p, t = a[1], a[2]
    if t:dtype() ~= p.dtype then t = t:astype(p.dtype) end
    p:_load_init(t)
  end
  return net
end

--[[
save_parameters(net, path) -> net: the structural names and tensors, in collect order, as
.params (MXNet NDArray-list V2) or, for a path ending in '.safetensors', as safetensors.
Every parameter must be initialized (Gluon's rule).
]]
function M.save_parameters(net, path)
  check_net(net, 'save_parameters')
  if type(path) ~= 'string' then
    error("save_parameters: path must be a string, got " .. type(path), 2)
  end
  local names, ts, uninit = {}, {}, {}
  for _, e in ipairs(net:structural_params()) do
    local p = e[2]
    -- a deferred parameter whose shape is known now (e.g. a fixed BatchNorm gamma that the
    -- forward never reads) finishes its initialization here, as Gluon's forward would
    local ok, t = pcall(p.data, p)
    if ok then
      names[#names + 1] = e[1]
      ts[#ts + 1] = t
    else
      uninit[#uninit + 1] = string.format('%s (%s %s)', e[1], p.name, shape_str(p.shape))
    end
  end
  if #uninit > 0 then   -- the first few by name: a whole deferred ResNet-18 is 77 of them
    local shown = table.concat(uninit, ', ', 1, math.min(#uninit, 4))
    if #uninit > 4 then shown = shown .. string.format(' and %d more', #uninit - 4) end
    error(string.format('save_parameters: %s into %s: %d parameter(s) not initialized (run '
      .. 'initialize() and a forward, or load weights): %s', net_label(net), path, #uninit,
      shown), 2)
  end
  local ok, err
  if path:match('%.safetensors$') then
    ok, err = serial.save_safetensors(path, names, ts, {format = 'trl', style = 'structural'})
  else
    ok, err = serial.save_params(path, names, ts)
  end
  if not ok then error('save_parameters: ' .. tostring(err), 2) end
  return net
end

--[[ {==================================================================
** Name maps
** =================================================================== ]]

local TV_BN = {weight = 'gamma', bias = 'beta', running_mean = 'running_mean',
               running_var = 'running_var'}
-- torchvision block member -> index in Gluon's 'body' Sequential (V1 blocks)
local TV_BODY = {conv1 = 0, bn1 = 1, conv2 = 3, bn2 = 4, conv3 = 6, bn3 = 7}

--[[
torchvision_resnet(name) -> the Gluon ResNetV1 structural name of a torchvision ResNet
state_dict key, or false for keys with no Gluon counterpart (num_batches_tracked):
  conv1.weight -> features.0.weight          bn1.weight/bias -> features.1.gamma/beta
  layerL.B.convK / bnK -> features.(3+L).B.body.(0,3,6) / body.(1,4,7)
  layerL.B.downsample.0/1 -> features.(3+L).B.downsample.0/1    fc.weight/bias -> output.*
Use it as load_parameters(net, 'resnet18.pth', {name_map = params_io.torchvision_resnet}).
For resnet18/34 (BasicBlock) the nets then compute the same function. torchvision's
Bottleneck (resnet50+) strides its 3x3 conv and has no conv biases, so those names map but
Gluon's bottleneck conv biases stay missing and the function differs (ResNet v1.5 vs v1).
]]
function M.torchvision_resnet(name)
  if name:match('num_batches_tracked$') then return false end
  local leaf = name:match('^conv1%.(weight)$')
  if leaf then return 'features.0.weight' end
  local bn = name:match('^bn1%.([%w_]+)$')
  if bn and TV_BN[bn] then return 'features.1.' .. TV_BN[bn] end
  local fc = name:match('^fc%.(%w+)$')
  if fc then return 'output.' .. fc end
  local l, b, rest = name:match('^layer(%d+)%.(%d+)%.(.+)$')
  if l then
    local stage = 'features.' .. (3 + tonumber(l)) .. '.' .. b .. '.'
    local mod, p = rest:match('^(%w+)%.([%w_]+)$')
    if mod and TV_BODY[mod] then
      if mod:sub(1, 2) == 'bn' then p = TV_BN[p] end
      if p then return stage .. 'body.' .. TV_BODY[mod] .. '.' .. p end
    end
    local di, dp = rest:match('^downsample%.(%d)%.([%w_]+)$')
    if di == '0' then return stage .. 'downsample.0.' .. dp end
    if di == '1' and TV_BN[dp] then return stage .. 'downsample.1.' .. TV_BN[dp] end
  end
  return name
end

--[[ }================================================================== ]]

-- Install as Block methods (Gluon 1.x: load_parameters/save_parameters; load_params and
-- save_params are the deprecated 1.2 names).
local Block = block.Block
Block.load_parameters = M.load_parameters
Block.save_parameters = M.save_parameters
Block.load_params = M.load_parameters
Block.save_params = M.save_parameters

return M
