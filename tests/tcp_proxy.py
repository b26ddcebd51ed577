"""A TCP proxy on 127.0.0.1 that a test can take down (connections refused by reset), bring
back, or make cut an upload once it has forwarded some bytes of it (to kill a client
mid-upload)."""

import socket
import threading


class SwitchableProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.up = threading.Event()
        self.up.set()
        self.stall_after: int | None = None  # bytes of one client connection, then hold
        self.refuse_larger_than: int | None = None  # an HTTP request body over this: 413
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closing = False
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()  # a reset: the cloud is down
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        sent = request = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_client and data.startswith((b"POST ", b"GET ", b"PUT ")):
                    request = 0  # a new HTTP request on a kept-alive connection
                request += len(data)
                if from_client and self.refuse_larger_than is not None and request > self.refuse_larger_than:
                    # As a proxy with a body size limit answers: 413, and the connection ends.
                    src.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                if from_client and self.stall_after is not None and sent + len(data) > self.stall_after:
                    # The upload stops mid-body: the server sees its client gone (and ends
                    # that request now, not at the test's end); the client hears nothing more.
                    self.stalled.set()
                    dst.shutdown(socket.SHUT_RDWR)
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop, and cut every connection (a stalled one would hold a server thread)."""
        self._closing = True
        self.listener.close()
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
