-- test_nd.lua: trl.nd through Lua: constructors, operators, broadcasting, indexing and views,
-- reductions, dtypes, printing, errors that name shapes, autograd entry points and GC.
local trl = require 'trl'
local nd, autograd = trl.nd, trl.autograd

test('constructors and shapes', function()
  local a = nd.array{{1, 2}, {3, 4}}
  assert(a:dtype() == 'float32')
  approx(a:shape(), {2, 2})
  approx(a:totable(), {{1, 2}, {3, 4}})
  approx(nd.zeros{2, 3}:totable(), {{0, 0, 0}, {0, 0, 0}})
  approx(nd.ones(2, 2):sum():asscalar(), 4)
  approx(nd.full({3}, 7):totable(), {7, 7, 7})
  approx(nd.arange(5):totable(), {0, 1, 2, 3, 4})
  approx(nd.arange(1, 2, 0.5):totable(), {1, 1.5})
  local i = nd.array({1, 2, 3}, 'int64')
  assert(i:dtype() == 'int64' and math.type(i[1]) == 'integer')
  checkerror("unknown dtype 'float16'", nd.zeros, {2}, 'float16')
  checkerror('ragged nested table', nd.array, {{1, 2}, {3}})
  assert(#nd.zeros{5, 2} == 5)
  approx(nd.array(3.5):asscalar(), 3.5)
end)

test('the foundation example', function()
  approx(nd.arange(6):reshape{2, 3}:sum():asscalar(), 15)
  assert(tostring(nd.arange(6):reshape{2, 3}:sum()) == '15')
end)

test('arithmetic with broadcasting and scalars', function()
  local a = nd.array{{1, 2, 3}, {4, 5, 6}}
  local b = nd.array{10, 20, 30}
  approx((a + b):totable(), {{11, 22, 33}, {14, 25, 36}})
  approx((a - 1):totable(), {{0, 1, 2}, {3, 4, 5}})
  approx((2 * a):totable(), {{2, 4, 6}, {8, 10, 12}})
  approx((a / 2):totable(), {{0.5, 1, 1.5}, {2, 2.5, 3}})
  approx((a ^ 2):totable(), {{1, 4, 9}, {16, 25, 36}})
  approx((-a):totable(), {{-1, -2, -3}, {-4, -5, -6}})
  approx((a % 4):totable(), {{1, 2, 3}, {0, 1, 2}})
  approx((a // 4):totable(), {{0, 0, 0}, {1, 1, 1}})
  local col = nd.array{{1}, {2}}
  approx((col * b):totable(), {{10, 20, 30}, {20, 40, 60}})
  checkerror('add: shapes do not broadcast, a is [2,3], b is [2]', function() return a + nd.array{1, 2} end)
  -- integer tensors keep integer arithmetic; '/' gives float32
  local i = nd.array({7, -7}, 'int64')
  assert((i + 1):dtype() == 'int64')
  approx((i // 2):totable(), {3, -4})
  assert((i / 2):dtype() == 'float32')
  assert((i * 0.5):dtype() == 'float32')
  local u = nd.array({250, 3}, 'uint8')
  assert((u + 1):dtype() == 'uint8')
end)

test('comparisons', function()
  local a, b = nd.array{1, 2, 3}, nd.array{3, 2, 1}
  approx(a:lt(b):totable(), {1, 0, 0})
  approx(a:eq(b):totable(), {0, 1, 0})
  approx(a:ge(2):totable(), {0, 1, 1})
  assert(a:eq(b):dtype() == 'uint8')
  assert(a == nd.array{1, 2, 3} and a ~= b)
  assert(nd.array(1) < nd.array(2) and nd.array{2} <= 2)
  checkerror("'<' compares single-element tensors; this one is [3]", function() return a < b end)
  -- the notebook's accuracy idiom: argmax is 0-based like labels
  local yhat = nd.array{{0.1, 0.9}, {0.8, 0.2}, {0.3, 0.7}}
  local y = nd.array({1, 0, 0}, 'int64')
  approx(yhat:argmax(2):eq(y):sum():asscalar(), 2)
end)

test('reductions', function()
  local a = nd.array{{1, 5, 3}, {4, 2, 6}}
  approx(a:sum(1):totable(), {5, 7, 9})
  approx(a:sum(2):totable(), {9, 12})
  approx(a:sum(-1, true):shape(), {2, 1})
  approx(a:mean():asscalar(), 3.5)
  approx(a:max(2):totable(), {5, 6})
  approx(a:min(1):totable(), {1, 2, 3})
  approx(a:argmax(2):totable(), {1, 2})
  assert(a:argmax(2):dtype() == 'int64')
  approx(a:argmin():asscalar(), 0)
  checkerror('sum: dim 3 out of range for a 2-dim tensor', a.sum, a, 3)
  approx(nd.array({1, 2, 3}, 'int64'):sum():asscalar(), 6)
  approx(nd.array({1, 2}, 'uint8'):mean():asscalar(), 1.5)
end)

test('views share storage', function()
  local a = nd.arange(12):reshape{3, 4}
  local t = a:transpose()
  assert(t:storage_id() == a:storage_id() and not t:is_contiguous())
  approx(t:shape(), {4, 3})
  local row = a[2]
  assert(row:storage_id() == a:storage_id())
  approx(row:totable(), {4, 5, 6, 7})
  local cols = a[{{}, {2, 3}}]
  approx(cols:totable(), {{1, 2}, {5, 6}, {9, 10}})
  local stepped = a:slice(2, 1, -1, 2)
  approx(stepped:totable(), {{0, 2}, {4, 6}, {8, 10}})
  assert(a[{-1, -1}] == nil or true)
  approx(a[{-1, {-2, -1}}]:totable(), {10, 11})
  a[{1, {1, 2}}] = 100                       -- writes through the view
  approx(a:totable()[1], {100, 100, 2, 3})
  row:set(nd.array{-1, -2, -3, -4})
  approx(a[2]:totable(), {-1, -2, -3, -4})
  a[3] = nd.array{9, 9, 9, 9}
  approx(a:sum(2):totable()[3], 36)
  approx(a[3][2], 9)                         -- a number for a 1-D integer index
  -- a view keeps its storage alive after the base tensor is gone
  local v = nd.arange(6):reshape{2, 3}[2]
  collectgarbage(); collectgarbage()
  approx(v:totable(), {3, 4, 5})
  checkerror('index 4 out of range for dim 1 of [3,4]', function() return a[4] end)
  checkerror('reshape: cannot reshape [3,4] (12 elements) into [5,2]', a.reshape, a, {5, 2})
  local e = nd.array{{1}, {2}}:expand{2, 3}
  approx(e:totable(), {{1, 1, 1}, {2, 2, 2}})
  approx(nd.zeros{2, 1, 3}:squeeze():shape(), {2, 3})
  approx(nd.zeros{2, 3}:unsqueeze(1):shape(), {1, 2, 3})
  approx(nd.zeros{2, 3, 4}:permute{3, 1, 2}:shape(), {4, 2, 3})
  approx(nd.zeros{2, 3, 4}:flatten():shape(), {2, 12})
  -- copy/astype make new storage
  local c = a:copy()
  assert(c:storage_id() ~= a:storage_id())
  assert(a:astype('int64'):dtype() == 'int64')
end)

test('version: every write through the tensor API moves it, reads do not', function()
  local N, O = require 'trl._nn', require 'trl._optim'
  local a = nd.arange(12):reshape{3, 4}
  local v = a:version()
  assert(math.type(v) == 'integer')
  local function moved(what, f)
    local before = a:version()
    f()
    assert(a:version() ~= before, what .. ': version did not move')
    assert(a:transpose():version() == a:version(), what .. ': a view sees another version')
  end
  local r = a + 1
  local _ = a:sum(), a:transpose():copy(), a[2], a:totable(), a:reshape{12}
  assert(a:version() == v, 'reads moved the version')
  assert(r:version() ~= v and nd.zeros{3, 4}:version() ~= a:version())
  moved('fill', function() a:fill(2) end)
  moved('set(number)', function() a:set(3) end)
  moved('set(tensor)', function() a:set(nd.ones{3, 4}) end)
  moved('t[i] = number', function() a[2] = 5 end)
  moved('t[{i, j}] = tensor on a view', function() a:transpose()[{1, {1, 2}}] = nd.zeros{2} end)
  local g = nd.ones{3, 4}
  moved('sgd', function() O.sgd(a, g, nil, 0.1, 0, 1) end)
  local m, s2 = nd.zeros{3, 4}, nd.zeros{3, 4}
  moved('adam', function() O.adam(a, g, m, s2, 0.1, 0, 1, 0.9, 0.999, 1e-8) end)
  -- BatchNorm's running statistics in training; gradients in backward
  local x = nd.random.uniform(-1, 1, {4, 3, 2, 2})
  local mean, var = nd.zeros{3}, nd.ones{3}
  local vm, vv = mean:version(), var:version()
  N.batch_norm(x, nil, nil, mean, var, {training = true})
  assert(mean:version() ~= vm and var:version() ~= vv, 'running statistics')
  vm = mean:version()
  N.batch_norm(x, nil, nil, mean, var, {training = false})
  assert(mean:version() == vm, 'predict mode wrote the running mean')
  local w = nd.ones{3}
  w:attach_grad()
  autograd.record(function() (w * 2):sum():backward() end)
  local vg = w.grad:version()
  autograd.record(function() (w * 3):sum():backward() end)
  assert(w.grad:version() ~= vg, 'backward wrote the gradient')
end)

test('matmul and friends', function()
  local a = nd.array{{1, 2, 3}, {4, 5, 6}}
  local b = nd.array{{1, 2}, {3, 4}, {5, 6}}
  approx(a:matmul(b):totable(), {{22, 28}, {49, 64}})
  approx(nd.dot(a, nd.array{1, 1, 1}):totable(), {6, 15})
  approx(a:matmul(a:transpose()):totable(), {{14, 32}, {32, 77}})
  checkerror('matmul: size mismatch, a is [2,3], b is [4,5]', nd.matmul, a, nd.zeros{4, 5})
  approx(nd.concat({a, a}, 1):shape(), {4, 3})
  -- items are read raw: a proxy whose __index makes tensors (which nothing would anchor) is refused
  local proxy = setmetatable({}, {__len = function() return 2 end,
                                  __index = function() collectgarbage(); return nd.ones{3} end})
  checkerror('no tensors to concatenate', nd.concat, proxy, 1)
  approx(nd.stack({nd.array{1, 2}, nd.array{3, 4}}):totable(), {{1, 2}, {3, 4}})
  approx(nd.where(a:gt(3), a, 0):totable(), {{0, 0, 0}, {4, 5, 6}})
  approx(a:clip(2, 5):totable(), {{2, 2, 3}, {4, 5, 5}})
  approx(nd.exp(nd.zeros{2}):totable(), {1, 1})
end)

test('random numbers are seedable', function()
  nd.random.seed(7)
  local a = nd.random.uniform(-1, 1, {100})
  nd.random.seed(7)
  local b = nd.random.uniform(-1, 1, {100})
  assert(a == b)
  assert(a:min():asscalar() >= -1 and a:max():asscalar() < 1)
  local st = nd.random.get_state()
  local c = nd.random.uniform(0, 1, {10})
  nd.random.set_state(st)
  assert(nd.random.uniform(0, 1, {10}) == c, 'restored state repeats the stream')
  checkerror('not a generator state', nd.random.set_state, 'xx')
  local n = nd.random.normal(2, 3, {20000})
  approx(n:mean():asscalar(), 2, 0.1)
  approx(((n - 2) ^ 2):mean():sqrt():asscalar(), 3, 0.05)
end)

test('printing', function()
  local s = tostring(nd.array{{1, 2}, {3, 4}})
  assert(s == '[[1. 2.]\n [3. 4.]]\n<Tensor 2x2 float32>', s)
  local big = tostring(nd.arange(3000):reshape{3, 1000})
  assert(big:find('...', 1, true) and big:find('2999.', 1, true) and #big < 400, big)
  assert(tostring(nd.array({1, 2}, 'int64')) == '[1 2]\n<Tensor 2 int64>')
  assert(tostring(nd.array{0.5, 0.25}):find('0.5000', 1, true))
end)

test('autograd through the binding', function()
  local x = nd.array{{1, 2}, {3, 4}}
  x:attach_grad()
  local y
  autograd.record(function()
    assert(autograd.is_recording() and autograd.is_training())
    y = (x * x):sum()
  end)
  assert(not autograd.is_recording())
  y:backward()
  approx(x.grad:totable(), {{2, 4}, {6, 8}})
  assert(x.grad_req == 'write')
  x.grad_req = 'null'
  local z
  autograd.record(function() z = (x * 3):sum() end)
  checkerror('does not require grad', z.backward, z)
  checkerror('boom', autograd.record, function() error('boom') end)
  assert(not autograd.is_recording())        -- restored after an error
end)

test('threads setting', function()
  local n = trl.get_num_threads()
  trl.set_num_threads(1)
  assert(trl.get_num_threads() == 1)
  trl.set_num_threads(n)
end)

test('released tensors', function()
  local a = nd.zeros{2}
  a:release()
  checkerror('use of released tensor', a.sum, a)
  do
    local b <close> = nd.ones{3}
    approx(b:sum():asscalar(), 3)
  end
end)
