--[[
trl.gluon.model_zoo: Gluon's model zoo: 'vision' (the networks) and 'model_store' (pretrained
weight files: cache, download, sha1). Requiring it also installs Block:load_parameters and
Block:save_parameters (trl.gluon.params_io).
]]
require 'trl.gluon.params_io'

return {
  vision = require 'trl.gluon.model_zoo.vision',
  model_store = require 'trl.gluon.model_zoo.model_store',
}
