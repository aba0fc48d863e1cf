-- test_serial.lua: trl._serial through Lua: loading MXNet .params, safetensors and .pth files
-- (format chosen by content), save -> load round trips, nil+msg for files that are missing or
-- malformed, and errors raised for bad arguments.
local trl = require 'trl'
local serial = require 'trl._serial'
local nd = trl.nd
local h = require 'helpers'

local TMP = h.tmpdir()
local SHARED = os.getenv('TRL_SHARED')
local FIX = SHARED and SHARED .. '/models/params-fixtures'
if FIX and not io.open(FIX .. '/EXPECTED.json') then FIX = nil end

local function same(a, b)
  assert(a:dtype() == b:dtype(), a:dtype() .. ' vs ' .. b:dtype())
  approx(a:shape(), b:shape())
  approx(a:totable(), b:totable(), 0)
end

test('load a genuine MXNet file (named and unnamed)', function()
  if not FIX then print('  (TRL_SHARED not set: skipped)') return end
  local t, names = serial.load(FIX .. '/mytest_gluon/mydict')
  assert(t, names)
  approx(#names, 2)
  assert(names[1] == 'x' and names[2] == 'y')
  approx(t.x:totable(), {1, 1, 1})
  approx(t.y:totable(), {0, 0, 0, 0})
  local l, n2 = serial.load_params(FIX .. '/mytest_gluon/xy')
  assert(#l == 2 and #n2 == 0, 'unnamed list: an array of tensors and no names')
  approx(l[1]:shape(), {3})
  local v0 = serial.load(FIX .. '/mxnet_legacy_ndarray_v0/legacy_ndarray.v0')
  approx(v0[6]:sum():asscalar(), 8128)
end)

test('load a PyTorch state_dict', function()
  local t, names = serial.load('tests/data/pth/tiny_p2.pth')
  assert(t, names)
  approx(#names, 18)
  assert(names[1] == '0.weight' and names[18] == 'extra.param')
  approx(t['0.weight']:shape(), {2, 1, 3, 3})
  assert(t['1.num_batches_tracked']:dtype() == 'int64')
  approx(t['extra.transposed']:totable(), {{0, 4, 8}, {1, 5, 9}, {2, 6, 10}, {3, 7, 11}})
  local t4 = serial.load_pth('tests/data/pth/tiny_p4.pth')
  same(t4['2.weight'], t['2.weight'])
end)

test('save_params -> load round trip', function()
  local path = TMP .. '/serial_rt.params'
  local w = nd.array{{1.5, -2}, {3, 4}}
  local ids = nd.array({5, -6, 7}, 'int64')
  local px = nd.array({0, 128, 255}, 'uint8')
  assert(serial.save_params(path, {'w', 'ids', 'px'}, {w, ids, px}) == true)
  local t, names = serial.load(path)
  assert(names[1] == 'w' and names[2] == 'ids' and names[3] == 'px')
  same(t.w, w)
  same(t.ids, ids)
  same(t.px, px)
  assert(serial.save_params(path, nil, {w, ids}))
  local l, n = serial.load_params(path)
  assert(#l == 2 and #n == 0)
  same(l[2], ids)
end)

test('save_safetensors -> load round trip with metadata', function()
  local path = TMP .. '/serial_rt.safetensors'
  local a = nd.arange(6):reshape{2, 3}
  local b = nd.array({1, 2}, 'int64')
  assert(serial.save_safetensors(path, {'b', 'a'}, {b, a}, {format = 'pt', by = 'trl'}))
  local t, names, meta = serial.load(path)
  assert(names[1] == 'b' and names[2] == 'a', 'file order is the order given')
  same(t.a, a)
  same(t.b, b)
  assert(meta.format == 'pt' and meta.by == 'trl')
  assert(serial.save_safetensors(path, {'a'}, {a}))
  local t2, _, meta2 = serial.load_safetensors(path)
  same(t2.a, a)
  assert(meta2 == nil)
end)

test('outside-world failures return nil, msg', function()
  local r, msg = serial.load(TMP .. '/no_such_file.params')
  assert(r == nil and msg:find('no_such_file.params', 1, true))
  local junk = TMP .. '/junk.bin'
  local f = assert(io.open(junk, 'wb'))
  f:write('definitely not a weight file')
  f:close()
  r, msg = serial.load(junk)
  assert(r == nil and msg:find('not a weight file', 1, true), msg)
  r, msg = serial.load_params(junk)
  assert(r == nil and msg:find('not an NDArray list', 1, true), msg)
  r, msg = serial.load('tests/data/pth/evil_global.pth')
  assert(r == nil and msg:find('refusing to call os.system', 1, true), msg)
  r, msg = serial.load('tests/data/pth/legacy.pth')
  assert(r == nil and msg:find('legacy .pth format not supported', 1, true), msg)
  r, msg = serial.save_params('/nonexistent/dir/x.params', {'a'}, {nd.zeros{1}})
  assert(r == nil and msg:find('/nonexistent/dir/x.params', 1, true), msg)
end)

test('bad arguments raise', function()
  local p = TMP .. '/bad.params'
  local a = nd.zeros{2}
  checkerror('bad argument #1', serial.load)
  checkerror('tensors[2] is not a live tensor', serial.save_params, p, {'a', 'b'}, {a, 1})
  checkerror('2 names for 1 tensors', serial.save_params, p, {'a', 'b'}, {a})
  checkerror('names[1] is not a string', serial.save_params, p, {1}, {a})
  checkerror("the name 'a' appears twice", serial.save_params, p, {'a', 'a'}, {a, a})
  checkerror('bad argument #2', serial.save_safetensors, p, nil, {a})
  checkerror('metadata keys and values must be strings', serial.save_safetensors, p, {'a'},
             {a}, {n = 1})
  checkerror('bad argument #3', serial.save_params, p, {'a'}, 'nope')
end)
