--[[
trl.gluon.parameter: Parameter and ParameterDict, as Gluon 1.x (python/mxnet/gluon/parameter.py).
A Parameter owns ONE tensor for its whole life: set_data copies into it, so views and optimizer
references stay valid. A shape may hold 0 (unknown) until the owning layer sees its first input
(deferred initialization). One device only: there is no ctx and no list of copies.
]]
local nd = require 'trl.nd'
local init = require 'trl.initializer'

local M = {}

local function shape_str(shape) return '[' .. table.concat(shape, ',') .. ']' end

-- Python's tuple repr: (10, 0), (64,), ()
local function tuple_str(shape)
  if #shape == 1 then return '(' .. shape[1] .. ',)' end
  return '(' .. table.concat(shape, ', ') .. ')'
end
M.tuple_str = tuple_str

local function known(shape)
  if shape == nil or #shape == 0 then return false end
  for _, d in ipairs(shape) do if d <= 0 then return false end end
  return true
end

local GRAD_REQS = {write = true, add = true, null = true}

local function check_req(req, name)
  if not GRAD_REQS[req] then
    error(string.format("Parameter '%s': grad_req must be 'write', 'add' or 'null', got %s",
                        name, tostring(req)), 3)
  end
end

--[[ {==================================================================
** Parameter
** =================================================================== ]]

local Parameter = {}
Parameter.__name = 'Parameter'
M.Parameter = Parameter

-- 'grad_req' is a property: setting it updates the tensor, so it is never a raw field.
function Parameter.__index(self, k)
  if k == 'grad_req' then return rawget(self, '_grad_req') end
  return Parameter[k]
end

function Parameter.__newindex(self, k, v)
  if k == 'grad_req' then
    check_req(v, self.name)
    rawset(self, '_grad_req', v)
    local t = rawget(self, '_data')
    if t then t.grad_req = v end
    return
  end
  if k == 'shape' then
    error("Parameter '" .. self.name .. "': use :_set_shape to change the shape", 2)
  end
  rawset(self, k, v)
end

function Parameter.__tostring(self)
  return string.format('Parameter %s (shape=%s, dtype=%s)', self.name, tuple_str(self.shape),
                       self.dtype)
end

-- Parameter(name, {shape=, dtype='float32', init=, grad_req='write', lr_mult=1, wd_mult=1,
--                  allow_deferred_init=false, differentiable=true})
function M.new(name, opts)
  opts = opts or {}
  local req = opts.grad_req or 'write'
  if opts.differentiable == false then req = 'null' end
  check_req(req, name)
  local shape = {}
  if type(opts.shape) == 'number' then shape = {opts.shape}
  elseif opts.shape then for i, d in ipairs(opts.shape) do shape[i] = d end end
  local p = {
    name = name, dtype = opts.dtype or 'float32', init = init.create(opts.init),
    lr_mult = opts.lr_mult or 1, wd_mult = opts.wd_mult or 1,
    _grad_req = req, _allow_deferred_init = opts.allow_deferred_init or false,
    _data = nil, _deferred = nil,
  }
  rawset(p, 'shape', shape)
  return setmetatable(p, Parameter)
end
setmetatable(Parameter, {__call = function(_, name, opts) return M.new(name, opts) end})

function M.is_parameter(x) return getmetatable(x) == Parameter end

-- Fill in the unknown (0) dims of the shape; known dims must agree. Gluon's shape setter.
function Parameter:_set_shape(new)
  local cur = self.shape
  local ok = #cur == 0 or #cur == #new
  for i = 1, #cur do
    if ok and cur[i] ~= 0 and cur[i] ~= new[i] then ok = false end
  end
  if not ok then
    error(string.format("Parameter '%s': expected shape %s is incompatible with given shape %s",
                        self.name, shape_str(cur), shape_str(new)), 2)
  end
  local s = {}
  for i, d in ipairs(new) do s[i] = d end
  rawset(self, 'shape', s)
end

-- Make the tensor (from 'data' when given, else from the pending initializer) and its gradient.
local function finish_init(self, data)
  local d = self._deferred
  if not known(self.shape) then
    error(string.format("Parameter '%s': cannot initialize, shape %s is still unknown",
                        self.name, shape_str(self.shape)), 3)
  end
  local t = nd.zeros(self.shape, self.dtype)
  if data ~= nil then
    t:set(data)
  elseif d.explicit then
    d.explicit:init_weight(self.name, t)         -- an init given for this parameter wins
  else
    d.default(self.name, t)                      -- a net-wide init follows the suffix rules
  end
  self._deferred = nil
  if self._grad_req ~= 'null' then t:attach_grad(self._grad_req) end
  self._data = t
end

-- p:initialize(init=nil, {default_init=Uniform(0.07), force_reinit=false})
-- 'init' (or the parameter's own init) fills the tensor whatever its name; default_init follows
-- the name-suffix rules (this is what a Block's initialize passes). With an unknown shape and
-- allow_deferred_init, the work waits for the first forward.
function Parameter:initialize(how, opts)
  opts = opts or {}
  if self._data ~= nil and not opts.force_reinit then
    io.stderr:write(string.format("warning: Parameter '%s' is already initialized, ignoring. "
      .. "Set force_reinit=true to re-initialize.\n", self.name))
    return self
  end
  local explicit = init.create(how) or self.init
  local default = init.create(opts.default_init) or init.Uniform()
  self._deferred = {explicit = explicit, default = default}
  if self._data ~= nil then
    -- re-initialize in place so references to the tensor stay valid
    local t = self._data
    if explicit then explicit:init_weight(self.name, t) else default(self.name, t) end
    self._deferred = nil
    return self
  end
  if not known(self.shape) then
    if self._allow_deferred_init then return self end
    error(string.format("Parameter '%s': cannot initialize with unknown shape %s; give the "
      .. "layer its input size (in_units, in_channels)", self.name, shape_str(self.shape)), 2)
  end
  finish_init(self)
  return self
end

-- Finish a pending deferred initialization once the shape is known (called by layers).
function Parameter:_finish_deferred_init()
  if self._data == nil and self._deferred ~= nil then finish_init(self) end
end

-- For weight loaders: adopt 'data' (shape-checked against the known dims) whether or not the
-- parameter was initialized; copies into the existing tensor when there is one.
function Parameter:_load_init(data)
  if self._data ~= nil then return self:set_data(data) end
  self:_set_shape(data:shape())
  self._deferred = self._deferred or {}
  finish_init(self, data)
  return self
end

local function uninitialized(self)
  if self._deferred ~= nil then
    return string.format("Parameter '%s' has not been initialized yet because its shape %s is "
      .. "unknown until the first forward (deferred initialization)", self.name,
      shape_str(self.shape))
  end
  return string.format("Parameter '%s' has not been initialized; call net:initialize() or "
    .. "p:initialize() first", self.name)
end

-- The tensor (the same object every time).
function Parameter:data()
  local t = self._data
  if t == nil then
    if self._deferred ~= nil and known(self.shape) then
      finish_init(self)
      return self._data
    end
    error(uninitialized(self), 2)
  end
  return t
end

function Parameter:list_data() return {self:data()} end

-- The gradient tensor (shares memory with the tensor's .grad).
function Parameter:grad()
  local t = self._data
  if t == nil then error(uninitialized(self), 2) end
  if self._grad_req == 'null' then
    error(string.format("Parameter '%s': cannot get the gradient because grad_req='null'",
                        self.name), 2)
  end
  return t.grad
end

function Parameter:list_grad() return {self:grad()} end

-- Copy 'data' (a tensor of the same shape, or a number) into the existing tensor.
function Parameter:set_data(data)
  local t = self._data
  if t == nil then
    if self._deferred ~= nil then return self:_load_init(data) end
    error(uninitialized(self), 2)
  end
  if type(data) ~= 'number' then
    local a, b = t:shape(), data:shape()
    local same = #a == #b
    for i = 1, #a do same = same and a[i] == b[i] end
    if not same then
      error(string.format("Parameter '%s': set_data got shape %s, expected %s", self.name,
                          shape_str(b), shape_str(a)), 2)
    end
  end
  t:set(data)
  return self
end

function Parameter:zero_grad()
  local t = self._data
  if t ~= nil then
    local g = t.grad
    if g ~= nil then g:fill(0) end
  end
end

function Parameter:is_initialized() return self._data ~= nil end

--[[ }================================================================== ]]

--[[ {==================================================================
** ParameterDict: an ordered name -> Parameter map with a prefix
** =================================================================== ]]

local ParameterDict = {}
ParameterDict.__name = 'ParameterDict'
M.ParameterDict = ParameterDict

-- Methods first (so keys() etc. always work), then parameters by full name.
function ParameterDict.__index(self, k)
  local m = ParameterDict[k]
  if m ~= nil then return m end
  return rawget(self, '_map')[k]
end

function ParameterDict.__len(self) return #rawget(self, '_names') end

-- for name, p in pairs(params) do ... end, in insertion order
function ParameterDict.__pairs(self) return self:items() end

function ParameterDict.__tostring(self)
  local lines = {}
  for _, p in self:items() do lines[#lines + 1] = '  ' .. tostring(p) end
  local pre = self.prefix ~= '' and self.prefix .. ' ' or ''
  return pre .. '(\n' .. table.concat(lines, '\n') .. '\n)'
end

-- ParameterDict(prefix='', shared=nil): 'shared' is looked up before creating a parameter.
function M.dict(prefix, shared)
  return setmetatable({prefix = prefix or '', _names = {}, _map = {}, _shared = shared},
                      ParameterDict)
end
setmetatable(ParameterDict, {__call = function(_, prefix, shared)
  return M.dict(prefix, shared)
end})

function M.is_dict(x) return getmetatable(x) == ParameterDict end

-- Ordered iteration: for name, p in params:items() do ... end
function ParameterDict:items()
  local names, map, i = self._names, self._map, 0
  return function()
    i = i + 1
    local n = names[i]
    if n ~= nil then return n, map[n] end
  end
end

function ParameterDict:keys()
  local r = {}
  for i, n in ipairs(self._names) do r[i] = n end
  return r
end

function ParameterDict:values()
  local r = {}
  for i, n in ipairs(self._names) do r[i] = self._map[n] end
  return r
end

function ParameterDict:_add(p)
  local old = self._map[p.name]
  if old == nil then
    self._names[#self._names + 1] = p.name
    self._map[p.name] = p
  elseif old ~= p then
    error(string.format("ParameterDict: cannot add Parameter '%s': a different Parameter with "
      .. "the same name is already there", p.name), 3)
  end
end

-- Copy every parameter of 'other' in (same names must be the same Parameter).
function ParameterDict:update(other)
  for _, p in other:items() do self:_add(p) end
  return self
end

-- The parameter prefix..name, created with 'opts' (see Parameter) when it does not exist yet.
-- An existing one must agree with the given shape (its unknown dims are filled in).
function ParameterDict:get(name, opts)
  local full = self.prefix .. name
  local p = self._map[full]
  if p == nil and self._shared ~= nil then
    p = self._shared._map[full]
    if p ~= nil then self:_add(p) end
  end
  if p == nil then
    p = M.new(full, opts)
    self:_add(p)
  elseif opts and opts.shape then
    local s = type(opts.shape) == 'number' and {opts.shape} or opts.shape
    local merged = {}
    for i, d in ipairs(s) do merged[i] = d ~= 0 and d or (p.shape[i] or 0) end
    p:_set_shape(merged)
  end
  return p
end

-- Initialize every parameter: its own init when it has one, else 'how' by the name-suffix rules
-- (default Uniform(0.07)). opts: {force_reinit=false}.
function ParameterDict:initialize(how, opts)
  opts = opts or {}
  local sub = {default_init = init.create(how) or init.Uniform(), force_reinit = opts.force_reinit}
  for _, p in self:items() do p:initialize(nil, sub) end
  return self
end

function ParameterDict:zero_grad()
  for _, p in self:items() do p:zero_grad() end
end

-- Set an attribute ('grad_req', 'lr_mult', 'wd_mult', ...) on every parameter.
function ParameterDict:setattr(name, value)
  for _, p in self:items() do p[name] = value end
  return self
end

--[[ }================================================================== ]]

--[[ {==================================================================
** Selecting names (Block:collect_params(select))
** =================================================================== ]]

--[[ A select string follows Gluon's re.match: it must match at the START of the full (prefixed)
name. Supported: alternatives 'a|b' (top level only), '^' and '$' anchors, '.', '.*', '+', '?',
'*' after a character or class, '[...]' classes, and '\.' '\d' '\w' escapes. Lua pattern items
('%d', '%.', '%a', ...) also work, since the string becomes a Lua pattern. Groups '(...)' are
not supported and raise. A function select(name) -> boolean is also accepted. ]]
local function translate(alt, whole)
  local out, i = {'^'}, 1
  if alt:sub(1, 1) == '^' then i = 2 end
  while i <= #alt do
    local c = alt:sub(i, i)
    if c == '\\' or c == '%' then          -- '\.' '\d' and Lua's '%.' '%d' alike
      out[#out + 1] = '%' .. alt:sub(i + 1, i + 1)
      i = i + 2
    elseif c == '[' then                   -- a class, copied whole
      local j = alt:find(']', i + 2, true)
      if not j then
        error(string.format("collect_params: unclosed '[' in select '%s'", whole), 4)
      end
      out[#out + 1] = alt:sub(i, j)
      i = j + 1
    elseif c:find('[(){}]') then
      error(string.format("collect_params: '%s' is not supported in select '%s' (supported: "
        .. "a|b, ^, $, ., *, +, ?, [...], \\. escapes)", c, whole), 4)
    else
      out[#out + 1] = c == '-' and '%-' or c
      i = i + 1
    end
  end
  return table.concat(out)
end

-- A predicate name -> boolean from a select string, a function or nil (everything).
function M.selector(select)
  if select == nil then return function() return true end end
  if type(select) == 'function' then return select end
  if type(select) ~= 'string' then
    error('collect_params: select must be a string, a function or nil, got ' .. type(select), 3)
  end
  local pats = {}
  for alt in (select .. '|'):gmatch('([^|]*)|') do pats[#pats + 1] = translate(alt, select) end
  return function(name)
    for _, p in ipairs(pats) do if name:find(p) then return true end end
    return false
  end
end

--[[ }================================================================== ]]

return M
