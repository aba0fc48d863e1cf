-- bench/peak_rss.lua: peak RSS (VmHWM) and peak tensor bytes of two ResNet-18 v2 SGD train
-- steps at a given batch (default 128), 224x224, with the step times. The net is hybridized,
-- as the notebook (d2l's train_fine_tuning) and bench/resnet.lua run it; 'plain' runs it
-- layer by layer instead.
--   trl bench/peak_rss.lua [BATCH] [plain]      (TRL_CACHE_MB: the block cache's slack)
local trl = require 'trl'
local nd, gluon = trl.nd, trl.gluon
local B = tonumber(arg[1]) or 128
local plain = arg[2] == 'plain'
local net = gluon.model_zoo.vision.resnet18_v2{classes = 1000}
net:initialize(trl.init.Xavier())
if not plain then net:hybridize() end
print(string.format('resnet18_v2, batch %d, %s', B, plain and 'plain' or 'hybridized'))
local loss = gluon.loss.SoftmaxCrossEntropyLoss()
local trainer = gluon.Trainer(net:collect_params(), 'sgd', {learning_rate = 0.01})
local x = nd.random.uniform(0, 1, {B, 3, 224, 224})
local y = nd.zeros({B}, 'int64')
for i = 1, 2 do
  local t0 = trl.clock()
  local l = trl.autograd.record(function() return loss(net(x), y) end)
  l:backward()
  trainer:step(B)
  print(string.format('step %d: %.2f s', i, trl.clock() - t0))
end
for line in io.lines('/proc/self/status') do
  if line:match('^VmHWM') then print(line) end
end
print(string.format('peak tensor bytes held %.0f MB', trl.debug.mem_peak() / 2^20))
