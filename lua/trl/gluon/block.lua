--[[
trl.gluon.block: Block and HybridBlock, the class helper and Gluon's name scopes
(python/mxnet/gluon/block.py, v1.x). Not here: the layers (trl.gluon.nn) and weight files.
  local MyNet = block.class('MyNet', block.HybridBlock)
  function MyNet:__init(opts)
    block.HybridBlock.__init(self, opts)          -- opts.prefix, opts.params as Gluon's kwargs
    self:name_scope(function() self.dense = nn.Dense(2) end)   -- registers child 'dense'
  end
  function MyNet:forward(x) return self.dense(x) end
Assigning a Block (or Parameter) to a field registers it; assigning another Block to the same
field replaces the child in place. Children and parameters are not raw fields, so they are found
through __index and reassignment always goes through __newindex.
]]
local P = require 'trl.gluon.parameter'

local M = {}

--[[ {==================================================================
** Classes
** =================================================================== ]]

-- Metamethods are looked up raw, so each class carries its parent's copies.
local METAMETHODS = {'__index', '__newindex', '__call', '__tostring', '__len', '__pairs',
                     '__concat', '__eq'}

-- class(name, parent): a table of methods that is also the metatable of its instances.
-- Calling it makes an instance and runs cls.__init(instance, ...).
function M.class(name, parent)
  local cls = {__name = name, _class_name = name, super = parent}
  if parent then
    for _, k in ipairs(METAMETHODS) do
      if rawget(parent, k) ~= nil then cls[k] = rawget(parent, k) end
    end
  else
    cls.__index = cls
  end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...)
      local o = setmetatable({}, c)
      local ctor = c.__init
      if ctor then ctor(o, ...) end
      return o
    end,
    __tostring = function(c) return 'class ' .. c._class_name end,
  })
end

-- True when 'cls' is 'base' or derives from it.
function M.is_subclass(cls, base)
  while cls do
    if cls == base then return true end
    cls = rawget(cls, 'super')
  end
  return false
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Name scopes (Gluon's _BlockScope and NameManager)
** =================================================================== ]]

local top_counter = {}      -- NameManager: hint -> next number, for blocks outside any scope
local current = nil         -- the scope being entered (a block's _scope), or nil

-- The prefix and ParameterDict of a new block (_BlockScope.create).
local function scope_create(prefix, params, hint)
  if current == nil then
    if prefix == nil then
      local n = top_counter[hint] or 0
      top_counter[hint] = n + 1
      prefix = hint .. n .. '_'
    end
    if params == nil then params = P.dict(prefix)
    else params = P.dict(params.prefix, params) end
    return prefix, params
  end
  if prefix == nil then
    local n = current.counter[hint] or 0
    current.counter[hint] = n + 1
    prefix = hint .. n .. '_'
  end
  local parent = current.block.params
  if params == nil then params = P.dict(parent.prefix .. prefix, parent._shared)
  else params = P.dict(params.prefix, params) end
  return current.block.prefix .. prefix, params
end

-- Start every hint's top-level count from 0 again (tests; Gluon has no equivalent).
function M._reset_name_counters() top_counter = {} end

--[[ }================================================================== ]]

