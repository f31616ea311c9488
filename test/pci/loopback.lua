-- Stage 2 of the PCI test host (test/pci-host.test.ts): Snabb's intel_mp with the test-only 82574L patch
-- (intel_mp.lua beside this script) drives the device alone and sends every frame it receives back out.
-- Usage: snabb snsh loopback.lua <pci address> [seconds]
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
package.preload["apps.intel_mp.intel_mp"] = assert(loadfile(dir .. "/intel_mp.lua"))
local Intel = require("apps.intel_mp.intel_mp").Intel
local counter = require("core.counter")
local pciaddr, seconds = main.parameters[1], tonumber(main.parameters[2] or "60")

local c = config.new()
config.app(c, "nic", Intel, { pciaddr = pciaddr, rxq = 0, txq = 0, wait_for_link = true, linkup_wait = 30 })
config.link(c, "nic.output -> nic.input")
engine.configure(c)
local nic = engine.app_table.nic
print(("ready link=%s speed=%s"):format(nic:link_status() and "up" or "down", tostring(nic:link_speed())))
io.stdout:flush()
engine.main({ duration = seconds })
nic:sync_stats()
local s = nic.stats
print(("counters rxpackets=%d txpackets=%d rxbytes=%d txbytes=%d rxdrop=%d status=%d"):format(
   tonumber(counter.read(s.rxpackets)), tonumber(counter.read(s.txpackets)), tonumber(counter.read(s.rxbytes)),
   tonumber(counter.read(s.txbytes)), tonumber(counter.read(s.rxdrop)), tonumber(counter.read(s.status))))
local l = engine.link_table["nic.output -> nic.input"]
print(("link nic.output->nic.input rxpackets=%d txpackets=%d"):format(
   tonumber(counter.read(l.stats.rxpackets)), tonumber(counter.read(l.stats.txpackets))))
engine.configure(config.new()) -- stops the app: the device is released
