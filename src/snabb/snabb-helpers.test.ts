import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarizePfluaError } from './check-filters.js';
import { explainHugepageShortage, isHugetlbfsMounted, planHugepages, SNABB_PAGES_PER_PROCESS } from './hugepages.js';
import { chooseSnabbCpu, parseCpuList, parseKernelUse } from './pci-device.js';
import { needsVhostUserWithoutMsix, parseQemuVersion } from './qemu-version.js';
import { restartDelayMs, snabbError, summarizeSnabbLog } from './supervise-snabb.js';

test('hugepages: guest memory in 2 MiB pages plus each Snabb', () => {
  assert.deepEqual(planHugepages(1024, 0), { guestPages: 512, snabbPages: 0, total: 512 });
  assert.deepEqual(planHugepages(513, 2), { guestPages: 257, snabbPages: 2 * SNABB_PAGES_PER_PROCESS, total: 257 + 2 * SNABB_PAGES_PER_PROCESS });
});

test('hugepages: a shortage says how many are missing and how to reserve them', () => {
  const need = planHugepages(1024, 1);
  assert.equal(explainHugepageShortage(need, { nr: 1024, available: 600 }, 1024), undefined);
  assert.equal(
    explainHugepageShortage(need, { nr: 100, available: 40 }, 1024),
    `too few 2 MiB huge pages: the VM needs ${need.total} (512 for 1024 MiB of guest memory + ${SNABB_PAGES_PER_PROCESS} for Snabb's packet buffers), 40 are free, ${need.total - 40} missing. ` +
      `Reserve them on the host now with: sysctl vm.nr_hugepages=${100 + need.total - 40}; or at every boot with the kernel option hugepages=${100 + need.total - 40}`,
  );
  const onNode = explainHugepageShortage(need, { nr: 2000, available: 2000, node: { node: 1, nr: 100, free: 10 } }, 1024)!;
  assert.match(onNode, /on NUMA node 1: .* 10 are free/);
  assert.match(onNode, /echo \d+ > \/sys\/devices\/system\/node\/node1\/hugepages\/hugepages-2048kB\/nr_hugepages/);
  assert.match(explainHugepageShortage(need, undefined, 1024)!, /no 2 MiB huge pages.*hugepages=\d+/);
});

test('hugetlbfs mounts are found in /proc/self/mounts, escapes included', () => {
  const mounts = 'proc /proc proc rw 0 0\nnone /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\nnone /mnt/huge\\040pages hugetlbfs rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n';
  assert.equal(isHugetlbfsMounted(mounts, '/dev/hugepages'), true);
  assert.equal(isHugetlbfsMounted(mounts, '/dev/hugepages/'), true);
  assert.equal(isHugetlbfsMounted(mounts, '/mnt/huge pages'), true);
  assert.equal(isHugetlbfsMounted(mounts, '/tmp'), false);
});

test('kernel use of interfaces: global addresses and routes count, link-local does not', () => {
  const addr = JSON.stringify([
    { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] },
    { ifname: 'eno1', addr_info: [{ family: 'inet', local: '10.0.0.5', prefixlen: 24, scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }] },
    { ifname: 'ens2f0', addr_info: [{ family: 'inet6', local: 'fe80::2', prefixlen: 64, scope: 'link' }] },
  ]);
  const v4 = JSON.stringify([{ dst: 'default', gateway: '10.0.0.1', dev: 'eno1' }, { dst: '10.0.0.0/24', dev: 'eno1' }]);
  const v6 = JSON.stringify([{ dst: 'fe80::/64', dev: 'ens2f0' }, { dst: 'ff00::/8', dev: 'ens2f0' }]);
  const use = parseKernelUse(addr, [v4, v6]);
  assert.deepEqual(use.get('eno1'), ['address 10.0.0.5/24', 'route default via 10.0.0.1', 'route 10.0.0.0/24']);
  assert.equal(use.get('ens2f0'), undefined);
  assert.equal(use.get('lo'), undefined);
});

test('NUMA: cpulists, and a core per Snabb from the node end', () => {
  assert.deepEqual(parseCpuList('0-3,8-9\n'), [0, 1, 2, 3, 8, 9]);
  assert.deepEqual(parseCpuList('5'), [5]);
  assert.equal(chooseSnabbCpu([4, 5, 6, 7], 0), 7);
  assert.equal(chooseSnabbCpu([4, 5, 6, 7], 1), 6);
  assert.equal(chooseSnabbCpu([4, 5], 2), 5);
  assert.equal(chooseSnabbCpu([], 0), undefined);
});

test('vectors=0 only for QEMU before 8 under TCG', () => {
  assert.deepEqual(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n'), [7, 2]);
  assert.deepEqual(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)'), [10, 0]);
  assert.equal(needsVhostUserWithoutMsix([7, 2], 'tcg'), true);
  assert.equal(needsVhostUserWithoutMsix([10, 0], 'tcg'), false);
  assert.equal(needsVhostUserWithoutMsix([7, 2], 'kvm'), false);
  assert.equal(needsVhostUserWithoutMsix(undefined, 'tcg'), true);
});

test('restart backoff: 1 s doubling to 30 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 20].map(restartDelayMs), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test("Snabb's log and pflua's errors shrink to one line", () => {
  const log = 'snabbnfv traffic starting\nLoading /x.lua\nengine: start_app eth1_Virtio\nload: time: 1.00s  fps: 0\nlib/hardware/pci.lua:52: No such device: 0000:05:00.0\n\nStack Traceback\n===============\n(1) Lua function\n';
  assert.equal(summarizeSnabbLog(log), 'snabbnfv traffic starting | Loading /x.lua | lib/hardware/pci.lua:52: No such device: 0000:05:00.0');
  assert.equal(summarizeSnabbLog('load: time: 1s\n'), '(empty log)');
  // a restart's warning names the Lua error, and nothing when Snabb was simply killed
  assert.equal(snabbError(log), 'snabbnfv traffic starting | Loading /x.lua | lib/hardware/pci.lua:52: No such device: 0000:05:00.0');
  assert.equal(snabbError('link report:\n   9 sent on a -> b (loss rate: 0%)\nload: time: 1.00s\n'), undefined);
  const pflua =
    '../lib/pflua/src/pf/parse.lua:318: \\nPflua parse error: In expression "icmp and foo bar"\\n                                              ^\\nfoo is not a recognized keyword. Likely causes:\\na) foo is a typo';
  assert.equal(summarizePfluaError(pflua), 'foo is not a recognized keyword');
});
