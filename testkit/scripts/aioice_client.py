"""A third-party STUN client against parley-server: aioice (aiortc's ICE agent).

usage: aioice_client.py codec HOST PORT [BIND_HOST]
         one Binding request built and checked by aioice's STUN codec
         (with a FINGERPRINT); prints "mapped HOST PORT local HOST PORT"
       aioice_client.py gather HOST PORT
         an aioice ICE agent gathers its candidates with HOST:PORT as its
         STUN server; prints "srflx HOST PORT related HOST PORT" per
         server-reflexive candidate
Exits 1 with a message on stderr when no answer comes.
"""

import asyncio
import socket
import sys

from aioice import Connection, stun


def codec(host, port, bind_host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((bind_host, 0))
    s.settimeout(1.0)
    req = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    req.add_fingerprint()
    for _ in range(5):
        s.sendto(bytes(req), (host, port))
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        res = stun.parse_message(data)
        assert res.message_method == stun.Method.BINDING, res
        assert res.message_class == stun.Class.RESPONSE, res
        assert res.transaction_id == req.transaction_id, res
        mapped = res.attributes["XOR-MAPPED-ADDRESS"]
        local = s.getsockname()
        print(f"mapped {mapped[0]} {mapped[1]} local {local[0]} {local[1]}", flush=True)
        return 0
    print("no STUN answer", file=sys.stderr)
    return 1


async def gather(host, port):
    conn = Connection(ice_controlling=True, stun_server=(host, port), use_ipv6=False)
    await conn.gather_candidates()
    found = 0
    for c in conn.local_candidates:
        if c.type == "srflx":
            print(f"srflx {c.host} {c.port} related {c.related_address} {c.related_port}", flush=True)
            found += 1
    await conn.close()
    if not found:
        print("no server-reflexive candidate", file=sys.stderr)
        return 1
    return 0


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "codec":
        bind_host = sys.argv[4] if len(sys.argv) > 4 else ("::1" if ":" in host else "127.0.0.1")
        return codec(host, port, bind_host)
    return asyncio.run(gather(host, port))


if __name__ == "__main__":
    sys.exit(main())
