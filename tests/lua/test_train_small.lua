-- test_train_small.lua: end-to-end training through trl.gluon with a plain SGD loop written
-- here (w <- w - lr*g by tensor ops; the real Trainer lives elsewhere): a 2-layer MLP on three
-- Gaussian blobs and a small CNN (conv-BN-ReLU-pool-dense) on bar images, both seeded, must
-- reach 100% training accuracy (the CNN in inference mode, so through BN's running statistics).
local H = require 'helpers'
local test, approx = H.test, H.approx
local trl = require 'trl'
local nd, autograd = trl.nd, trl.autograd
local nn, loss = trl.gluon.nn, trl.gluon.loss

-- One full-batch SGD step; returns the mean loss.
local function sgd_step(net, lossfn, x, y, lr)
  local l
  autograd.record(function() l = lossfn(net(x), y):mean() end)
  l:backward()
  for _, p in net:collect_params():items() do
    if p.grad_req ~= 'null' then
      local w = p:data()
      w:set(w - p:grad() * (lr * p.lr_mult))
    end
  end
  return l:asscalar()
end

local function accuracy(net, x, y)
  local pred = autograd.predict_mode(function() return net(x) end)
  return pred:argmax(2):astype('float32'):eq(y):astype('float32'):mean():asscalar()
end

test('a 2-layer MLP separates three blobs', function()
  nd.random.seed(42)
  local n, centers = 60, {{2, 0}, {-2, 2}, {-2, -2}}
  local x = nd.random.normal(0, 0.5, {3 * n, 2})
  local off, lab = {}, {}
  for c = 1, 3 do
    for i = 1, n do off[#off + 1] = centers[c]; lab[#lab + 1] = c - 1 end
  end
  x = x + nd.array(off)
  local y = nd.array(lab)
  local net = nn.HybridSequential()
  net:add(nn.Dense(16, {activation = 'relu'}), nn.Dense(3))
  net:initialize(trl.init.Xavier())
  local ce = loss.SoftmaxCrossEntropyLoss()
  local first, last
  for step = 1, 100 do
    last = sgd_step(net, ce, x, y, 0.5)
    first = first or last
    if step > 20 and accuracy(net, x, y) == 1 then break end
  end
  assert(last < first / 4, string.format('loss %.4f -> %.4f', first, last))
  approx(accuracy(net, x, y), 1)
  approx(net[1].weight.shape, {16, 2})
end)

test('a small CNN (conv-BN-ReLU-pool-dense) tells horizontal from vertical bars', function()
  nd.random.seed(3)
  local n = 32
  local imgs, lab = {}, {}
  for i = 1, n do
    local cls = i % 2
    local pos = 1 + (i * 5) % 8
    local img = {}
    for r = 1, 8 do
      img[r] = {}
      for c = 1, 8 do
        local on = (cls == 0 and r == pos) or (cls == 1 and c == pos)
        img[r][c] = on and 1 or 0
      end
    end
    imgs[i] = {img}
    lab[i] = cls
  end
  local x = nd.array(imgs) + nd.random.normal(0, 0.2, {n, 1, 8, 8})
  local y = nd.array(lab)
  local net = nn.HybridSequential()
  net:name_scope(function()
    net:add(nn.Conv2D(8, 3, {padding = 1}), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(2), nn.Dense(2))
  end)
  net:initialize(trl.init.Xavier())
  local ce = loss.SoftmaxCrossEntropyLoss()
  local first, last
  for step = 1, 150 do
    last = sgd_step(net, ce, x, y, 0.1)
    first = first or last
    if step >= 40 and accuracy(net, x, y) == 1 then break end
  end
  assert(last < first / 2, string.format('loss %.4f -> %.4f', first, last))
  approx(accuracy(net, x, y), 1)
  assert(net[2].running_mean:data():abs():sum():asscalar() > 0)   -- BN statistics moved
  approx(net[5].weight.shape, {2, 8 * 4 * 4})
end)
