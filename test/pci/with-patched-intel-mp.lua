-- Runs `snabbnfv ...` (main.parameters) with apps.intel_mp.intel_mp taken from intel_mp.lua beside this
-- script instead of the one built into snabb: the test-only 82574L driver (intel_mp-82574l.patch).
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
print("with-patched-intel-mp: apps.intel_mp.intel_mp from " .. dir .. "/intel_mp.lua (test-only 82574L driver)")
package.preload["apps.intel_mp.intel_mp"] = assert(loadfile(dir .. "/intel_mp.lua"))
local args = main.parameters
assert(table.remove(args, 1) == "snabbnfv")
require("program.snabbnfv.snabbnfv").run(args)
