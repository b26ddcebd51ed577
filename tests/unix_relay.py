"""Relays between a TCP port and a Unix socket, to reach a server confined in a network
namespace (Orthanc, which has no bind address) from loopback outside it: a Unix socket is
a file, and a network namespace does not cut files.

    inside the namespace:  python -m tests.unix_relay SOCKET PORT   (SOCKET -> 127.0.0.1:PORT)
    outside, in a test:    TcpToUnix(SOCKET).port                    (127.0.0.1:port -> SOCKET)
"""

import os
import socket
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener: socket.socket, connect) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = connect()
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


class TcpToUnix:
    def __init__(self, path: str):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

        def connect():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            return sock

        threading.Thread(target=_serve, args=(self.listener, connect), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def main(path: str, port: int) -> None:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    _serve(listener, lambda: socket.create_connection(("127.0.0.1", port)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
