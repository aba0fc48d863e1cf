-- test_zoo.lua: trl.gluon.model_zoo.vision against Gluon 1.x: the structural and prefixed
-- names and shapes of every model in $TRL_SHARED/models/NAMES.tsv, the other models' shapes,
-- features/output swapping, the acceptance checks on the shared weight files (squeezenet1.1
-- reference logits, mobilenetv2 features, resnet50_v2 partial, resnet18_v2 round trips) and
-- scripts/classify.lua on the reference photos.
local trl = require 'trl'
local block = require 'trl.gluon.block'
local zoo = require 'trl.gluon.model_zoo'
local serial = require 'trl._serial'
local h = require 'helpers'

local nd, vision = trl.nd, zoo.vision
local TMP = h.tmpdir()
local SHARED = os.getenv('TRL_SHARED')
local MODELS = SHARED and SHARED .. '/models/'
if MODELS and not io.open(MODELS .. 'NAMES.tsv') then MODELS = nil end
local function skip() print('  (TRL_SHARED/models not found: skipped)') end

local function shape_str(s) return table.concat(s, 'x') end

-- A fresh process's counters, so prefixes are the first instance's (resnetv20_, ...).
local function build(name, opts)
  block._reset_name_counters()
  return vision.get_model(name, opts)
end

-- Forward once so deferred shapes (BatchNorm channels) are known.
local function settle(net, size)
  net:initialize()
  return net(nd.random.uniform(0, 1, {1, 3, size, size}))
end

