--[[
trl.d2l: the name d2l's notebooks use for their helper package (gluonbook / d2lzh):
  local d2l = require 'trl.d2l'; d2l.train(train_iter, test_iter, net, loss, trainer, ctx, 5)
It is trl.utils under another name; see lua/trl/utils.lua.
]]
return require 'trl.utils'
