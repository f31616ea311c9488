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
-- where RX or TX stands: the registers, the first descriptors, the PCI command register (bit 2: bus master)
local r = nic.r
print(("registers RCTL=%08x STATUS=%08x RDBAL=%08x RDLEN=%d RDH=%d RDT=%d TCTL=%08x TDH=%d TDT=%d driver-rdt=%d"):format(
   r.RCTL(), r.STATUS(), r.RDBAL(), r.RDLEN(), r.RDH(), r.RDT(), r.TCTL(), r.TDH(), r.TDT(), nic.rdt))
for i = 0, 1 do
   local d = nic.rxdesc[i]
   print(("rxdesc[%d] address=%x length=%d status=%02x errors=%02x"):format(i, tonumber(d.address), d.length, d.status, d.errors))
end
local f = io.open("/sys/bus/pci/devices/" .. pciaddr .. "/config", "rb")
local cmd = f:read(6):byte(5)
f:close()
print(("pci command=%02x"):format(cmd))
engine.configure(config.new()) -- stops the app: the device is released
