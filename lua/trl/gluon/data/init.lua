--[[
trl.gluon.data: datasets and the DataLoader (Gluon's mx.gluon.data). Datasets index from 1
(ds[1] is the first sample); labels stay 0-based class ids. When the dataset is an
ImageFolderDataset (or a transform_first of one) whose transforms are all built-ins, the
DataLoader runs read -> decode -> transforms -> batch in C worker threads (core/pipeline.c);
anything else is loaded on the main thread. Either way sample i of epoch e draws its random
augmentation from a generator seeded by (loader seed, e, i), so batches do not depend on
num_workers.
]]
local D = require 'trl._data'
local nd = require 'trl.nd'

local data = {}

-- Seed the generator that transforms use outside a DataLoader, and DataLoader's default seed.
data.seed = D.seed

--[[{==================================================================
  Datasets: tables with _get(i) (1-based) and _len(); ds[i] and #ds call them
==================================================================]]

local Dataset = {}
data.Dataset = Dataset

-- Lua's indexing gives one value: a sample of several values becomes a tuple-like table,
-- as Gluon's ds[i] is a tuple (ds[i][1] is the image, ds[i][2] the label).
local function tuple(...)
  if select('#', ...) == 1 then return (...) end
  return { ... }
end

local function checkindex(self, name, k, level)
  local n = self:_len()
  if math.type(k) ~= 'integer' or k < 1 or k > n then
    error(string.format('%s: index %s out of range [1, %d]', name, tostring(k), n), level + 1)
  end
end

-- ds:get(i): sample i as multiple values (img, label).
function Dataset:get(i)
  checkindex(self, getmetatable(self).__name or 'Dataset', i, 2)
  return self:_get(i)
end

-- A dataset class whose instances answer ds[i] (integers), ds:get(i) and #ds.
function Dataset.class(name, parent)
  local cls = setmetatable({}, { __index = parent or Dataset })
  cls.__name = name
  cls.__index = function(self, k)
    if math.type(k) == 'integer' then
      checkindex(self, name, k, 2)
      return tuple(self:_get(k))
    end
    return cls[k]
  end
  cls.__len = function(self) return self:_len() end
  cls.__tostring = function(self) return string.format('%s(%d samples)', name, self:_len()) end
  return cls
end

-- A dataset that applies fn(sample...) to every sample (Gluon's Dataset.transform).
function Dataset:transform(fn)
  assert(type(fn) == 'function' or (getmetatable(fn) or {}).__call,
         'transform: expects a function or callable transform')
  return data._Transformed(self, fn, false)
end

-- A dataset that applies fn to the first element of every sample, keeping the others.
function Dataset:transform_first(fn)
  assert(type(fn) == 'function' or (getmetatable(fn) or {}).__call,
         'transform_first: expects a function or callable transform')
  return data._Transformed(self, fn, true)
end

-- Native loader description, or nil: only image folders know how.
function Dataset:_native() return nil end

local Transformed = Dataset.class('TransformedDataset')

function data._Transformed(base, fn, first)
  return setmetatable({ _base = base, _fn = fn, _first = first }, Transformed)
end

function Transformed:_len() return #self._base end

function Transformed:_get(i)
  if self._first then
    local function first(x, ...) return self._fn(x), ... end
    return first(self._base:_get(i))
  end
  return self._fn(self._base:_get(i))
end

function Transformed:_native()
  if not self._first then return nil end
  local spec = self._base:_native()
  local ops = type(self._fn) == 'table' and self._fn._ops and self._fn:_ops()
  if not spec or not ops then return nil end
  local all = {}
  for _, op in ipairs(spec.ops) do all[#all + 1] = op end
  for _, op in ipairs(ops) do all[#all + 1] = op end
  return { paths = spec.paths, labels = spec.labels, flag = spec.flag, ops = all }
end

-- SimpleDataset(list): ds[i] is list[i].
local SimpleDataset = Dataset.class('SimpleDataset')
data.SimpleDataset = SimpleDataset

function SimpleDataset.new(list)
  assert(type(list) == 'table', 'SimpleDataset: expects a table')
  return setmetatable({ _data = list }, SimpleDataset)
end

function SimpleDataset:_len() return #self._data end
function SimpleDataset:_get(i) return self._data[i] end

-- ArrayDataset(a, b, ...): ds[i] is a[i], b[i], ...; tables, tensors (along dim 1) or datasets.
local ArrayDataset = Dataset.class('ArrayDataset')
data.ArrayDataset = ArrayDataset

function ArrayDataset.new(...)
  local arrays, n = table.pack(...), nil
  assert(arrays.n > 0, 'ArrayDataset: needs at least one array')
  for k = 1, arrays.n do
    local a = arrays[k]
    assert(type(a) == 'table' or nd.is_tensor(a),
           string.format('ArrayDataset: argument %d is a %s, expected a table or tensor', k,
                         type(a)))
    local len = #a
    if n and len ~= n then
      error(string.format('ArrayDataset: all arrays must have the same length, argument 1 has '
                          .. '%d and argument %d has %d', n, k, len), 2)
    end
    n = len
  end
  return setmetatable({ _arrays = arrays, _n = n }, ArrayDataset)
end

function ArrayDataset:_len() return self._n end

function ArrayDataset:_get(i)
  local out = {}
  for k = 1, self._arrays.n do
    local a = self._arrays[k]
    out[k] = nd.is_tensor(a) and a:select(1, i) or a[i]
  end
  return table.unpack(out, 1, self._arrays.n)
end

for _, cls in ipairs{ SimpleDataset, ArrayDataset } do
  setmetatable(cls, { __index = Dataset, __call = function(c, ...) return c.new(...) end })
end

--[[}==================================================================]]

--[[{==================================================================
  DataLoader
==================================================================]]

local DataLoader = {}
DataLoader.__index = DataLoader
DataLoader.__name = 'DataLoader'
data.DataLoader = DataLoader

local noted = false

local function check_opts(opts)
  local known = { shuffle = 1, last_batch = 1, num_workers = 1, prefetch = 1, seed = 1,
                  batch_size = 1 }
  for k in pairs(opts) do
    if not known[k] then error(string.format("DataLoader: unknown option '%s'", k), 3) end
  end
end

-- DataLoader(dataset, batch_size, {shuffle=false, last_batch='keep', num_workers=0,
-- prefetch=2*num_workers, seed=}) or DataLoader(dataset, {batch_size=..., ...}).
function DataLoader.new(dataset, batch_size, opts)
  if type(batch_size) == 'table' then batch_size, opts = batch_size.batch_size, batch_size end
  opts = opts or {}
  check_opts(opts)
  assert(type(dataset) == 'table' and dataset._get and dataset._len,
         'DataLoader: expects a dataset (SimpleDataset, ArrayDataset, ImageFolderDataset, ...)')
  if math.type(batch_size) ~= 'integer' or batch_size < 1 then
    error('DataLoader: batch_size must be a positive integer, got ' .. tostring(batch_size), 2)
  end
  local last = opts.last_batch or 'keep'
  if last ~= 'keep' and last ~= 'discard' and last ~= 'rollover' then
    error("DataLoader: last_batch must be 'keep', 'discard' or 'rollover', got '"
          .. tostring(last) .. "'", 2)
  end
  local workers = opts.num_workers or 0
  if math.type(workers) ~= 'integer' or workers < 0 then
    error('DataLoader: num_workers must be a non-negative integer, got ' .. tostring(workers), 2)
  end
  local self = setmetatable({
    dataset = dataset, batch_size = batch_size, shuffle = opts.shuffle and true or false,
    last_batch = last, num_workers = workers, prefetch = opts.prefetch,
    seed = opts.seed or D.draw(), _epoch = -1, _prev = {},
  }, DataLoader)
  local spec = dataset:_native()
  if spec then
    spec.num_workers, spec.prefetch = workers, opts.prefetch
    local ok, ld = pcall(D.loader, spec)
    if ok then self._native = ld
    elseif not tostring(ld):find('one image size', 1, true) then error(ld, 2) end
  end
  if not self._native and workers > 0 and not noted then
    noted = true
    io.stderr:write('DataLoader: this dataset or its transforms are not all built-in; '
                    .. 'loading on the main thread (num_workers ignored)\n')
  end
  return self
end

setmetatable(DataLoader, { __call = function(c, ...) return c.new(...) end })

-- Number of batches in the next epoch.
function DataLoader:__len()
  local n = #self.dataset
  if self.last_batch == 'keep' then return (n + self.batch_size - 1) // self.batch_size end
  if self.last_batch == 'discard' then return n // self.batch_size end
  return (#self._prev + n) // self.batch_size
end

function DataLoader:__tostring()
  return string.format('DataLoader(%d samples, batch_size=%d, shuffle=%s, last_batch=%s, '
                       .. 'num_workers=%d, %s)', #self.dataset, self.batch_size,
                       tostring(self.shuffle), self.last_batch, self.num_workers,
                       self._native and 'native' or 'main thread')
end

-- Make the next iteration run epoch 'e0' (0-based): its shuffle and per-sample random
-- draws are those of that epoch, so a resumed run sees exactly the data an uninterrupted one did.
function DataLoader:set_epoch(e0)
  assert(math.type(e0) == 'integer' and e0 >= 0, 'DataLoader:set_epoch: epoch must be an integer >= 0')
  self._epoch = e0 - 1
end

-- The sample order of a new epoch (1-based indices), per last_batch.
local function epoch_order(self)
  self._epoch = self._epoch + 1
  local n = #self.dataset
  local order
  if self.shuffle then order = D.permutation(n, self.seed, self._epoch)
  else order = {}; for i = 1, n do order[i] = i end end
  if self.last_batch == 'rollover' then
    local all = {}
    for _, i in ipairs(self._prev) do all[#all + 1] = i end
    for _, i in ipairs(order) do all[#all + 1] = i end
    local keep = #all - #all % self.batch_size
    self._prev = table.move(all, keep + 1, #all, 1, {})
    order = table.move(all, 1, keep, 1, {})
  elseif self.last_batch == 'discard' then
    order = table.move(order, 1, n - n % self.batch_size, 1, {})
  end
  return order
end

-- Stack samples (tensors or numbers) into one batch, as Gluon's default_batchify_fn.
local function batchify(items)
  local first = items[1]
  if nd.is_tensor(first) then return nd.stack(items, 1) end
  if type(first) == 'number' then
    local int = true
    for _, v in ipairs(items) do int = int and math.type(v) == 'integer' end
    return nd.array(items, int and 'int64' or 'float32')
  end
  if type(first) == 'table' and not getmetatable(first) then return nd.array(items) end
  error('DataLoader: cannot batch samples of type ' .. type(first), 3)
end

-- Main-thread batches: ds[i] after reseeding the transforms' generator for sample i.
local function lua_next(self)
  local st = self._state
  if st.pos > #st.order then return nil end
  local last = math.min(st.pos + self.batch_size - 1, #st.order)
  local cols
  for p = st.pos, last do
    local i = st.order[p]
    D.sample_seed(self.seed, self._epoch, i - 1)
    local sample = table.pack(self.dataset:_get(i))
    cols = cols or {}
    for k = 1, sample.n do
      cols[k] = cols[k] or {}
      cols[k][#cols[k] + 1] = sample[k]
    end
  end
  st.pos = last + 1
  local out = {}
  for k = 1, #cols do out[k] = batchify(cols[k]) end
  return table.unpack(out, 1, #cols)
end

-- Start a new epoch (stopping one left half-way).
function DataLoader:_start()
  local order = epoch_order(self)
  if self._native then self._native:start(order, self.batch_size, self.seed, self._epoch)
  else self._state = { order = order, pos = 1 } end
  self._running = true
end

-- The next batch of the running epoch, or nil at its end (then the workers are joined).
function DataLoader:_next()
  if not self._running then return nil end
  local x, y
  if self._native then x, y = self._native:next()
  else x, y = lua_next(self) end
  if x == nil then self:stop() end
  return x, y
end

-- End the running epoch now: join the workers, drop prefetched batches.
function DataLoader:stop()
  self._running = false
  self._state = nil
  if self._native then self._native:stop() end
end

-- Release the native pipeline for good (also done by the garbage collector).
function DataLoader:close()
  self:stop()
  if self._native then self._native:close() end
end

-- `for x, y in loader do`: Lua's generic for calls loader(nil, control); control is nil only
-- on the first call of a loop, which starts a new epoch.
function DataLoader:__call(_, control)
  if control == nil then self:_start() end
  return self:_next()
end

-- `for x, y in loader:iter() do`: the same, plus a to-be-closed value that stops the epoch
-- when the loop is left early (break, error).
function DataLoader:iter()
  self:_start()
  local closer = setmetatable({}, { __close = function() self:stop() end })
  return function() return self:_next() end, nil, nil, closer
end

--[[}==================================================================]]

data.vision = setmetatable({}, { __index = function(t, k)
  local v = require 'trl.gluon.data.vision'
  setmetatable(t, { __index = v })
  return v[k]
end })

return data
