-- test_repl.lua: the trl executable from the outside: options, scripts and 'arg', exit codes,
-- the REPL on a pipe (auto-print, ';', multi-line input, error recovery) and on a real
-- pseudo-terminal (prompts, tab completion, Ctrl-C, history). Spawns $TRL_BIN; every command
-- runs under 'timeout'.

local h = require("helpers")
local test = h.test

local BIN = assert(os.getenv("TRL_BIN"), "TRL_BIN must name the trl executable (ctest sets it)")
local TMP = os.tmpname()    -- a unique name, so that runs side by side do not collide
os.remove(TMP)
TMP = h.tmpdir() .. "/repl_" .. TMP:match("[^/]*$")
assert(os.execute("mkdir -p '" .. TMP .. "'"))

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function writefile(name, text)
  local path = TMP .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a shell command under 'timeout 20'; returns its stdout and exit code.
local function sh(cmd)
  local p = assert(io.popen("timeout 20 " .. cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Runs trl with 'args' and 'input' on stdin; returns stdout, stderr and the exit code.
local n = 0
local function trl(args, input, env)
  n = n + 1
  local inp = writefile("in" .. n, input or "")
  local err = TMP .. "/err" .. n
  local out, code = sh(string.format("env %s %s %s < %s 2> %s",
    env or "", q(BIN), args or "", q(inp), q(err)))
  return out, readfile(err), code
end

-- Asserts that 'text' contains each of the plain strings, in order.
local function inorder(text, ...)
  local at = 1
  for _, s in ipairs({...}) do
    local i, j = text:find(s, at, true)
    assert(i, string.format("expected %q (in order) in:\n%s", s, text))
    at = j + 1
  end
end

local function eq(got, want)
  assert(got == want, string.format("expected %q, got %q", want, got))
end

-- {===================================================================
-- options, scripts, exit codes

test("--version", function()
  local out, _, code = trl("--version")
  eq(code, 0)
  assert(out:match("^trl %d+%.%d+%.%d+ %(Lua 5%.4%.%d+, .-%)\n$"), out)
end)

test("--help and -h", function()
  local out, _, code = trl("--help")
  eq(code, 0)
  inorder(out, "usage: trl", "-e stat", "-i")
  out, _, code = trl("-h")
  eq(code, 0)
  inorder(out, "usage: trl")
end)

test("bad option: usage on stderr, exit 1", function()
  local out, err, code = trl("--frobnicate")
  eq(code, 1)
  eq(out, "")
  inorder(err, "--frobnicate", "usage: trl")
  _, err, code = trl("-e")    -- missing argument
  eq(code, 1)
  inorder(err, "usage: trl")
end)

test("-e, several", function()
  local out, _, code = trl("-e 'x = 20' -e 'print(x + 1)' -e " .. q("print(arg[0] == nil)"))
  eq(code, 0)
  eq(out, "21\nfalse\n")
end)

-- trl runs itself again with OMP_WAIT_POLICY=passive (bindings/main.c); with a binding asked
-- for, libgomp had bound the first process to one CPU, and the second must not inherit that.
test("OMP_PROC_BIND / OMP_PLACES: as many threads as without", function()
  local probe = "-e " .. q("io.write(require('trl').get_num_threads())")
  local plain, _, code = trl(probe, nil, "-u OMP_WAIT_POLICY -u OMP_PROC_BIND -u OMP_PLACES")
  eq(code, 0)
  for _, bind in ipairs({"OMP_PROC_BIND=true", "OMP_PROC_BIND=close", "OMP_PLACES=cores"}) do
    local out = trl(probe, nil, "-u OMP_WAIT_POLICY " .. bind)
    assert(out == plain, string.format("%s: %s threads, %s without", bind, out, plain))
  end
end)

test("-e error exits 1 with a traceback", function()
  local out, err, code = trl("-e 'error(\"bad news\")' -e 'print(1)'")
  eq(code, 1)
  eq(out, "")
  inorder(err, "trl: (command line):1: bad news", "stack traceback:")
end)

test("script with arguments: arg and ...", function()
  local s = writefile("args.lua", [[
print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)
print(arg[-1] == os.getenv("TRL_BIN"))
]])
  local out, _, code = trl(q(s) .. " a 'b c'")
  eq(code, 0)
  eq(out, s .. "\ta\tb c\t2\t2\ta\tb c\ntrue\n")
  out = trl("-e 'y = 1' " .. q(s) .. " z")
  inorder(out, s .. "\tz\tnil\t1\t1\tz")
end)

test("script error: message and traceback on stderr, exit 1", function()
  local s = writefile("bad.lua", "local function inner() error('kaputt') end\ninner()\n")
  local out, err, code = trl(q(s))
  eq(code, 1)
  eq(out, "")
  -- Lua shortens long chunk names to "...tail", so match the file name, not the whole path
  inorder(err, "trl: ", "bad.lua:1: kaputt", "stack traceback:", "inner")
  s = writefile("syntax.lua", "x = = 1\n")
  _, err, code = trl(q(s))
  eq(code, 1)
  inorder(err, "syntax.lua:1:")
  _, err, code = trl(q(TMP .. "/no_such_file.lua"))
  eq(code, 1)
  inorder(err, "cannot open")
  _, _, code = trl("-e 'os.exit(3)'")
  eq(code, 3)
end)

test("- runs stdin as one chunk", function()
  local out, _, code = trl("- x y", "local a = 2\nprint(a * 21, ...)\n")
  eq(code, 0)
  eq(out, "42\tx\ty\n")
end)

test("-i runs the script, then the REPL", function()
  local s = writefile("setup.lua", "y = 5\nprint('setup done')\n")
  local out, _, code = trl("-i " .. q(s), "y * 2\n")
  eq(code, 0)
  eq(out, "setup done\n10\n")
end)

test("-l loads a module into a global", function()
  writefile("mymod.lua", "return {v = 7}")
  local env = "LUA_PATH=" .. q(TMP .. "/?.lua;;")
  local out, _, code = trl("-l mymod -l m2=mymod -e 'print(mymod.v + m2.v)'", "", env)
  eq(code, 0)
  eq(out, "14\n")
end)

-- }===================================================================

-- {===================================================================
-- the REPL on a pipe: no prompts, values printed

test("pipe REPL: auto-print, ';', multi-line, return form, several values", function()
  local out, err, code = trl("", table.concat({
    "1+1",
    "10+10;",
    "x = 4;",
    "x",
    "function f(a)",
    "  return a * 3",
    "end",
    "f(14)",
    "return 1, 'two', nil",
    "=6*7",
    "'x' .. 'y', 3",
    "(1 +",
    " 2)",
    "local t = {",
    "  1, 2}",
    "nil",
    "",
    "string.format('%d', 5)",
  }, "\n") .. "\n")
  eq(code, 0)
  eq(err, "")
  eq(out, "2\n4\n42\n1\ttwo\tnil\n42\nxy\t3\n3\nnil\n5\n")
end)

test("pipe REPL: errors print a traceback and the REPL goes on", function()
  local out, err, code = trl("", table.concat({
    "error('boom')",
    "print('after error')",
    "error({})",
    "error(setmetatable({}, {__tostring = function() return 'custom' end}))",
    "error(setmetatable({}, {__tostring = function() error('nested') end}))",
    "error(nil)",
    "setmetatable({}, {__tostring = function() error('in tostring') end})",
    "setmetatable({}, {__tostring = function() return 'pretty' end})",
    "setmetatable({}, {__tostring = function() return {} end})",
    "x = = 1",
    "undefined_fn()",
    "print('still here')",
  }, "\n") .. "\n")
  eq(code, 0)
  eq(out, "after error\npretty\nstill here\n")
  inorder(err, "stdin:1: boom", "stack traceback:",
    "(error object is a table value)", "custom", "(error object is a table value)",
    "(error object is a nil value)", "error calling 'print'", "in tostring",
    "error calling 'print'", "__tostring", "unexpected symbol", "undefined_fn")
  -- stdout and stderr stay in order on one pipe
  local mix = writefile("in_mix", "error('first')\n'second'\n")
  out = sh(string.format("%s < %s 2>&1", q(BIN), q(mix)))
  inorder(out, "first", "stack traceback", "second")
end)

test("pipe REPL: unfinished input at end of file is reported", function()
  local out, err, code = trl("", "for i = 1, 2 do\n")
  eq(code, 0)
  eq(out, "")
  inorder(err, "<eof>")
end)

test("REPL globals: trl and nd from TRL_LUA_PATH, help()", function()
  local dir = TMP .. "/luamods"
  assert(os.execute("mkdir -p " .. q(dir .. "/trl")))
  writefile("luamods/trl/init.lua", "return {nd = {answer = 42}, name = 'fake trl'}\n")
  local out, err, code = trl("", "nd.answer\ntrl.name\nhelp()\nhelp(nd)\n",
    "TRL_LUA_PATH=" .. q(dir))
  eq(code, 0)
  eq(err, "")
  inorder(out, "42\nfake trl\n", "trl REPL", "answer")
  -- a trl that fails to load is reported, and the REPL still works
  writefile("luamods/trl/init.lua", "error('broken init')\n")
  out, err, code = trl("", "1+2\n", "TRL_LUA_PATH=" .. q(dir))
  eq(code, 0)
  eq(out, "3\n")
  inorder(err, "warning", "broken init")
  -- scripts get no pre-loaded globals
  out = trl("-e 'print(nd, trl)'", "", "TRL_LUA_PATH=" .. q(dir))
  eq(out, "nil\tnil\n")
end)

-- }===================================================================

-- {===================================================================
-- the REPL on a pseudo-terminal

local function have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
end

-- How to run a command line on a pty with our stdin and stdout: util-linux 'script', else
-- Python's pty module ($TRL_TEST_PTY=python forces it); nil when neither exists.
local function ptyrunner()
  local force = os.getenv("TRL_TEST_PTY")
  if force ~= "python" and have("script") then
    return function(cmd) return "script -qfec " .. q(cmd) .. " /dev/null" end
  end
  if have("python3") then
    return function(cmd)
      return "python3 -c " .. q("import pty, sys; pty.spawn(['sh', '-c', sys.argv[1]])") ..
        " " .. q(cmd)
    end
  end
end

--[[
Runs trl on a pty, driven like 'expect': each step waits until the output holds 'count'
copies of 'wait' (up to 10 s), then sends 'send'. Returns the whole output.
]]
local function pty(steps, home)
  local runner = assert(ptyrunner())
  local out = TMP .. "/pty.out"
  local lines = {
    "out=" .. q(out),
    "waitfor() {",
    "  i=0",
    "  while [ \"$(grep -aoF -- \"$1\" \"$out\" 2>/dev/null | wc -l)\" -lt \"$2\" ] &&" ..
      " [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done",
    "}",
  }
  for i, s in ipairs(steps) do
    if s.wait then lines[#lines + 1] = string.format("waitfor %s %d", q(s.wait), s.count or 1) end
    if s.sleep then lines[#lines + 1] = "sleep " .. s.sleep end
    if s.send then lines[#lines + 1] = "cat " .. q(writefile("send" .. i, s.send)) end
  end
  lines[#lines + 1] = "sleep 0.5"
  local feeder = writefile("feeder.sh", table.concat(lines, "\n") .. "\n")
  os.remove(out)
  local cmd = string.format("env HOME=%s TERM=dumb INPUTRC=/dev/null %s", q(home), q(BIN))
  sh(string.format("sh %s | timeout 30 %s > %s 2>&1", q(feeder), runner(cmd), q(out)))
  return (readfile(out):gsub("\r", ""))
end

if not ptyrunner() then
  print("SKIP pty tests: neither 'script' (util-linux) nor python3 is installed")
else
  test("pty REPL: prompts, completion, Ctrl-C, history", function()
    local home = TMP .. "/home"
    assert(os.execute("rm -rf " .. q(home) .. " && mkdir -p " .. q(home)))
    local out = pty({
      {wait = "trl> ", count = 1, send = "1+1\n"},
      -- a C-style class: methods reached only through a function '__index' and its upvalue;
      -- a lazy table: names typed before the cursor are looked up through '__index'
      {wait = "trl> ", count = 2, send = "obj = setmetatable({}, {__index = (function() " ..
        "local m = {frobnicate = function() return 'frob' end} " ..
        "return function(_, k) return m[k] end end)()}); " ..
        "lazy = setmetatable({}, {__index = function() return {deep_name = 9} end})\n"},
      {wait = "trl> ", count = 3, send = "obj:frob\t"},
      {wait = "obj:frobnicate", send = "()\n"},
      {wait = "trl> ", count = 4, send = "lazy.any.dee\t"},
      {wait = "lazy.any.deep_name", send = "\n"},
      {wait = "trl> ", count = 5, send = "string.for\t"},
      {wait = "string.format", send = "('<%d>', 7)\n"},
      {wait = "trl> ", count = 6, send = "io.stdout:wr\t"},
      {wait = "io.stdout:write", send = "('[w]');\n"},
      {wait = "trl> ", count = 7, send = "string.g\t\t"},
      {wait = "gsub", send = "sub('abc', 'b', 'X')\n"},
      {wait = "trl> ", count = 8, send = "function inc(a)\n"},
      {wait = ">> ", send = "return a + 1 end\n"},
      {wait = "trl> ", count = 9, send = "inc(41)\n"},
      {wait = "trl> ", count = 10, send = "io.write('sp' .. 'in\\n') while true do end\n"},
      {wait = "spin", sleep = 0.2, send = "\3"},    -- the loop runs: Ctrl-C interrupts it
      {wait = "interrupted", send = ""},
      {wait = "trl> ", count = 11, send = "print('al' .. 'ive')\n"},
      {wait = "trl> ", count = 12, send = "zqx"},
      {wait = "zqx", send = "\3"},
      {wait = "trl> ", count = 13, send = "'still' .. 'here'\n"},
      {wait = "trl> ", count = 14, send = "\4"},
    }, home)
    inorder(out, "trl 0.1.0", "Lua 5.4 deep learning runtime",
      "trl> 1+1\n2\n", "trl> obj:frobnicate()\nfrob\n", "trl> lazy.any.deep_name\n9\n",
      "trl> string.format('<%d>', 7)\n<7>\n",
      "trl> io.stdout:write('[w]');\n[w]",
      "gmatch", "gsub", "aXc\t1\n",
      ">> ", "trl> inc(41)\n42\n",
      "interrupted!", "stack traceback",
      "\nalive\n",
      "trl> zqx", "trl> 'still' .. 'here'\nstillhere\n")
    -- 'zqx' was dropped, not joined to the next line (where the tty echoes "^C" depends on timing)
    assert(not out:find("zqx'still'", 1, true) and not out:find("zqx%s*stillhere"), out)
    local hist = readfile(home .. "/.trl_history")
    inorder(hist, "1+1\n", "string.format('<%d>', 7)\n", "inc(41)\n", "while true do end\n",
      "print('al' .. 'ive')\n", "'still' .. 'here'\n")
    assert(not hist:find("zqx"), hist)
  end)
end

-- }===================================================================

if h.failed == 0 then os.execute("rm -rf '" .. TMP .. "'") end    -- kept for a post-mortem
