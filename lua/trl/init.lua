--[[
trl: a deep learning runtime for Lua 5.4 with a C core.
  local trl = require 'trl'
  local nd, autograd = trl.nd, trl.autograd
Submodules load on first use, so `require 'trl'` stays cheap.
]]
local T = require 'trl._tensor'

local trl = {
  version = '0.1.0',
  debug = {
    live = T.live,            -- tensor headers alive (leak checks)
    mem_bytes = T.mem_bytes,  -- bytes of tensor storage held
    mem_peak = T.mem_peak,    -- the most bytes of tensor storage held at once
    sgemm_raw = T.sgemm_raw,  -- c = a b through sgemm, no allocation (benchmarks)
    fresh_grads = T.fresh_grads,  -- false: zero-fill every gradient buffer (tests)
    grads_reused = T.grads_reused,  -- gradient buffers backward passed on in place so far
  },
  set_num_threads = T.set_num_threads,
  get_num_threads = T.get_num_threads,
  clock = T.clock,            -- monotonic seconds
}

-- trl.unfreeze(block): undo trl.freeze (see lua/trl/freeze.lua)
function trl.unfreeze(...) return require('trl.freeze').unfreeze(...) end

local submodules = {
  nd = 'trl.nd', autograd = 'trl.autograd', gluon = 'trl.gluon', init = 'trl.initializer',
  data = 'trl.gluon.data', show = 'trl.show', lr_scheduler = 'trl.gluon.lr_scheduler',
  utils = 'trl.utils', d2l = 'trl.d2l', plot = 'trl.plot', checkpoint = 'trl.checkpoint',
  freeze = 'trl.freeze',
}

return setmetatable(trl, {
  __index = function(t, k)
    local name = submodules[k]
    if name == nil then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})