--[[ {==================================================================
** Names and shapes
** =================================================================== ]]

local function read_tsv()
  local rows = {}
  local f = assert(io.open(MODELS .. 'NAMES.tsv'))
  f:read('l')
  for line in f:lines() do
    local m, i, s, shape, p, flat = line:match('^([^\t]+)\t(%d+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t?(.*)$')
    assert(m, 'bad NAMES.tsv line: ' .. line)
    rows[m] = rows[m] or {}
    rows[m][tonumber(i) + 1] = {s, shape, p, flat}
  end
  f:close()
  return rows
end

-- NAMES.tsv model name -> get_model name and the input size for the settling forward.
local TSV_MODELS = {
  resnet18_v1 = {'resnet18_v1', 32}, resnet18_v2 = {'resnet18_v2', 32},
  resnet50_v2 = {'resnet50_v2', 32}, ['mobilenet_v2_1.0'] = {'mobilenetv2_1.0', 32},
  ['squeezenet1.1'] = {'squeezenet1.1', 224},
}

test('NAMES.tsv: structural and prefixed names, shapes and order', function()
  if not MODELS then return skip() end
  local rows = read_tsv()
  local n = 0
  for m, spec in pairs(TSV_MODELS) do
    local want = assert(rows[m], m .. ' missing from NAMES.tsv')
    local net = build(spec[1])
    settle(net, spec[2])
    local sp = net:structural_params()
    local cp = net:collect_params():keys()
    assert(#sp == #want, string.format('%s: %d parameters, expected %d', m, #sp, #want))
    assert(#cp == #want, m .. ': collect_params count')
    for i, w in ipairs(want) do
      local name, p = sp[i][1], sp[i][2]
      assert(name == w[1], string.format('%s #%d: structural %s, expected %s', m, i - 1, name, w[1]))
      assert(shape_str(p.shape) == w[2], string.format('%s %s: shape %s, expected %s', m, name,
        shape_str(p.shape), w[2]))
      assert(p.name == w[3], string.format('%s %s: prefixed %s, expected %s', m, name, p.name, w[3]))
      if w[4] ~= '' then assert(p.name == net.prefix .. w[4], m .. ': flat name ' .. w[4]) end
    end
    n = n + 1
  end
  assert(n == 5)
end)

test('resnet18_v2 has exactly the 98 names of Gluon', function()
  local net = build('resnet18_v2')
  settle(net, 32)
  local sp = net:structural_params()
  approx(#sp, 98)
  assert(sp[1][1] == 'features.0.gamma' and sp[98][1] == 'output.bias')
  assert(net.prefix == 'resnetv20_' and sp[5][2].name == 'resnetv20_conv0_weight')
  approx(sp[97][2].shape, {1000, 512})
end)

-- Gluon's parameter counts (tensors) and the number of float32 elements, from the source.
test('every zoo model builds and runs', function()
  local cases = {
    {'resnet34_v1', 32, 182}, {'resnet50_v1', 32, 299}, {'resnet101_v1', 32, 588},
    {'resnet152_v1', 32, 877}, {'resnet34_v2', 32, 178}, {'resnet101_v2', 32, 514},
    {'resnet152_v2', 32, 769}, {'squeezenet1.0', 224, 52}, {'squeezenet1_1', 224, 52},
    {'mobilenetv2_0.75', 32, 266}, {'mobilenet_v2_0_5', 32, 266}, {'mobilenetv2_0.25', 32, 266},
    {'mobilenet_v2_1.0', 32, 266},
    {'mobilenet1.0', 32, 137}, {'mobilenet0.25', 32, 137},
  }
  for _, c in ipairs(cases) do
    local net = build(c[1], {classes = 7})
    local y = settle(net, c[2])
    approx(y:shape(), {1, 7})
    local n = #net:structural_params()
    assert(n == c[3], string.format('%s: %d parameters, expected %d', c[1], n, c[3]))
  end
  -- widths: mobilenetv2_0.25's first conv has int(32*0.25) = 8 channels, its last 1280
  local m = build('mobilenetv2_0.25')
  settle(m, 32)
  approx(m.features[1].weight.shape, {8, 3, 3, 3})
  approx(m.output[1].weight.shape, {1000, 1280, 1, 1})
  checkerror("model 'resnet19_v1' is not supported", vision.get_model, 'resnet19_v1')
  checkerror('invalid number of layers 19', vision.get_resnet, 1, 19)
end)

test('features/output are readable and assignable (fine-tuning)', function()
  local pre = build('resnet18_v2')
  settle(pre, 32)
  local fine = vision.resnet18_v2{classes = 2}
  fine.features = pre.features
  assert(fine.features == pre.features)
  fine.output:initialize(trl.init.Xavier())
  local y = fine(nd.random.uniform(0, 1, {2, 3, 32, 32}))
  approx(y:shape(), {2, 2})
  local sp = fine:structural_params()
  approx(#sp, 98)
  assert(sp[1][2] == pre:structural_params()[1][2], 'features parameters are shared')
  approx(sp[97][2].shape, {2, 512})
  assert(fine:collect_params():keys()[1] == 'resnetv20_batchnorm0_gamma')
end)

--[[ }================================================================== ]]

--[[ {==================================================================
** The shared weight files
** =================================================================== ]]

local function check_logits(y, ref, what)
  approx(y:shape(), ref:shape())
  local a, b = y:totable()[1], ref:totable()[1]
  local worst, ia, ib = 0, 1, 1
  for i = 1, #b do
    local excess = math.abs(a[i] - b[i]) - (1e-5 * math.abs(b[i]) + 5e-4)
    if excess > worst then worst = excess end
    if a[i] > a[ia] then ia = i end
    if b[i] > b[ib] then ib = i end
  end
  assert(worst <= 0, string.format('%s: logits off by %g over the tolerance', what, worst))
  assert(ia == ib, string.format('%s: argmax %d, expected %d', what, ia - 1, ib - 1))
end

test('squeezenet1.1 (flat names) reproduces the reference logits', function()
  if not MODELS then return skip() end
  local net = vision.get_model('squeezenet1.1', {pretrained = MODELS .. 'squeezenet1.1.params'})
  local ref = assert(serial.load(MODELS .. 'reference/squeezenet1.1-onnx-test-data.params'))
  for i = 0, 2 do
    local t0 = trl.clock()
    local y = net(ref['input_' .. i])
    if i == 1 then print(string.format('  squeezenet1.1 forward, batch 1: %.3f s', trl.clock() - t0)) end
    check_logits(y, ref['output_' .. i], 'input_' .. i)
  end
  local ph = assert(serial.load(MODELS .. 'reference/photos-preprocessed.params'))
  for _, n in ipairs{'webnn_test', 'dog'} do
    check_logits(net(ph['input_' .. n]), ph['logits_' .. n], n)
  end
end)

test('mobilenet_v2_1.0 loads the features file with only output.0.weight missing', function()
  if not MODELS then return skip() end
  local path = MODELS .. 'mobilenetv2_1.0-features.params'
  local net = build('mobilenetv2_1.0')
  local r = require('trl.gluon.params_io').match(net, path)
  assert(#r.missing == 1 and r.missing[1] == 'output.0.weight')
  assert(#r.unexpected == 0 and #r.mismatched == 0 and #r.assign == 265)
  local msg = checkerror('Missing (1) output.0.weight', net.load_parameters, net, path)
  assert(msg:find('into mobilenetv2_1.0', 1, true), msg)
  net:load_parameters(path, {allow_missing = true})
  local w = net.features[1].weight
  assert(w:is_initialized())
  approx(w.shape, {32, 3, 3, 3})
  assert(not net.output[1].weight:is_initialized())
  net.output:initialize()
  local y = net(nd.random.uniform(0, 1, {1, 3, 64, 64}))
  approx(y:shape(), {1, 1000})
end)

test('resnet50_v2 partial file: exactly the 10 known missing names', function()
  if not MODELS then return skip() end
  local path = MODELS .. 'resnet50_v2-partial.params'
  local net = build('resnet50_v2')
  local msg = checkerror('Error(s) in loading parameters from ' .. path .. ' into resnet50_v2',
                         net.load_parameters, net, path)
  local want = {'features.8.0.conv2.weight', 'features.8.0.conv3.weight',
    'features.8.0.downsample.weight', 'features.8.1.conv1.weight', 'features.8.1.conv2.weight',
    'features.8.1.conv3.weight', 'features.8.2.conv1.weight', 'features.8.2.conv2.weight',
    'features.8.2.conv3.weight', 'output.weight'}
  assert(msg:find('Missing (10) ' .. table.concat(want, ', '), 1, true), msg)
  assert(not msg:find('Unexpected', 1, true) and not msg:find('Shape mismatch', 1, true), msg)
  assert(not net.features[1].gamma:is_initialized(), 'a failed load sets nothing')
  net:load_parameters(path, {allow_missing = true})
  approx(net.features[2].weight.shape, {64, 3, 7, 7})
  approx(net.output.bias:data():shape(), {1000})
end)

test('resnet18_v2 save -> load round-trips bit-exactly (.params and safetensors)', function()
  local net = build('resnet18_v2')
  settle(net, 32)
  local sp = net:structural_params()
  for _, ext in ipairs{'.params', '.safetensors'} do
    local path = TMP .. '/zoo_rt_resnet18_v2' .. ext
    net:save_parameters(path)
    local t, names = assert(serial.load(path))
    approx(#names, 98)
    for i, e in ipairs(sp) do assert(names[i] == e[1], ext .. ': file order') end
    if ext == '.params' then
      local f = assert(io.open(path, 'rb'))
      approx(f:seek('end'), 46789983)          -- NAMES.md: the V2 size with these names
      f:close()
    end
    local back = vision.resnet18_v2()
    back:load_parameters(path)
    local sb = back:structural_params()
    for i, e in ipairs(sp) do
      local a, b = e[2]:data(), sb[i][2]:data()
      approx(b:shape(), a:shape())
      assert(a:eq(b):sum():asscalar() == a:numel(), ext .. ': ' .. e[1] .. ' differs')
    end
    assert(t)
  end
end)

--[[ }================================================================== ]]

--[[ {==================================================================
** scripts/classify.lua
** =================================================================== ]]

test('classify.lua gives the reference top-1 for both photos', function()
  if not MODELS then return skip() end
  local bin = os.getenv('TRL_BIN') or arg[-1]
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local ref = {}
  for line in io.lines(MODELS .. 'reference/photos-top5.tsv') do
    local file, top = line:match('^([^#\t]+)\t(%d+):')
    if file then ref[file] = tonumber(top) end
  end
  for _, model in ipairs{'squeezenet1.1', 'squeezenet1_1'} do
    local cmd = string.format('%s scripts/classify.lua --model %s --weights %s --labels %s %s %s',
      q(bin), model, q(MODELS .. 'squeezenet1.1.params'), q(MODELS .. 'imagenet_labels.txt'),
      q(MODELS .. 'reference/photos/webnn_test.jpg'), q(MODELS .. 'reference/photos/dog.jpg'))
    local p = assert(io.popen(cmd .. ' 2>&1'))
    local out = p:read('a')
    assert(p:close(), 'classify.lua failed:\n' .. out)
    local got, cur, count = {}, nil, {}
    for line in out:gmatch('[^\n]+') do
      local img = line:match('^== .*/([^/]+)$')
      if img then
        cur = img
        count[cur] = 0
      else
        local id, prob, name = line:match('^(%d+) ([%d.]+) (.+)$')
        assert(id and cur, 'unexpected line: ' .. line)
        count[cur] = count[cur] + 1
        if count[cur] == 1 then got[cur] = {tonumber(id), tonumber(prob), name} end
      end
    end
    assert(count['webnn_test.jpg'] == 5 and count['dog.jpg'] == 5, out)
    for file, top in pairs(ref) do
      assert(got[file][1] == top, string.format('%s: top-1 %d, expected %d', file, got[file][1], top))
    end
    assert(got['webnn_test.jpg'][3]:find('lesser panda', 1, true))
    assert(math.abs(got['webnn_test.jpg'][2] - 0.9977) < 0.005)
    assert(math.abs(got['dog.jpg'][2] - 0.6452) < 0.03)
  end
end)

--[[ }================================================================== ]]
