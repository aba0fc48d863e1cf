-- test_model_store.lua: trl.gluon.model_zoo.model_store against local HTTP servers on
-- 127.0.0.1 that this file starts and stops (Debian's /usr/bin/python3; skipped without it):
-- download + sha1 + unzip into the cache, cache hits, pretrained=true, $TRL_REPO/$TRL_HOME,
-- and that a wrong sha1, a 404 and a dropped connection leave nothing in the cache.
local trl = require 'trl'
local block = require 'trl.gluon.block'
local nn = require 'trl.gluon.nn'
local ms = require 'trl.gluon.model_zoo.model_store'
local cio = require 'trl._io'
local h = require 'helpers'

local nd = trl.nd
local TMP = h.tmpdir() .. '/model_store'
local PY = '/usr/bin/python3'
local HAVE_PY = os.execute('test -x ' .. PY)

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function sh(cmd) assert(os.execute(cmd), 'command failed: ' .. cmd) end

-- serve DIR: a quiet static server; drop: sends half of what it announces, then closes.
-- Both bind port 0 and print 'PORT PID' first.
local SERVER = [[
import functools, http.server, os, socket, sys
if sys.argv[1] == 'serve':
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    srv = http.server.HTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=sys.argv[2]))
    print(srv.server_address[1], os.getpid(), flush=True)
    srv.serve_forever()
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(8)
    print(s.getsockname()[1], os.getpid(), flush=True)
    while True:
        c, _ = s.accept()
        c.recv(65536)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\n'
                  b'Content-Length: 100000\r\n\r\n' + b'PK' * 25000)
        c.close()
]]

local servers = {}

