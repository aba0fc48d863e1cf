-- helpers.lua: what the Lua tests share (require 'helpers' from a file run by tests/lua/run.lua):
-- checkerror and approx (assertions), test(name, fn) (a tiny runner that prints PASS/FAIL and
-- counts), finish() (checks that no tensor outlived the file), tmpdir() (the scratch dir) and
-- shared() (a file of ../shared, or a SKIP line where it is absent).
-- It holds no test of its own.

local M = {passed = 0, failed = 0}

local function fail(msg, level)
  error(msg, level + 1)
end

-- Asserts that f(...) raises an error whose message contains 'pattern' (a plain find, as in
-- Lua's testes). Returns the message.
function M.checkerror(pattern, f, ...)
  local ok, err = pcall(f, ...)
  if ok then
    fail(string.format("expected an error containing '%s', got none", pattern), 2)
  end
  local msg = tostring(err)
  if not msg:find(pattern, 1, true) then
    fail(string.format("expected an error containing '%s', got '%s'", pattern, msg), 2)
  end
  return msg
end

-- The path of 'rel' under ../shared ($TRL_SHARED, which ctest sets to the repo's ../shared),
-- or nil after a SKIP line naming 'what' when the file is not there (a user's machine; in CI
-- it always is).
function M.shared(rel, what)
  local path = (os.getenv('TRL_SHARED') or '../shared') .. '/' .. rel
  local f = io.open(path, 'rb')
  if f then
    f:close()
    return path
  end
  print(string.format('SKIP %s: %s not found', what, path))
  return nil
end

local function close(a, b, tol)
  return math.abs(a - b) <= tol * math.max(1, math.abs(a), math.abs(b))
end

-- Asserts that a and b (numbers, or tables of numbers nested alike) agree within 'tol'
-- (default 1e-5), relative to their size once above 1. Returns true.
function M.approx(a, b, tol)
  tol = tol or 1e-5
  local function walk(x, y, where)
    if type(x) == "number" and type(y) == "number" then
      if not close(x, y, tol) then
        return string.format("approx: %s is %.9g, expected %.9g (tol %g)", where, x, y, tol)
      end
    elseif type(x) == "table" and type(y) == "table" then
      if #x ~= #y then
        return string.format("approx: %s has %d items, expected %d", where, #x, #y)
      end
      for i = 1, #x do
        local msg = walk(x[i], y[i], where .. "[" .. i .. "]")
        if msg then return msg end
      end
    else
      return string.format("approx: %s is a %s, expected a %s", where, type(x), type(y))
    end
  end
  local msg = walk(a, b, "value")
  if msg then fail(msg, 2) end
  return true
end

-- Runs fn as one test: prints "PASS name" or "FAIL name: message + traceback", and counts.
function M.test(name, fn)
  local ok, err = xpcall(fn, function(e) return debug.traceback(tostring(e), 2) end)
  if ok then
    M.passed = M.passed + 1
    print("PASS " .. name)
  else
    M.failed = M.failed + 1
    print("FAIL " .. name .. ": " .. err)
  end
  io.stdout:flush()
  return ok
end

-- $TRL_TEST_TMP (created when missing), else a fresh directory under /tmp. Same answer each call.
local tmp
function M.tmpdir()
  if tmp then return tmp end
  tmp = os.getenv("TRL_TEST_TMP")
  if tmp == nil or tmp == "" then
    tmp = os.tmpname()    -- a unique name: the file becomes a directory
    os.remove(tmp)
  end
  assert(os.execute("mkdir -p '" .. tmp:gsub("'", "'\\''") .. "'"), "cannot create " .. tmp)
  return tmp
end

-- Ends a file: when trl.debug exists, no tensor may still be alive after two full GCs (a
-- failure counts like a failed test). Prints the counts; returns true when nothing failed.
-- A second call only returns the answer.
local finished
function M.finish()
  if finished ~= nil then return finished end
  if package.loaded.trl or package.searchpath("trl", package.path) then
    local trl = require("trl")
    if type(trl) == "table" and trl.debug and trl.debug.live then
      collectgarbage()
      collectgarbage()
      local live = trl.debug.live()
      if live == 0 then
        M.passed = M.passed + 1
        print("PASS no live tensors")
      else
        M.failed = M.failed + 1
        print(string.format("FAIL no live tensors: %d still alive", live))
      end
    end
  end
  print(string.format("%d passed, %d failed", M.passed, M.failed))
  io.stdout:flush()
  finished = M.failed == 0
  return finished
end

return M
