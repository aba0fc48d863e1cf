--[[
trl.gluon.data.vision.transforms: Gluon 1.x image transforms as callable objects. Built-ins
compile to op tables ({kind = 'resize', w =, h =, f = {...}}) that core/pipeline.c runs on
uint8 (H,W,C) images (the DataLoader runs whole chains of them in worker threads); random
ones draw from the data generator (trl.data.seed, or per sample inside a DataLoader). Sizes
are (width, height) as in Gluon: an integer means square.
]]
local D = require 'trl._data'

local transforms = {}

local Transform = {}
Transform.__index = Transform

-- A built-in: 'ops' is its op list, 'desc' its printed form.
local function builtin(ops, desc)
  return setmetatable({ _oplist = ops, _desc = desc }, Transform)
end

function Transform:_ops() return self._oplist end
function Transform:__call(x) return D.apply(self._oplist, x) end
function Transform:__tostring() return self._desc end

local function fmt(v)
  if math.type(v) == 'float' then return (string.format('%.4g', v)) end
  return tostring(v)
end

local function size_arg(name, size)
  if math.type(size) == 'integer' and size > 0 then return size, size end
  if type(size) == 'table' and #size == 2 and math.type(size[1]) == 'integer'
     and math.type(size[2]) == 'integer' and size[1] > 0 and size[2] > 0 then
    return size[1], size[2]
  end
  error(string.format('%s: size must be a positive integer or {width, height}, got %s', name,
                      type(size) == 'table' and '{' .. table.concat(size, ', ') .. '}'
                      or tostring(size)), 3)
end

local function check_interp(name, opts)
  local interp = opts.interpolation or 1
  if interp ~= 1 then
    error(string.format('%s: only interpolation=1 (bilinear) is supported, got %s', name,
                        tostring(interp)), 3)
  end
end

local function check_opts(name, opts, known)
  for k in pairs(opts) do
    if not known[k] then error(string.format("%s: unknown option '%s'", name, k), 3) end
  end
end

local function nonneg(name, v, what)
  if type(v) ~= 'number' or v < 0 then
    error(string.format('%s: %s must be a non-negative number, got %s', name, what,
                        tostring(v)), 3)
  end
  return v
end

