"""The swarm stack's way in from the host: a TCP relay in a plain container on the stack's edge network,
published on 127.0.0.1 only (swarm's own publishing, ingress or host mode, binds every interface).

    python gateway.py LISTEN_PORT=HOST:PORT ...

Each connection to LISTEN_PORT is relayed byte for byte to HOST:PORT on a connection of its own: keep-alive,
headers and cookies pass as they came (nginx: the stack's nginx; an app task's address: one replica, for the
final reads). Standard library only.
"""

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def relay(host: str, port: int):
    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))

    return handle


async def main(routes: list[str]) -> None:
    servers = []
    for route in routes:
        listen, _, target = route.partition("=")
        host, _, port = target.rpartition(":")
        servers.append(await asyncio.start_server(relay(host, int(port)), "0.0.0.0", int(listen), backlog=1024))
    print(f"gateway: {' '.join(routes)}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
