/**
 * A host at the far end of an emulated NIC's wire (QEMU's `-netdev socket,udp=`: one Ethernet frame per datagram,
 * no FCS): it answers ARP requests for its address and ICMP echo requests to it, and counts every frame that
 * crossed the wire each way. Enough of IPv4 for a guest's `ping`; nothing else is answered.
 */
export interface WireCounts {
  /** frames that came off the wire (from the NIC) and were given to receive() */
  received: number;
  /** frames this responder put on the wire */
  sent: number;
  arpReplies: number;
  echoReplies: number;
}

export class PingResponder {
  readonly counts: WireCounts = { received: 0, sent: 0, arpReplies: 0, echoReplies: 0 };
  /** the last 40 frames in and out, "<ms since start> <in|out> <what>", for a failure's why */
  readonly timeline: string[] = [];
  private readonly ip: Buffer;
  private readonly start = Date.now();

  constructor(
    ip: string,
    private readonly mac: Buffer,
    private readonly send: (frame: Buffer) => void,
  ) {
    this.ip = Buffer.from(ip.split('.').map(Number));
  }

  /** One frame from the wire. */
  receive(frame: Buffer): void {
    this.counts.received++;
    this.note('in', frame);
    if (frame.length < 14) return;
    const type = frame.readUInt16BE(12);
    if (type === 0x0806) this.arp(frame);
    else if (type === 0x0800) this.ipv4(frame);
  }

  private reply(frame: Buffer): void {
    // the minimum Ethernet frame without FCS: 60 bytes
    const out = frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length)]) : frame;
    this.counts.sent++;
    this.note('out', out);
    this.send(out);
  }

  private note(way: 'in' | 'out', f: Buffer): void {
    const type = f.length >= 14 ? f.readUInt16BE(12) : 0;
    const icmp = type === 0x0800 && f.length >= 14 + 20 + 8 ? 14 + (f[14]! & 0x0f) * 4 : -1;
    const what =
      type === 0x0806 ? `arp op ${f.readUInt16BE(20)}`
      : icmp > 0 && f[23] === 1 ? `icmp type ${f[icmp]} id ${f.readUInt16BE(icmp + 4)} seq ${f.readUInt16BE(icmp + 6)}`
      : `ethertype 0x${type.toString(16)}, ${f.length} bytes`;
    this.timeline.push(`${Date.now() - this.start} ${way} ${what}`);
    if (this.timeline.length > 40) this.timeline.shift();
  }

  private arp(f: Buffer): void {
    // Ethernet/IPv4 request (op 1) for our address
    if (f.length < 42 || f.readUInt16BE(14) !== 1 || f.readUInt16BE(16) !== 0x0800 || f.readUInt16BE(20) !== 1) return;
    if (!f.subarray(38, 42).equals(this.ip)) return;
    const senderMac = f.subarray(22, 28);
    const senderIp = f.subarray(28, 32);
    const r = Buffer.alloc(42);
    senderMac.copy(r, 0);
    this.mac.copy(r, 6);
    r.writeUInt16BE(0x0806, 12);
    f.copy(r, 14, 14, 20); // hardware and protocol types and sizes
    r.writeUInt16BE(2, 20);
    this.mac.copy(r, 22);
    this.ip.copy(r, 28);
    senderMac.copy(r, 32);
    senderIp.copy(r, 38);
    this.counts.arpReplies++;
    this.reply(r);
  }

  private ipv4(f: Buffer): void {
    const ihl = (f[14]! & 0x0f) * 4;
    if (f.length < 14 + ihl + 8 || f[14]! >> 4 !== 4 || f[23] !== 1) return;
    if (!f.subarray(30, 34).equals(this.ip)) return;
    const total = f.readUInt16BE(16);
    const icmp = 14 + ihl;
    if (f[icmp] !== 8 || 14 + total > f.length) return;
    const r = Buffer.from(f.subarray(0, 14 + total));
    f.copy(r, 0, 6, 12); // to the sender's MAC
    this.mac.copy(r, 6);
    f.copy(r, 26, 30, 34); // swapped addresses: the header checksum stays right
    f.copy(r, 30, 26, 30);
    r[icmp] = 0; // echo reply
    r.writeUInt16BE(0, icmp + 2);
    r.writeUInt16BE(internetChecksum(r.subarray(icmp, 14 + total)), icmp + 2);
    this.counts.echoReplies++;
    this.reply(r);
  }
}

/** RFC 1071. */
export function internetChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