--[[{==================================================================
  Composition and casts
==================================================================]]

local Compose = {}
Compose.__index = Compose

-- Compose{t1, t2, ...}: apply in order; built-ins run as one chain.
function transforms.Compose(list)
  assert(type(list) == 'table', 'Compose: expects a list of transforms')
  for i, t in ipairs(list) do
    if type(t) ~= 'function' and not (getmetatable(t) or {}).__call then
      error(string.format('Compose: element %d is a %s, not a transform', i, type(t)), 2)
    end
  end
  return setmetatable({ transforms = list }, Compose)
end

-- The concatenated ops when every element is a built-in, else nil.
function Compose:_ops()
  local all = {}
  for _, t in ipairs(self.transforms) do
    local ops = type(t) == 'table' and t._ops and t:_ops()
    if not ops then return nil end
    for _, op in ipairs(ops) do all[#all + 1] = op end
  end
  return all
end

function Compose:__call(x)
  local ops = self:_ops()
  if ops then return D.apply(ops, x) end
  for _, t in ipairs(self.transforms) do x = t(x) end
  return x
end

function Compose:__tostring()
  local lines = { 'Compose(' }
  for _, t in ipairs(self.transforms) do
    local s = type(t) == 'function' and 'function' or tostring(t)
    lines[#lines + 1] = '  ' .. s:gsub('\n', '\n  ')
  end
  lines[#lines + 1] = ')'
  return table.concat(lines, '\n')
end

local Cast = {}
Cast.__index = Cast
Cast.__call = function(self, x) return x:astype(self.dtype) end
Cast.__tostring = function(self) return "Cast(dtype='" .. self.dtype .. "')" end

-- Cast(dtype='float32'): a tensor cast (runs on the main thread).
function transforms.Cast(dtype)
  return setmetatable({ dtype = dtype or 'float32' }, Cast)
end

--[[}==================================================================]]

--[[{==================================================================
  Tensor conversion
==================================================================]]

-- ToTensor(): uint8 (H,W,C) -> float32 (C,H,W) in [0, 1].
function transforms.ToTensor()
  return builtin({ { kind = 'to_tensor' } }, 'ToTensor()')
end

-- Normalize(mean, std): (x - mean[c]) / std[c] on (C,H,W) float32; numbers or lists.
function transforms.Normalize(mean, std)
  mean = mean == nil and 0 or mean
  std = std == nil and 1 or std
  local m = type(mean) == 'table' and mean or { mean }
  local s = type(std) == 'table' and std or { std }
  local n = math.max(#m, #s)
  if n < 1 or n > 4 or (#m ~= n and #m ~= 1) or (#s ~= n and #s ~= 1) then
    error(string.format('Normalize: mean has %d values and std %d; they need 1 to 4 each, '
                        .. 'and the same count unless one is a single value', #m, #s), 2)
  end
  local f = { 0, 0, 0, 0, 1, 1, 1, 1 }
  for c = 1, n do
    f[c] = m[#m == 1 and 1 or c]
    f[4 + c] = s[#s == 1 and 1 or c]
    if type(f[c]) ~= 'number' or type(f[4 + c]) ~= 'number' then
      error('Normalize: mean and std must be numbers', 2)
    end
    if f[4 + c] == 0 then error(string.format('Normalize: std[%d] is 0', c), 2) end
  end
  local ms, ss = {}, {}
  for c = 1, n do ms[c], ss[c] = fmt(f[c]), fmt(f[4 + c]) end
  return builtin({ { kind = 'normalize', n = n, f = f } },
                 string.format('Normalize(mean=(%s), std=(%s))', table.concat(ms, ', '),
                               table.concat(ss, ', ')))
end

--[[}==================================================================]]

--[[{==================================================================
  Geometry
==================================================================]]

-- Resize(size, {keep_ratio = false, interpolation = 1}): an integer size with keep_ratio
-- resizes the short side to it; otherwise to exactly (w, h).
function transforms.Resize(size, opts)
  opts = opts or {}
  check_opts('Resize', opts, { keep_ratio = 1, interpolation = 1 })
  check_interp('Resize', opts)
  local w, h = size_arg('Resize', size)
  if opts.keep_ratio and math.type(size) == 'integer' then
    return builtin({ { kind = 'resize', w = size, h = 0 } },
                   string.format('Resize(size=%d, keep_ratio=True)', size))
  end
  return builtin({ { kind = 'resize', w = w, h = h } },
                 string.format('Resize(size=(%d, %d))', w, h))
end

-- CenterCrop(size): the central crop, resized up first when the image is smaller.
function transforms.CenterCrop(size, opts)
  opts = opts or {}
  check_opts('CenterCrop', opts, { interpolation = 1 })
  check_interp('CenterCrop', opts)
  local w, h = size_arg('CenterCrop', size)
  return builtin({ { kind = 'center_crop', w = w, h = h } },
                 string.format('CenterCrop(size=(%d, %d))', w, h))
end

-- RandomResizedCrop(size, {scale = {0.08, 1}, ratio = {3/4, 4/3}}): Gluon 1.x
-- random_size_crop (area uniform in scale, ratio uniform in ratio, 10 tries, centre-crop
-- fallback), then a bilinear resize to size.
function transforms.RandomResizedCrop(size, opts)
  opts = opts or {}
  check_opts('RandomResizedCrop', opts, { scale = 1, ratio = 1, interpolation = 1 })
  check_interp('RandomResizedCrop', opts)
  local w, h = size_arg('RandomResizedCrop', size)
  local scale, ratio = opts.scale or { 0.08, 1.0 }, opts.ratio or { 3 / 4, 4 / 3 }
  for name, r in pairs{ scale = scale, ratio = ratio } do
    if type(r) ~= 'table' or type(r[1]) ~= 'number' or type(r[2]) ~= 'number'
       or r[1] <= 0 or r[1] > r[2] then
      error(string.format('RandomResizedCrop: %s must be {lo, hi} with 0 < lo <= hi', name), 2)
    end
  end
  return builtin({ { kind = 'random_resized_crop', w = w, h = h,
                     f = { scale[1], scale[2], ratio[1], ratio[2] } } },
                 string.format('RandomResizedCrop(size=(%d, %d), scale=(%s, %s), ratio=(%s, %s))',
                               w, h, fmt(scale[1]), fmt(scale[2]), fmt(ratio[1]), fmt(ratio[2])))
end

function transforms.RandomFlipLeftRight()
  return builtin({ { kind = 'random_flip_lr' } }, 'RandomFlipLeftRight()')
end

function transforms.RandomFlipTopBottom()
  return builtin({ { kind = 'random_flip_tb' } }, 'RandomFlipTopBottom()')
end

--[[}==================================================================]]

--[[{==================================================================
  Color
==================================================================]]

-- RandomBrightness/Contrast/Saturation/Hue(v): a factor from [max(0, 1 - v), 1 + v].
for name, kind in pairs{ RandomBrightness = 'brightness', RandomContrast = 'contrast',
                         RandomSaturation = 'saturation', RandomHue = 'hue' } do
  transforms[name] = function(v)
    nonneg(name, v, kind)
    return builtin({ { kind = kind, f = { math.max(0, 1 - v), 1 + v } } },
                   string.format('%s(%s=%s)', name, kind, fmt(v)))
  end
end

-- RandomColorJitter(brightness, contrast, saturation, hue) or ({brightness = ..., ...}):
-- the four jitters in a random order, factors 1 + U(-v, v) (hue: U(-v, v) turns).
function transforms.RandomColorJitter(b, c, s, h)
  if type(b) == 'table' then
    check_opts('RandomColorJitter', b, { brightness = 1, contrast = 1, saturation = 1, hue = 1 })
    b, c, s, h = b.brightness, b.contrast, b.saturation, b.hue
  end
  local v = { b or 0, c or 0, s or 0, h or 0 }
  local names = { 'brightness', 'contrast', 'saturation', 'hue' }
  for i = 1, 4 do nonneg('RandomColorJitter', v[i], names[i]) end
  return builtin({ { kind = 'color_jitter', f = v } },
                 string.format('RandomColorJitter(brightness=%s, contrast=%s, saturation=%s, '
                               .. 'hue=%s)', fmt(v[1]), fmt(v[2]), fmt(v[3]), fmt(v[4])))
end

-- RandomLighting(alpha): AlexNet PCA noise with alpha ~ N(0, alpha) per eigenvector.
function transforms.RandomLighting(alpha)
  nonneg('RandomLighting', alpha, 'alpha')
  return builtin({ { kind = 'lighting', f = { alpha } } },
                 string.format('RandomLighting(alpha=%s)', fmt(alpha)))
end

--[[}==================================================================]]

return transforms
