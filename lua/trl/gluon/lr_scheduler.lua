--[[
trl.gluon.lr_scheduler: learning-rate schedules, as MXNet 1.x (python/mxnet/lr_scheduler.py).
A scheduler is called with the number of updates done so far (1 at the first step) and returns
the learning rate. All take {base_lr=0.01, warmup_steps=0, warmup_begin_lr=0,
warmup_mode='linear'|'constant'}; during warm-up the rate goes from warmup_begin_lr to base_lr.
]]
local M = {}

local function class(name)
  local c = {__name = name}
  c.__index = c
  c.__call = function(self, num_update) return self:lr(num_update) end
  return c
end

local function base(self, o)
  o = o or {}
  self.base_lr = o.base_lr or 0.01
  self.warmup_steps = o.warmup_steps or 0
  self.warmup_begin_lr = o.warmup_begin_lr or 0
  self.warmup_final_lr = self.base_lr
  self.warmup_mode = o.warmup_mode or 'linear'
  if self.warmup_steps < 0 then error('lr_scheduler: warmup_steps must be >= 0', 3) end
  if self.warmup_begin_lr > self.warmup_final_lr then
    error('lr_scheduler: warmup_begin_lr must not exceed base_lr', 3)
  end
  if self.warmup_mode ~= 'linear' and self.warmup_mode ~= 'constant' then
    error("lr_scheduler: warmup_mode must be 'linear' or 'constant'", 3)
  end
end

local function warmup(self, n)
  if self.warmup_mode == 'linear' then
    return self.warmup_begin_lr + (self.warmup_final_lr - self.warmup_begin_lr) * n / self.warmup_steps
  end
  return self.warmup_begin_lr
end

-- FactorScheduler(step, {factor=1, stop_factor_lr=1e-8, ...}): lr *= factor every 'step' updates.
local Factor = class('FactorScheduler')
function M.FactorScheduler(step, o)
  o = o or {}
  if step < 1 then error('FactorScheduler: step must be >= 1', 2) end
  local f = o.factor or 1
  if f > 1 then error('FactorScheduler: factor must be <= 1', 2) end
  local self = setmetatable({step = step, factor = f, stop_factor_lr = o.stop_factor_lr or 1e-8,
                             count = 0}, Factor)
  base(self, o)
  return self
end
function Factor:lr(n)
  if n < self.warmup_steps then return warmup(self, n) end
  while n > self.count + self.step do  -- catch up: one update can cross several steps
    self.count = self.count + self.step
    self.base_lr = self.base_lr * self.factor
    if self.base_lr < self.stop_factor_lr then self.base_lr = self.stop_factor_lr end
  end
  return self.base_lr
end

-- MultiFactorScheduler({s1, s2, ...}, {factor=1, ...}): lr *= factor after each listed update.
local Multi = class('MultiFactorScheduler')
function M.MultiFactorScheduler(steps, o)
  o = o or {}
  for i, s in ipairs(steps) do
    if s < 1 or (i > 1 and s <= steps[i - 1]) then
      error('MultiFactorScheduler: steps must be increasing and >= 1', 2)
    end
  end
  local self = setmetatable({steps = steps, factor = o.factor or 1, cur = 1, count = 0}, Multi)
  if self.factor > 1 then error('MultiFactorScheduler: factor must be <= 1', 2) end
  base(self, o)
  return self
end
function Multi:lr(n)
  if n < self.warmup_steps then return warmup(self, n) end
  while self.cur <= #self.steps and n > self.steps[self.cur] do
    self.count = self.steps[self.cur]
    self.cur = self.cur + 1
    self.base_lr = self.base_lr * self.factor
  end
  return self.base_lr
end

-- PolyScheduler(max_update, {pwr=2, final_lr=0, ...})
local Poly = class('PolyScheduler')
function M.PolyScheduler(max_update, o)
  o = o or {}
  if max_update < 1 then error('PolyScheduler: max_update must be >= 1', 2) end
  local self = setmetatable({max_update = max_update, power = o.pwr or 2, final_lr = o.final_lr or 0}, Poly)
  base(self, o)
  self.base_lr_orig = self.base_lr
  self.max_steps = max_update - self.warmup_steps
  return self
end
function Poly:lr(n)
  if n < self.warmup_steps then return warmup(self, n) end
  if n <= self.max_update then
    self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) *
                   (1 - (n - self.warmup_steps) / self.max_steps) ^ self.power
  end
  return self.base_lr
end

-- CosineScheduler(max_update, {final_lr=0, ...})
local Cosine = class('CosineScheduler')
function M.CosineScheduler(max_update, o)
  o = o or {}
  if max_update < 1 then error('CosineScheduler: max_update must be >= 1', 2) end
  local self = setmetatable({max_update = max_update, final_lr = o.final_lr or 0}, Cosine)
  base(self, o)
  self.base_lr_orig = self.base_lr
  self.max_steps = max_update - self.warmup_steps
  return self
end
function Cosine:lr(n)
  if n < self.warmup_steps then return warmup(self, n) end
  if n <= self.max_update then
    self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) *
                   (1 + math.cos(math.pi * (n - self.warmup_steps) / self.max_steps)) / 2
  end
  return self.base_lr
end

return M