--[[ {==================================================================
** Block
** =================================================================== ]]

local Block = M.class('Block')
M.Block = Block

local function is_block(v)
  if type(v) ~= 'table' then return false end
  local mt = getmetatable(v)
  return type(mt) == 'table' and mt._is_block == true
end
M.is_block = is_block
Block._is_block = true

-- Block(opts): opts.prefix (nil: hint..count..'_' from the scope; '' adds nothing and opens no
-- scope of its own), opts.params (a ParameterDict to share parameters with).
function Block:__init(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then
    error(string.format("%s: options must be a table (e.g. {prefix='net_'}), got a %s",
                        self._class_name, type(opts)), 3)
  end
  local prefix, params = scope_create(opts.prefix, opts.params, self:_alias())
  rawset(self, '_empty_prefix', opts.prefix == '')
  rawset(self, 'prefix', prefix)
  rawset(self, 'params', params)
  rawset(self, 'name', prefix:sub(-1) == '_' and prefix:sub(1, -2) or prefix)
  rawset(self, '_scope', {block = self, counter = {}})
  rawset(self, '_child_names', {})
  rawset(self, '_children', {})
  rawset(self, '_reg_names', {})
  rawset(self, '_reg_params', {})
end

-- The name hint for prefixes: the lowercased class name unless a layer says otherwise.
function Block:_alias() return self._class_name:lower() end

-- Fields: children, then registered parameters, then integer positions (1-based), then methods.
function Block.__index(self, k)
  local v = rawget(self, '_children')
  if v then
    v = v[k]
    if v ~= nil then return v end
    v = rawget(self, '_reg_params')[k]
    if v ~= nil then return v end
    if math.type(k) == 'integer' then
      local names = rawget(self, '_child_names')
      if k < 0 then k = #names + 1 + k end
      local n = names[k]
      return n and rawget(self, '_children')[n]
    end
  end
  return getmetatable(self)[k]
end

function Block.__newindex(self, k, v)
  if is_block(v) then
    if type(k) ~= 'string' then
      error(string.format("%s: child blocks are set by name, not by %s key", self.name, type(k)), 2)
    end
    self:register_child(v, k)
  elseif P.is_parameter(v) then
    local reg = rawget(self, '_reg_params')
    if reg[k] == nil then
      local names = rawget(self, '_reg_names')
      names[#names + 1] = k
    end
    reg[k] = v
  else
    local c = rawget(self, '_children')
    if c and (c[k] ~= nil or rawget(self, '_reg_params')[k] ~= nil) then
      error(string.format("%s: cannot assign a %s to '%s', which holds a %s", self.name, type(v),
        tostring(k), c[k] ~= nil and 'Block' or 'Parameter'), 2)
    end
    rawset(self, k, v)
  end
end

-- Register 'block' as a child named 'name' (default: its position, counted from "0").
-- An existing name keeps its position and gets the new block.
function Block:register_child(block, name)
  local names, map = self._child_names, self._children
  name = name or tostring(#names)
  if map[name] == nil then names[#names + 1] = name end
  map[name] = block
  return block
end

-- Run fn() with this block's scope entered, so blocks made inside get prefixes under it.
function Block:name_scope(fn)
  if self._empty_prefix then return fn() end
  local old = current
  current = self._scope
  local res = table.pack(pcall(fn))
  current = old
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

function Block.__call(self, ...) return self:forward(...) end

function Block:forward()
  error(string.format("%s '%s' does not define forward", self._class_name, self.name), 2)
end

-- Ordered list of {name, block} children.
function Block:children()
  local r = {}
  for i, n in ipairs(self._child_names) do r[i] = {n, self._children[n]} end
  return r
end

-- Call fn(block) on every descendant (children first) and on self; returns self.
function Block:apply(fn)
  for _, n in ipairs(self._child_names) do self._children[n]:apply(fn) end
  fn(self)
  return self
end

-- This block's and its descendants' parameters, by prefixed name (Gluon's collect_params).
-- 'select' is matched at the start of each name: see trl.gluon.parameter (selector) for the
-- regex subset ('.*weight', 'conv|dense', '^net0_dense0_.*$'), or pass a function(name).
function Block:collect_params(select)
  local keep = P.selector(select)
  local ret = P.dict(self.params.prefix)
  local function walk(b)
    for name, p in b.params:items() do
      if keep(name) then ret:_add(p) end
    end
    for _, n in ipairs(b._child_names) do walk(b._children[n]) end
  end
  walk(self)
  return ret
end

-- Structural names as written by save_parameters: ordered list of {'features.0.weight', p}:
-- own registered parameters first, then each child under its name ("0", "1", ... in a
-- Sequential, the field name otherwise).
function Block:_collect_params_with_prefix(prefix, out)
  out = out or {}
  prefix = prefix or ''
  if prefix ~= '' then prefix = prefix .. '.' end
  for _, k in ipairs(self._reg_names) do out[#out + 1] = {prefix .. k, self._reg_params[k]} end
  for _, n in ipairs(self._child_names) do
    self._children[n]:_collect_params_with_prefix(prefix .. n, out)
  end
  return out
end

function Block:structural_params() return self:_collect_params_with_prefix('') end

-- initialize(init=Uniform(0.07), {force_reinit=false}); returns self.
function Block:initialize(how, opts)
  self:collect_params():initialize(how, opts)
  return self
end

function Block:zero_grad() self:collect_params():zero_grad() end

function Block:hybridize(active, opts)
  if active == nil then active = true end
  for _, n in ipairs(self._child_names) do self._children[n]:hybridize(active, opts) end
end

-- Python's repr of a value, so printouts match Gluon's: True, None, 1e-05, 0.9, (3, 3), (64,).
function M.pyrepr(v)
  if v == nil then return 'None' end
  if v == true then return 'True' end
  if v == false then return 'False' end
  if type(v) == 'table' then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = M.pyrepr(x) end
    return #parts == 1 and '(' .. parts[1] .. ',)' or '(' .. table.concat(parts, ', ') .. ')'
  end
  if math.type(v) == 'integer' then return tostring(v) end
  if type(v) ~= 'number' then return tostring(v) end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
  local s
  for prec = 1, 17 do  -- the shortest form that reads back exactly, as Python's repr
    s = string.format('%.' .. prec .. 'g', v)
    if tonumber(s) == v then break end
  end
  local mant, exp = s:match('^(.-)e([-+]%d+)$')
  if exp then
    local e = tonumber(exp)
    if e >= -4 and e < 16 then s = string.format('%.17f', v):gsub('0+$', '') end
    if mant and (e < -4 or e >= 16) then return s end
  end
  if not s:find('[.e]') then s = s .. '.0' end
  if s:sub(-1) == '.' then s = s .. '0' end
  return s
end

-- Gluon's _indent: indent every line but the first.
local function indent(s, n)
  return (s:gsub('\n', '\n' .. string.rep(' ', n)))
end
M.indent = indent

-- Gluon's Block.__repr__: the class name and each child, nested.
function Block.__tostring(self)
  local lines = {}
  for _, n in ipairs(self._child_names) do
    lines[#lines + 1] = string.format('  (%s): %s', n, indent(tostring(self._children[n]), 2))
  end
  return string.format('%s(\n%s\n)', self._class_name, table.concat(lines, '\n'))
end

--[[ }================================================================== ]]

--[[ {==================================================================
** HybridBlock: a Block that may be hybridized (a flag for now)
** =================================================================== ]]

local HybridBlock = M.class('HybridBlock', Block)
M.HybridBlock = HybridBlock

function HybridBlock:__init(opts)
  Block.__init(self, opts)
  rawset(self, '_active', false)
end

function HybridBlock:hybridize(active, opts)
  if active == nil then active = true end
  rawset(self, '_active', active)
  local pack = rawget(self, '_pack')   -- a Conv2D's prepacked weight (trl.gluon.nn.fused)
  if not active and pack ~= nil then pack:clear() end
  Block.hybridize(self, active, opts)
end

-- The 'F' of hybrid_forward: trl.nd's functions, then trl._nn's (F.relu, F.conv2d, ...).
local F
function M.F()
  if F == nil then
    local nd, ops = require 'trl.nd', require 'trl._nn'
    F = setmetatable({}, {__index = function(_, k)
      local v = nd[k]
      if v == nil then v = ops[k] end
      return v
    end})
  end
  return F
end

-- A HybridBlock may define hybrid_forward(F, x, ...) instead of forward (F: see M.F).
function HybridBlock:forward(...)
  local hf = self.hybrid_forward
  if hf == nil then
    error(string.format("%s '%s' defines neither forward nor hybrid_forward", self._class_name,
                        self.name), 2)
  end
  return hf(self, M.F(), ...)
end

--[[ }================================================================== ]]

return M
