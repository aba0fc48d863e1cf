-- scripts/linreg.lua: linear regression from scratch (d2l "Linear Regression Implementation
-- from Scratch"), the smallest end-to-end use of trl: tensors, autograd.record, backward, SGD.
--   trl scripts/linreg.lua [epochs]
local trl = require 'trl'
local nd, autograd = trl.nd, trl.autograd

nd.random.seed(1)
local true_w, true_b = nd.array{{2}, {-3.4}}, 4.2
local num_examples, batch_size, lr = 1000, 10, 0.03
local num_epochs = tonumber(arg and arg[1]) or 3

-- y = Xw + b + noise
local features = nd.random.normal(0, 1, {num_examples, 2})
local labels = features:matmul(true_w) + true_b + nd.random.normal(0, 0.01, {num_examples, 1})

local w = nd.random.normal(0, 0.01, {2, 1}):attach_grad()
local b = nd.zeros{1}:attach_grad()

local function net(X) return X:matmul(w) + b end
local function squared_loss(y_hat, y) return (y_hat - y:reshape(y_hat:shape())) ^ 2 / 2 end
local function sgd(params)
  for _, p in ipairs(params) do p:set(p - p.grad * (lr / batch_size)) end
end

for epoch = 1, num_epochs do
  for first = 1, num_examples, batch_size do
    local X = features:narrow(1, first, batch_size)
    local y = labels:narrow(1, first, batch_size)
    local l = autograd.record(function() return squared_loss(net(X), y) end)
    l:backward()           -- as in Gluon, the gradient of l:sum()
    sgd{w, b}
  end
  local train_l = squared_loss(net(features), labels)
  print(string.format('epoch %d, loss %f', epoch, train_l:mean():asscalar()))
end
print('w error', (true_w - w):reshape{2})
print('b error', true_b - b:asscalar())
