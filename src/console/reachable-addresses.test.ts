import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeUrls, reachableHostPorts } from './reachable-addresses.js';

const own = [
  { family: 'inet' as const, local: '172.17.0.2' },
  { family: 'inet6' as const, local: 'fd00::2' },
];

test('a wildcard listen address is logged as the container\'s own addresses, which a browser can open', () => {
  assert.deepEqual(reachableHostPorts('0.0.0.0', 8006, own), ['172.17.0.2:8006']);
  assert.deepEqual(reachableHostPorts('::', 8006, own), ['172.17.0.2:8006', '[fd00::2]:8006']);
  assert.deepEqual(reachableHostPorts('[::]', 5901, own), ['172.17.0.2:5901', '[fd00::2]:5901']);
  assert.equal(describeUrls('web console', 'http', reachableHostPorts('0.0.0.0', 8006, own)), 'web console on http://172.17.0.2:8006/');
  assert.equal(describeUrls('web console', 'http', reachableHostPorts('::', 8006, own)), 'web console on http://172.17.0.2:8006/ (also http://[fd00::2]:8006/)');
  assert.equal(describeUrls('VNC', '', reachableHostPorts('0.0.0.0', 5901, own)), 'VNC on 172.17.0.2:5901');
});

test('a specific listen address is logged as it is; with no own address known, the wildcard itself', () => {
  assert.deepEqual(reachableHostPorts('127.0.0.1', 8006, own), ['127.0.0.1:8006']);
  assert.deepEqual(reachableHostPorts('::1', 8006, own), ['[::1]:8006']);
  assert.deepEqual(reachableHostPorts('0.0.0.0', 8006, []), ['0.0.0.0:8006']);
});
