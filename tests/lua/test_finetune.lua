-- test_finetune.lua: scripts/finetune.lua and scripts/exercises/*.lua as a user runs them
-- (subprocesses of this trl): failing fast with a helpful message when data or weights are
-- missing, a tiny end-to-end run on the shared hotdog.zip (--limit 8, 64x64 images), exact
-- --resume, a features-only weight file, and every exercise once. Needs TRL_SHARED for data.
local H = require 'helpers'
local test = H.test
local trl = require 'trl'
local cjson = require 'cjson'

local TMP = H.tmpdir() .. '/finetune'
-- absolute paths: the scripts run in TMP
local function abs(p)
  if p:sub(1, 1) == '/' then return p end
  local cwd = io.popen('pwd'):read('l')
  return cwd .. '/' .. p:gsub('^%./', '')
end
local TRL = abs(arg and arg[-1] or 'trl')
local SRC = abs((debug.getinfo(1, 'S').source:match('^@(.*)/tests/lua/[^/]*$')) or '.')
local SHARED = os.getenv('TRL_SHARED')
local ZIP = SHARED and SHARED .. '/data/hotdog.zip'
local LINE = '^epoch %d+, loss %d+%.%d%d%d%d, train acc %d%.%d%d%d, test acc %d%.%d%d%d, '
  .. 'time %d+%.%d sec$'

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function slurp(path)
  local f = io.open(path, 'rb')
  if not f then return '' end
  local s = f:read('a')
  f:close()
  return s
end
os.execute('rm -rf ' .. q(TMP) .. ' && mkdir -p ' .. q(TMP .. '/home'))

-- Run a script with TRL_HOME = TMP/home; returns ok, stdout, stderr, seconds.
local function run(script, flags)
  local out, err = TMP .. '/out.txt', TMP .. '/err.txt'
  local t0 = trl.clock()
  local ok = os.execute(string.format('cd %s && TRL_HOME=%s %s %s %s >%s 2>%s', q(TMP),
    q(TMP .. '/home'), q(TRL), q(SRC .. '/' .. script), flags, q(out), q(err)))
  return ok, slurp(out), slurp(err), trl.clock() - t0
end

local function epoch_lines(out)
  local r = {}
  for l in out:gmatch('[^\n]+') do
    if l:match('^epoch ') then
      assert(l:match(LINE), 'bad epoch line: ' .. l)
      r[#r + 1] = l
    end
  end
  return r
end

local function has(s, sub) return s:find(sub, 1, true) ~= nil end

test('without data or weights it stops at once and says which file to put where', function()
  local ok, out, err, secs = run('scripts/finetune.lua', '--data ' .. q(TMP .. '/none.zip'))
  assert(not ok, 'must fail')
  assert(secs < 2, string.format('took %.2f s', secs))
  assert(has(err, 'pretrained weights for resnet18_v2 not found: put '
    .. 'resnet18_v2-a81db45f.params in ' .. TMP .. '/home/models/ (or pass --weights FILE)'), err)
  assert(has(err, 'data not found: ' .. TMP .. '/none.zip does not exist'), err)
  assert(not has(out, 'epoch'), out)
  -- scratch only needs no weights; the default data location is named when --data is absent
  ok, out, err, secs = run('scripts/finetune.lua', '--nets scratch')
  assert(not ok and secs < 2 and not has(err, 'weights'), err)
  assert(has(err, 'hotdog data not found: put hotdog.zip') and has(err, TMP .. '/home/data/'),
         err)
  ok, out, err = run('scripts/finetune.lua', '--weights ' .. q(TMP .. '/no.params'))
  assert(not ok and has(err, TMP .. '/no.params does not exist (--weights)'), err)
end)

if not (ZIP and io.open(ZIP)) then
  print('SKIP the end-to-end runs: TRL_SHARED is not set (or has no data/hotdog.zip)')
  return
end

local DATA = '--data ' .. q(ZIP) .. ' --workers 2'
local QUICK = DATA .. ' --limit 8 --image-size 64'

test('finetune.lua --nets scratch on 16+16 images prints epoch lines, JSON, PNGs', function()
  local ok, out, err = run('scripts/finetune.lua', QUICK .. ' --epochs 1 --nets scratch '
    .. '--model resnet18_v2 --show samples.png --json h.jsonl --plot curves.png')
  assert(ok, out .. err)
  local lines = epoch_lines(out)
  assert(#lines == 1 and lines[1]:match('^epoch 1,'), out)
  assert(has(out, '16 training and 16 test images, classes hotdog, not-hotdog'), out)
  for _, png in ipairs{'samples.png', 'curves.png'} do
    assert(slurp(TMP .. '/' .. png):sub(1, 4) == '\137PNG', png .. ' is a PNG')
  end
  local rec = cjson.decode(slurp(TMP .. '/h.jsonl'):match('[^\n]+'))
  assert(rec.run == 'scratch' and rec.epoch == 1 and rec.lr == 0.1)
  assert(err == '', 'nothing on stderr: ' .. err)
end)

test('--save 1 epoch, then --resume to 2 epochs == 2 uninterrupted epochs', function()
  local flags = QUICK .. ' --nets scratch --show none --batch-size 8'
  local ok, out = run('scripts/finetune.lua', flags .. ' --epochs 2 --json full.jsonl')
  assert(ok, out)
  ok, out = run('scripts/finetune.lua', flags .. ' --epochs 1 --save ck')
  assert(ok and #epoch_lines(out) == 1, out)
  ok, out = run('scripts/finetune.lua', flags .. ' --epochs 2 --resume ck --json res.jsonl')
  assert(ok, out)
  local lines = epoch_lines(out)
  assert(#lines == 1 and lines[1]:match('^epoch 2,'), out)
  local full, res = {}, {}
  for l in slurp(TMP .. '/full.jsonl'):gmatch('[^\n]+') do full[#full + 1] = cjson.decode(l) end
  for l in slurp(TMP .. '/res.jsonl'):gmatch('[^\n]+') do res[#res + 1] = cjson.decode(l) end
  assert(#full == 2 and #res == 1)
  assert(res[1].loss == full[2].loss and res[1].train_acc == full[2].train_acc
         and res[1].test_acc == full[2].test_acc, slurp(TMP .. '/res.jsonl'))
end)

-- A resnet18_v2 weight file with random weights (no real one is available here).
local FAKE = TMP .. '/resnet18_v2-random.params'
local function fake_resnet()
  if io.open(FAKE) then return FAKE end
  require 'trl.gluon.model_zoo'
  trl.nd.random.seed(3)
  local net = trl.gluon.model_zoo.vision.resnet18_v2()
  net:initialize(trl.init.Xavier())
  trl.autograd.pause(function() net(trl.nd.zeros{1, 3, 32, 32}) end)
  net:save_parameters(FAKE)
  return FAKE
end

test('finetune.lua --nets finetune with --weights and lr_mult 10; a features-only file', function()
  local ok, out, err = run('scripts/finetune.lua', QUICK .. ' --epochs 1 --nets finetune '
    .. '--show none --output-lr-mult 10 --weights ' .. q(fake_resnet()))
  assert(ok, out .. err)
  assert(has(out, 'Dense(512 -> 1000, linear)'), 'prints pretrained_net.output: ' .. out)
  assert(#epoch_lines(out) == 1, out)
  -- mobilenetv2_1.0-features.params has no output layer: it goes into net.features
  local args = {model = 'mobilenetv2_1.0'}
  local common = require 'trl.finetune_common'
  local path = SHARED .. '/models/mobilenetv2_1.0-features.params'
  local net = common.pretrained(args, path)
  local file = require('trl._serial').load(path)
  H.approx(net.features[1].weight:data():reshape{-1}:totable(),
           file['features.0.weight']:reshape{-1}:totable(), 0)
end)

test('each exercise runs on a tiny subset and prints its summary', function()
  local mobilenet = '--model mobilenet_v2_1.0 --weights '
    .. q(SHARED .. '/models/mobilenetv2_1.0-features.params')
  local runs = {
    {'freeze', mobilenet, {"frozen, bn='frozen'", "frozen, bn='train'", 'full fine-tuning'}},
    {'lr_sweep', mobilenet .. ' --lrs 0.01,0.1', {'lr 0.01', 'lr 0.1'}},
    {'freeze', mobilenet .. ' --runs train,full', {"frozen, bn='train'", 'full fine-tuning'}},
    {'fewer_layers', '--weights ' .. q(fake_resnet()) .. ' --stages 0,4',
     {'first 0 of 4 stages pretrained', 'first 4 of 4 stages pretrained'}},
    {'fewer_layers', mobilenet .. ' --stages 2',
     {'first 2 of 5 stages pretrained'}},
    {'hotdog_w', '--model squeezenet1.1 --image-size 224 --limit 2 --weights '
     .. q(SHARED .. '/models/squeezenet1.1.params'), {'hot-dog row 934 output', 'Xavier output'}},
  }
  for _, r in ipairs(runs) do
    local base = r[1] == 'hotdog_w' and DATA or QUICK
    local ok, out, err = run('scripts/exercises/' .. r[1] .. '.lua',
      base .. ' --epochs 1 --batch-size 16 ' .. r[2])
    assert(ok, r[1] .. ': ' .. out .. err)
    assert(#epoch_lines(out) == #r[3], r[1] .. ': ' .. out)
    for _, name in ipairs(r[3]) do assert(has(out, '\n' .. name), r[1] .. ': ' .. out) end
  end
end)

test('fewer_layers: ResNet and MobileNetV2 stages; reinit_stages keeps the first k', function()
  local common = require 'trl.finetune_common'
  local vision = trl.gluon.model_zoo.vision
  local r = common.stages(vision.resnet18_v2().features)
  assert(#r == 4 and r[1][1] == 6 and r[4][1] == 9, 'resnet18_v2 stages are children 6..9')
  local m, last = common.stages(vision.mobilenet_v2_1_0().features)
  local sizes = {}
  for i, s in ipairs(m) do sizes[i] = #s end
  assert(table.concat(sizes, ',') == '1,2,3,7,4' and m[1][1] == 4 and last == 20,
         'mobilenet_v2 stages: ' .. table.concat(sizes, ','))
  assert(common.stages(vision.squeezenet1_1().features) == nil)

  local path = SHARED .. '/models/mobilenetv2_1.0-features.params'
  local net = common.pretrained({model = 'mobilenet_v2_1.0'}, path)
  local file = require('trl._serial').load(path)
  common.reinit_stages(net.features, 2)
  -- kept: stem conv (features.0) and a conv of stage 2 (features.3 = the 3rd bottleneck)
  local function same(p, name)
    return (p:data():reshape{-1} - file[name]:reshape{-1}):abs():max():item() == 0
  end
  assert(same(net.features[1].weight, 'features.0.weight'))
  assert(same(net.features[6].out[1].weight, 'features.5.out.0.weight'))
  -- re-initialized: stage 3 (features.6) and the last 1x1 conv, its BN back to defaults
  assert(not same(net.features[7].out[1].weight, 'features.6.out.0.weight'))
  assert(not same(net.features[21].weight, 'features.20.weight'))
  local bn = net.features[22]
  assert(bn.running_var:data():min():item() == 1 and bn.running_mean:data():abs():max():item() == 0)
end)
