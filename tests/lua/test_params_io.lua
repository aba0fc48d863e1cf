-- test_params_io.lua: Block:load_parameters / save_parameters (trl.gluon.params_io): the name
-- styles (structural, flat legacy, prefixed, arg:/aux:, another instance's prefix), the one
-- strict error (missing, unexpected, shape mismatch) that sets nothing, deferred shapes, dtype
-- casts (an int64 file into float32), and the torchvision ResNet name map (a synthetic state_dict; with Debian's
-- /usr/bin/python3 + torch also a real .pth whose logits trl must reproduce).
local trl = require 'trl'
local block = require 'trl.gluon.block'
local nn = require 'trl.gluon.nn'
local pio = require 'trl.gluon.params_io'
local zoo = require 'trl.gluon.model_zoo'
local serial = require 'trl._serial'
local h = require 'helpers'

local nd = trl.nd
local TMP = h.tmpdir()

-- conv(4, 3x3) -> BN -> relu -> Dense(3): prefixes net0_conv0_, net0_batchnorm0_, net0_dense0_
local function small(init)
  block._reset_name_counters()
  local net = nn.HybridSequential{prefix = 'net0_'}
  net:name_scope(function()
    net:add(nn.Conv2D(4, 3, {in_channels = 2}), nn.BatchNorm(), nn.Activation('relu'),
            nn.Dense(3))
  end)
  if init then
    net:initialize(trl.init.Xavier())
    net(nd.random.uniform(-1, 1, {2, 2, 5, 5}))
  end
  return net
end

local function same_params(a, b)
  local sa, sb = a:structural_params(), b:structural_params()
  approx(#sb, #sa)
  for i, e in ipairs(sa) do
    assert(sb[i][1] == e[1])
    local x, y = e[2]:data(), sb[i][2]:data()
    approx(y:shape(), x:shape())
    assert(x:eq(y):sum():asscalar() == x:numel(), e[1] .. ' differs')
  end
end

-- Write the net's tensors under names made by rename(structural, prefixed).
local function write_as(net, path, rename, dtype)
  local names, ts = {}, {}
  for _, e in ipairs(net:structural_params()) do
    local n = rename(e[1], e[2].name)
    if n then
      names[#names + 1] = n
      local t = e[2]:data()
      ts[#ts + 1] = dtype and t:astype(dtype) or t
    end
  end
  assert(serial.save_params(path, names, ts))
end

test('structural save -> load, also into a net whose shapes are still deferred', function()
  local a = small(true)
  local path = TMP .. '/pio_small.params'
  assert(a:save_parameters(path) == a)
  local _, names = serial.load(path)
  assert(names[1] == '0.weight' and names[3] == '1.gamma' and names[7] == '3.weight', names[7])
  local b = small(false)
  approx(b[4].weight.shape, {3, 0})
  b:load_parameters(path)
  approx(b[4].weight.shape, {3, 36})
  same_params(a, b)
  local x = nd.random.uniform(-1, 1, {1, 2, 5, 5})
  approx(b(x):totable(), a(x):totable(), 0)
end)

test('flat (legacy), prefixed, arg:/aux: and another instance prefix', function()
  local a = small(true)
  local cases = {
    flat = function(_, p) return (p:gsub('^net0_', '')) end,
    prefixed = function(_, p) return p end,
    argaux = function(_, p) return (p:match('running') and 'aux:' or 'arg:') .. p end,
    other_instance = function(_, p) return (p:gsub('^net0_', 'net3_')) end,
  }
  for what, rename in pairs(cases) do
    local path = TMP .. '/pio_' .. what .. '.params'
    write_as(a, path, rename)
    local b = small(false)
    b:load_parameters(path)
    same_params(a, b)
    assert(pio.match(b, path).style == 'legacy', what)
  end
end)

test('one error lists missing, unexpected and mismatched names; nothing is set', function()
  local a = small(true)
  local path = TMP .. '/pio_bad.params'
  local names, ts = {}, {}
  for _, e in ipairs(a:structural_params()) do
    if e[1] ~= '1.running_var' then
      names[#names + 1] = e[1]
      ts[#ts + 1] = e[1] == '3.weight' and nd.zeros{3, 5} or e[2]:data()
    end
  end
  names[#names + 1] = 'extra.weight'
  ts[#ts + 1] = nd.zeros{2}
  assert(serial.save_params(path, names, ts))
  local b = small(false)
  local msg = checkerror('Error(s) in loading parameters from ' .. path, b.load_parameters, b, path)
  assert(msg:find("into HybridSequential 'net0'", 1, true), msg)
  assert(msg:find('Missing (1) 1.running_var', 1, true), msg)
  assert(msg:find('Unexpected (1) extra.weight', 1, true), msg)
  assert(msg:find('Shape mismatch (1) 3.weight: file [3,5] vs net [3,0]', 1, true) == nil)
  -- deferred in_units: [3,0] accepts any width; an initialized net reports the mismatch
  local c = small(true)
  msg = checkerror('Shape mismatch (1) 3.weight: file [3,5] vs net [3,36]', c.load_parameters, c,
                   path, {allow_missing = true, ignore_extra = true})
  assert(not msg:find('Missing', 1, true) and not msg:find('Unexpected', 1, true), msg)
  assert(not b[1].weight:is_initialized(), 'nothing was set')
  local before = c[1].weight:data():totable()
  checkerror('Missing (1) 1.running_var', c.load_parameters, c, path)
  approx(c[1].weight:data():totable(), before, 0)
  b:load_parameters(path, {allow_missing = true, ignore_extra = true})
  approx(b[4].weight.shape, {3, 5})
  assert(not b[2].running_var:is_initialized())
end)

test('dtype cast, safetensors, bad arguments and unreadable files', function()
  local a = small(true)
  local path = TMP .. '/pio_i64.params'
  write_as(a, path, function(s) return s end, 'int64')
  local b = small(false)
  b:load_parameters(path)
  assert(b[2].gamma:data():dtype() == 'float32')
  approx(b[2].running_var:data():totable(), {1, 1, 1, 1}, 0)
  approx(b[1].weight:data():totable(), a[1].weight:data():astype('int64'):astype('float32'):totable(), 0)
  local st = TMP .. '/pio_small.safetensors'
  a:save_parameters(st)
  local _, _, meta = serial.load(st)
  assert(meta and meta.format == 'trl')
  local c = small(false)
  c:load_parameters(st)
  same_params(a, c)
  local msg = checkerror('load_parameters: ', c.load_parameters, c, TMP .. '/nope.params')
  assert(msg:find('nope.params', 1, true), msg)
  checkerror('load_parameters: expected a Block, got a number', pio.load_parameters, 3, path)
  checkerror('path must be a string', c.load_parameters, c, 42)
  local u = small(false)
  checkerror('save_parameters: ', u.save_parameters, u, TMP .. '/pio_u.params')
  checkerror('0.weight (net0_conv0_weight [4,2,3,3])', u.save_parameters, u, TMP .. '/pio_u.params')
  -- the first four by name, then a count: a deferred ResNet-18 would list 77
  msg = checkerror('8 parameter(s) not initialized', u.save_parameters, u, TMP .. '/pio_u.params')
  assert(msg:find('and 4 more', 1, true) and not msg:find('net0_dense0_bias', 1, true), msg)
  assert(not io.open(TMP .. '/pio_u.params'), 'nothing written')
end)

--[[ {==================================================================
** torchvision ResNet names
** =================================================================== ]]

-- The keys of torchvision's resnet18().state_dict(), in its order.
local function torchvision_resnet18_keys()
  local keys = {}
  local function bn(p)
    for _, s in ipairs{'weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'} do
      keys[#keys + 1] = p .. '.' .. s
    end
  end
  keys[1] = 'conv1.weight'
  bn('bn1')
  for l = 1, 4 do
    for b = 0, 1 do
      local p = string.format('layer%d.%d.', l, b)
      keys[#keys + 1] = p .. 'conv1.weight'
      bn(p .. 'bn1')
      keys[#keys + 1] = p .. 'conv2.weight'
      bn(p .. 'bn2')
      if l > 1 and b == 0 then
        keys[#keys + 1] = p .. 'downsample.0.weight'
        bn(p .. 'downsample.1')
      end
    end
  end
  keys[#keys + 1] = 'fc.weight'
  keys[#keys + 1] = 'fc.bias'
  return keys
end

test('torchvision_resnet maps a torchvision resnet18 state_dict onto resnet18_v1', function()
  block._reset_name_counters()
  local net = zoo.vision.resnet18_v1()
  net:initialize()
  net(nd.zeros{1, 3, 32, 32})
  local sp = net:structural_params()
  local byname = {}
  for _, e in ipairs(sp) do byname[e[1]] = e[2] end
  local keys = torchvision_resnet18_keys()
  approx(#keys, 122)                            -- 102 tensors + 20 num_batches_tracked
  local names, ts, value = {}, {}, {}
  for i, k in ipairs(keys) do
    local g = pio.torchvision_resnet(k)
    names[i] = k
    if g == false then
      ts[i] = nd.array({0}, 'int64')
    else
      local p = assert(byname[g], k .. ' -> ' .. tostring(g) .. ' is not a resnet18_v1 name')
      ts[i] = nd.full(p.shape, i)
      value[g] = i
    end
  end
  assert(pio.torchvision_resnet('layer2.0.downsample.1.weight') == 'features.5.0.downsample.1.gamma')
  assert(pio.torchvision_resnet('layer4.1.bn2.running_var') == 'features.7.1.body.4.running_var')
  local path = TMP .. '/pio_tv_resnet18.safetensors'
  assert(serial.save_safetensors(path, names, ts))
  block._reset_name_counters()
  local back = zoo.vision.resnet18_v1()
  back:load_parameters(path, {name_map = pio.torchvision_resnet})
  local n = 0
  for _, e in ipairs(back:structural_params()) do
    local t = e[2]:data()
    approx(t:max():asscalar(), value[e[1]], 0)
    approx(t:min():asscalar(), value[e[1]], 0)
    n = n + 1
  end
  approx(n, 102)
  checkerror('Unexpected (122) conv1.weight, bn1.weight', back.load_parameters, back, path)
end)

local TORCH_NET = [[
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class Block(nn.Module):
    def __init__(s, i, o, st):
        super().__init__()
        s.conv1 = nn.Conv2d(i, o, 3, st, 1, bias=False); s.bn1 = nn.BatchNorm2d(o)
        s.relu = nn.ReLU()
        s.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(o)
        s.downsample = None
        if st != 1 or i != o:
            s.downsample = nn.Sequential(nn.Conv2d(i, o, 1, st, bias=False), nn.BatchNorm2d(o))
    def forward(s, x):
        r = x if s.downsample is None else s.downsample(x)
        return s.relu(s.bn2(s.conv2(s.relu(s.bn1(s.conv1(x))))) + r)
class ResNet18(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False); s.bn1 = nn.BatchNorm2d(64)
        s.relu = nn.ReLU(); s.maxpool = nn.MaxPool2d(3, 2, 1)
        i = 64
        for l, o in enumerate([64, 128, 256, 512]):
            st = 1 if l == 0 else 2
            setattr(s, 'layer%d' % (l + 1), nn.Sequential(Block(i, o, st), Block(o, o, 1)))
            i = o
        s.avgpool = nn.AdaptiveAvgPool2d(1); s.fc = nn.Linear(512, 1000)
    def forward(s, x):
        x = s.maxpool(s.relu(s.bn1(s.conv1(x))))
        for l in range(1, 5): x = getattr(s, 'layer%d' % l)(x)
        return s.fc(torch.flatten(s.avgpool(x), 1))
net = ResNet18()
for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 2.0)
net.eval()
x = torch.rand(2, 3, 64, 64)
with torch.no_grad(): y = net(x)
torch.save(net.state_dict(), sys.argv[1])
torch.save({'x': x, 'y': y}, sys.argv[2])
]]

test('a real torch .pth (torchvision resnet18 layout) gives torch logits in resnet18_v1', function()
  local py = '/usr/bin/python3'
  if not os.execute('test -x ' .. py .. ' && ' .. py .. " -c 'import torch' 2>/dev/null") then
    print('  (Debian /usr/bin/python3 with torch not found: skipped)')
    return
  end
  local script, sd, io_path = TMP .. '/pio_tv.py', TMP .. '/pio_tv_resnet18.pth',
                              TMP .. '/pio_tv_io.pth'
  local f = assert(io.open(script, 'w'))
  f:write(TORCH_NET)
  f:close()
  assert(os.execute(string.format("%s '%s' '%s' '%s'", py, script, sd, io_path)),
         'the torch script failed')
  block._reset_name_counters()
  local net = zoo.vision.resnet18_v1()
  net:load_parameters(sd, {name_map = pio.torchvision_resnet})
  local ref = assert(serial.load(io_path))
  local y = net(ref.x)
  local scale = ref.y:abs():max():asscalar()
  local err = (y - ref.y):abs():max():asscalar()
  assert(err <= 1e-4 * scale + 1e-5, string.format('max |y - torch| = %g (scale %g)', err, scale))
  os.remove(sd)
  os.remove(io_path)
end)

--[[ }================================================================== ]]
