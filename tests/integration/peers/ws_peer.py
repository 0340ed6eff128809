#!/usr/bin/env python3
"""A real WebSocket peer for tests/integration/websocket_it.cpp (Debian python3-websockets).

  ws_peer.py server
      Echo server on 127.0.0.1, a free port; prints "listening PORT", then one JSON line per
      event: {"event": "open", "path": ..., "headers": [[name, value], ...]} for each handshake
      it accepted, {"event": "closed"} when a connection ends. Messages are echoed; the text
      "close-me" makes it close (code 4000), "drop-me" makes it drop the TCP connection.
      Handshakes to /ws/deny are answered 403 (a non-101 answer).
  ws_peer.py client PORT TOKEN [PATH]
      Connects to ws://127.0.0.1:PORT/PATH with the token (and a spoofed X-Clerk-Subject),
      sends a text message, a 1 MiB binary one and a ping, checks the echoes and the pong, and
      prints "ok"; a refused handshake prints "status N".
"""
import asyncio
import http
import json
import sys

import websockets


async def server():
    async def deny(path, headers):
        if path == "/ws/deny":
            return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"denied by the upstream\n"
        return None

    async def handler(ws, path=None):
        print(json.dumps({"event": "open", "path": ws.path,
                          "headers": [list(kv) for kv in ws.request_headers.raw_items()]}),
              flush=True)
        try:
            async for msg in ws:
                if msg == "close-me":
                    await ws.close(code=4000, reason="asked")
                    break
                if msg == "drop-me":
                    ws.transport.abort()
                    break
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        print(json.dumps({"event": "closed"}), flush=True)

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None,
                                process_request=deny) as srv:
        print(f"listening {srv.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


async def client(port, token, path):
    uri = f"ws://127.0.0.1:{port}/{path}"
    headers = {"Authorization": f"Bearer {token}", "X-Clerk-Subject": "mch_spoofed"}
    try:
        # No permessage-deflate: the 1 MiB message crosses the tunnel as 1 MiB.
        async with websockets.connect(uri, extra_headers=headers, max_size=None, compression=None,
                                      ping_interval=None, open_timeout=10) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
            big = bytes(range(256)) * 4096  # 1 MiB
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), 10) == big
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 10)
            print("ok", flush=True)
    except websockets.exceptions.InvalidStatusCode as e:
        print(f"status {e.status_code}", flush=True)


def main():
    if sys.argv[1] == "server":
        asyncio.run(server())
    elif sys.argv[1] == "client":
        path = sys.argv[4] if len(sys.argv) > 4 else "ws/echo"
        asyncio.run(client(int(sys.argv[2]), sys.argv[3], path))
    else:
        sys.exit("usage: ws_peer.py server | client PORT TOKEN [PATH]")


if __name__ == "__main__":
    main()
