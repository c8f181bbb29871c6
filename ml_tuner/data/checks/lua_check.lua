-- The bench's check of a tuned Lua interpreter: every part of the VM and the standard library
-- that a miscompile could break, with deterministic output compared to clang -Oz's build.
local out = {}
local function say(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  out[#out + 1] = table.concat(parts, " ", 1, parts.n)
end

-- integers, floats, conversions, bit operations
local acc = 0
for i = 1, 2000 do acc = (acc * 31 + i) % 1000003 end
say("int", acc, 7 // 2, -7 // 2, 7 % -3, 2^10, 10 / 4, 3 | 5, 6 & 3, 1 << 20, ~0 >> 60)
say("float", string.format("%.6f %.3e %g", math.pi, 1 / 3, 2.5e-7), math.floor(-2.5),
    math.ceil(2.1), math.fmod(7.5, 2), math.sqrt(2) * math.sqrt(2) == 2, math.huge, -math.huge)
say("convert", tonumber("0x1F"), tonumber("  12  "), tonumber("1e3"), tostring(10 // 1.0),
    math.tointeger(3.0), 7 == 7.0, string.format("%5.2f|%-5d|%x", 3.14159, 42, 255))

-- strings and patterns
local s = "The quick brown fox jumps over the lazy dog"
say("string", #s, s:upper():sub(5, 9), s:find("fox"), s:match("(%a+) dog"), s:rep(2, ","):len())
say("gsub", (s:gsub("%w+", function(w) return w:sub(1, 1) end)), select(2, s:gsub("o", "0")))
local words = {}
for w in s:gmatch("%a+") do words[#words + 1] = w:lower() end
table.sort(words)
say("sorted", table.concat(words, ","))
say("bytes", string.byte("Lua", 1, -1), string.char(72, 105), ("%q"):format("a\nb\"c"))
say("pack", string.unpack("<i4", string.pack("<i4", -123456)), #string.pack(">d", 1.5))
say("utf8", utf8.char(72, 228, 8364, 128512), utf8.len("häll€"), utf8.codepoint("€"))

-- tables, sorting with a comparator, metatables
local t = {}
for i = 1, 300 do t[i] = (i * 7919) % 1009 end
table.sort(t, function(a, b) return a > b end)
say("table", t[1], t[150], t[300], #t, select("#", table.unpack(t, 1, 10)))
table.insert(t, 1, -1); table.remove(t, 5)
say("moved", t[1], t[5], #t, table.concat(table.move({1, 2, 3}, 1, 3, 2, {9}), ""))
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({x = a.x + b.x, y = a.y + b.y}, V) end
V.__tostring = function(v) return "(" .. v.x .. "," .. v.y .. ")" end
V.__eq = function(a, b) return a.x == b.x and a.y == b.y end
V.__lt = function(a, b) return a.x < b.x end
local a, b = setmetatable({x = 1, y = 2}, V), setmetatable({x = 3, y = 4}, V)
say("meta", tostring(a + b), a == b, a < b, rawequal(a, a), rawlen({1, 2, 3}))

-- closures, varargs, recursion, tail calls
local function counter() local n = 0 return function() n = n + 1 return n end end
local c1, c2 = counter(), counter()
c1(); c1(); c2()
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local function loop(n, acc2) if n == 0 then return acc2 end return loop(n - 1, acc2 + n) end
say("closures", c1(), c2(), fib(20), loop(100000, 0), select("#", nil, nil, 3), (select(-1, 1, 2, 3)))

-- coroutines
local gen = coroutine.wrap(function() for i = 1, 5 do coroutine.yield(i * i) end return "end" end)
local got = {}
for _ = 1, 6 do got[#got + 1] = tostring(gen()) end
say("coroutine", table.concat(got, " "), coroutine.isyieldable(), coroutine.status(coroutine.create(print)))

-- errors
local ok, err = pcall(function() error({code = 42}) end)
local ok2, err2 = pcall(function() return nil + 1 end)
local ok3, err3 = xpcall(function() error("boom", 0) end, function(m) return "handled " .. m end)
say("errors", ok, err.code, ok2, (err2:gsub("^.-:%d+: ", "")), ok3, err3)

-- garbage collection under pressure, weak tables
local weak = setmetatable({}, {__mode = "k"})
for i = 1, 2000 do local key = {} weak[key] = i local _ = {i, tostring(i), {i}} end
collectgarbage(); collectgarbage()
local left = 0
for _ in pairs(weak) do left = left + 1 end
say("gc", left, collectgarbage("isrunning"))

-- load and string-compiled code
local f = load("local x, y = ... return x * y + 1")
say("load", f(6, 7), load("return 1 +")== nil, #string.dump(f) > 0)

print(table.concat(out, "\n"))