-- Start a server; returns its base URL (with a trailing '/').
local function start(mode, dir)
  local p = assert(io.popen(string.format('exec %s %s %s %s', PY, q(TMP .. '/server.py'), mode,
                                          dir and q(dir) or '')))
  local line = p:read('l')
  local port, pid = (line or ''):match('^(%d+) (%d+)$')
  assert(port, 'the test server did not start: ' .. tostring(line))
  servers[#servers + 1] = {p = p, pid = pid}
  return string.format('http://127.0.0.1:%s/', port)
end

local function stop_all()
  for _, s in ipairs(servers) do
    os.execute('kill ' .. s.pid .. ' 2>/dev/null')
    s.p:close()
  end
  servers = {}
end

-- The names in a directory (lfs when present; else nil: listing checks are skipped).
local function listdir(dir)
  local ok, lfs = pcall(require, 'lfs')
  if not ok then return nil end
  local r = {}
  for e in lfs.dir(dir) do
    if e ~= '.' and e ~= '..' then r[#r + 1] = e end
  end
  table.sort(r)
  return r
end

local function copy(src, dst)
  local f = assert(io.open(src, 'rb'))
  local data = f:read('a')
  f:close()
  f = assert(io.open(dst, 'wb'))
  f:write(data)
  f:close()
end

local function small()
  block._reset_name_counters()
  local net = nn.HybridSequential{prefix = 'tiny0_'}
  net:name_scope(function() net:add(nn.Dense(3, {in_units = 4}), nn.Dense(2, {in_units = 3})) end)
  return net
end

-- Put '<name>-<hash8>.params' (the bytes of 'src') zipped at srv/gluon/models/.
local function publish(srv, name, hash8, src)
  local dir = srv .. '/gluon/models'
  sh('mkdir -p ' .. q(dir))
  local base = name .. '-' .. hash8
  copy(src, dir .. '/' .. base .. '.params')
  sh(string.format('cd %s && %s -m zipfile -c %s %s', q(dir), PY, q(base .. '.zip'),
                   q(base .. '.params')))
  os.remove(dir .. '/' .. base .. '.params')
end

local function run_tests()
  sh('rm -rf ' .. q(TMP) .. ' && mkdir -p ' .. q(TMP))
  local f = assert(io.open(TMP .. '/server.py', 'w'))
  f:write(SERVER)
  f:close()
  local srv, root = TMP .. '/srv', TMP .. '/cache'
  local a = small()
  a:initialize(trl.init.Xavier())
  local src = TMP .. '/tiny.params'
  a:save_parameters(src)
  local sha = assert(cio.sha1_file(src))
  ms.register('testnet', sha)
  publish(srv, 'testnet', sha:sub(1, 8), src)
  local wrong = cio.sha1('not the file')
  ms.register('badnet', wrong)
  publish(srv, 'badnet', wrong:sub(1, 8), src)
  ms.register('absent', cio.sha1('absent'))
  local url = start('serve', srv)
  local drop = start('drop')
  local want = root .. '/testnet-' .. sha:sub(1, 8) .. '.params'

  test('download, sha1 check, unzip into the cache', function()
    local path = ms.get_model_file('testnet', {root = root, repo = url, quiet = true})
    assert(path == want, path)
    assert(cio.sha1_file(path) == sha)
    local l = listdir(root)
    if l then assert(#l == 1 and l[1] == 'testnet-' .. sha:sub(1, 8) .. '.params', table.concat(l, ' ')) end
  end)

  test('a cached file is used without the network; a corrupt one is fetched again', function()
    assert(ms.get_model_file('testnet', {root = root, repo = 'http://127.0.0.1:1/'}) == want)
    local g = assert(io.open(want, 'wb'))
    g:write('garbage')
    g:close()
    assert(ms.get_model_file('testnet', {root = root, repo = url, quiet = true}) == want)
    assert(cio.sha1_file(want) == sha)
  end)

  test('pretrained=true loads the stored weights', function()
    local b = small()
    ms.load_pretrained(b, 'testnet', {pretrained = true, root = root, repo = url})
    local x = nd.random.uniform(-1, 1, {2, 4})
    approx(b(x):totable(), a(x):totable(), 0)
  end)

  local function nothing_left(name)
    local l = listdir(root)
    if l then
      assert(#l == 1 and not l[1]:find(name, 1, true), 'cache holds: ' .. table.concat(l, ' '))
    end
    assert(cio.filetype(root .. '/' .. name .. '.params') == nil)
  end

  test('a wrong sha1 leaves nothing and says what to place where', function()
    local base = 'badnet-' .. wrong:sub(1, 8)
    local msg = checkerror('has sha1 ' .. sha .. ', expected ' .. wrong, ms.get_model_file,
                           'badnet', {root = root, repo = url, quiet = true})
    assert(msg:find('place ' .. base .. '.params (sha1 ' .. wrong .. ') at ' .. root .. '/'
                    .. base .. '.params', 1, true), msg)
    assert(msg:find(url .. 'gluon/models/' .. base .. '.zip', 1, true), msg)
    nothing_left(base)
  end)

  test('a 404 and a dropped connection leave nothing', function()
    local base = 'absent-' .. cio.sha1('absent'):sub(1, 8)
    local msg = checkerror('download failed', ms.get_model_file, 'absent',
                           {root = root, repo = url, quiet = true})
    assert(msg:find('404', 1, true), msg)
    nothing_left(base)
    msg = checkerror('download failed', ms.get_model_file, 'testnet',
                     {root = TMP .. '/cache2', repo = drop, quiet = true})
    assert(msg:find(drop .. 'gluon/models/testnet-', 1, true), msg)
    assert(not msg:find('.zip.', 1, true) and msg:find('transfer', 1, true), msg)
    local l = listdir(TMP .. '/cache2')
    if l then assert(#l == 0, 'cache2 holds: ' .. table.concat(l, ' ')) end
  end)

  test('$TRL_REPO and $TRL_HOME', function()
    local bin = os.getenv('TRL_BIN') or arg[-1]
    local home = TMP .. '/home'
    local code = string.format("local ms = require 'trl.gluon.model_zoo.model_store' "
      .. "ms.register('testnet', '%s') io.write(ms.get_model_file('testnet', {quiet = true}))", sha)
    local p = assert(io.popen(string.format('TRL_REPO=%s TRL_HOME=%s %s -e %s 2>&1',
                                            q(url:sub(1, -2)), q(home), q(bin), q(code))))
    local out = p:read('a')
    assert(p:close(), out)
    assert(out == home .. '/models/testnet-' .. sha:sub(1, 8) .. '.params', out)
  end)
end

test('unknown names and bad registrations', function()
  checkerror('Pretrained model for nosuch is not available', ms.get_model_file, 'nosuch')
  checkerror('expected (name, 40 hex digits)', ms.register, 'x', 'abc')
  assert(ms.short_hash('squeezenet1.1') == '33ba0f93' and ms.short_hash('resnet18_v2') == 'a81db45f')
  assert(ms.short_hash('mobilenetv2_1.0') == '36da4ff1' and ms.short_hash('resnet18_v1') == 'a0666292')
end)

if not HAVE_PY then
  print('  (Debian /usr/bin/python3 not found: the download tests are skipped)')
else
  local ok, err = pcall(run_tests)
  stop_all()
  if not ok then error(err, 0) end
end
