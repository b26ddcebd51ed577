"""An association's two threads, woken by what they wait for instead of polling.

pynetdicom (3.0) runs two loops per association: its DUL thread looks at the socket and its
send queue every millisecond, and its reactor looks for a decoded message every
millisecond. Each turn takes the GIL; an open association that does nothing costs about 5%
of a core, and every C-STORE waits up to a millisecond at each hand-over (PDU arrived ->
message decoded -> answer queued -> answer sent). Here both loops block until there is
something to do:

- the DUL thread waits in `select` on its socket and on a wake-up socket written whenever
  another thread queues something for it (a primitive to send, an event, a stop);
- the reactor waits on an Event set whenever a message is decoded, a primitive arrives for
  it (release, abort), the DUL thread ends or the association is killed.

Each wait is bounded by the timer it serves (ARTIM, the network idle timeout) and by
`LONGEST_WAIT`, so a missed wake-up would cost a second, never a hang. Everything else is
pynetdicom's: the state machine, the PDU reading, the DIMSE decoding, the handlers, and the
pause protocol its send_* methods use (a reactor waiting here counts as paused)."""

import logging
import math
import queue
import select
import socket
import threading

from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE

log = logging.getLogger(__name__)

LONGEST_WAIT = 1.0


def make_event_driven(assoc) -> None:
    """Make a not yet started acceptor association (with its socket set) wait for events."""
    dul = assoc.dul
    reactor_wake = threading.Event()
    dul_wake_read, dul_wake_write = socket.socketpair()
    dul_wake_read.setblocking(False)  # drained after each wait, whether a byte came or not
    dul_wake_write.setblocking(False)

    def wake_dul() -> None:
        try:
            dul_wake_write.send(b"\0")
        except OSError:  # closed (the DUL ended) or full (a wake-up is pending anyway)
            pass

    _wake_on_put(dul.to_provider_queue, wake_dul)
    _wake_on_put(dul.event_queue, wake_dul)
    _wake_on_put(dul.to_user_queue, reactor_wake.set)
    _wake_on_put(assoc.dimse.msg_queue, reactor_wake.set)

    def kill_dul() -> None:
        dul._kill_thread = True
        wake_dul()

    def stop_dul() -> bool:
        # pynetdicom's stops the thread only in Sta1 (idle), then polls until it ended.
        if dul.state_machine.current_state != "Sta1":
            return False
        kill_dul()
        if threading.current_thread() is not dul and dul.is_alive():
            dul.join()
        return True

    kill = assoc.kill

    def kill_and_wake() -> None:
        assoc._kill = True  # before the wake-up: the woken reactor must see it
        reactor_wake.set()
        kill()

    def run_dul() -> None:
        try:
            _dul_loop(dul, dul_wake_read)
        finally:
            dul_wake_read.close()
            dul_wake_write.close()
            reactor_wake.set()

    dul.kill_dul, dul.stop_dul, dul.run = kill_dul, stop_dul, run_dul
    assoc.kill = kill_and_wake
    assoc._run_reactor = lambda: _reactor_loop(assoc, reactor_wake)


def _wake_on_put(q: queue.Queue, wake) -> None:
    put = q.put

    def put_and_wake(item, block=True, timeout=None) -> None:
        put(item, block, timeout)
        wake()

    q.put = put_and_wake  # put_nowait() calls it too


def _dul_loop(dul, wake) -> None:
    """pynetdicom's DUL loop: each turn sends one queued primitive or reads one PDU, then
    hands one event to the state machine; it waits only when a turn found nothing."""
    assoc = dul.assoc
    dul._idle_timer.start()
    while True:
        if not assoc._dul_ready.is_set():
            assoc._dul_ready.set()
        if dul._kill_thread:
            return
        if dul.artim_timer.expired:
            dul.event_queue.put("Evt18")
        try:
            if dul._process_recv_primitive():
                pass
            elif dul._is_transport_event():
                dul._idle_timer.restart()
        except Exception:
            log.exception("DICOM connection failed; aborting the association")
            _abort_hard(dul)
            return
        try:
            event = dul.event_queue.get(block=False)
        except queue.Empty:
            _wait_for_socket_or_wake(dul, wake)
            continue
        dul.state_machine.do_action(event)


def _dul_wait_seconds(dul) -> float:
    """How long the DUL may wait: until the ARTIM timer is due, if it is running."""
    artim = dul.artim_timer
    if artim.expired:
        return 0.0
    # pynetdicom's Timer keeps its start when stopped, and its `remaining` then stays at
    # what was left: a stopped timer must not bound the wait.
    running = getattr(artim, "_start_time", None) is not None and getattr(artim, "_end_time", None) is None
    return min(LONGEST_WAIT, max(artim.remaining, 0.0)) if running else LONGEST_WAIT


def _wait_for_socket_or_wake(dul, wake: socket.socket) -> None:
    """Block until the peer sent something, another thread queued something (a byte on
    `wake`), or the ARTIM timer is due. Wake-up bytes are drained after the wait, never
    before it: a byte written since the last look at the queues ends the next wait.
    poll, not select: select fails for a descriptor numbered 1024 or more."""
    sock = dul.socket.socket if dul.socket is not None and dul.socket._is_connected else None
    waiting = select.poll()
    waiting.register(wake, select.POLLIN)
    if sock is not None:
        try:
            waiting.register(sock, select.POLLIN)
        except (OSError, ValueError):  # closed meanwhile: the next turn sees it
            pass
    waiting.poll(math.ceil(_dul_wait_seconds(dul) * 1000))
    try:
        wake.recv(4096)
    except OSError:  # nothing to drain (non-blocking), or closed
        pass


def _abort_hard(dul) -> None:
    # As pynetdicom does when its loop fails: an A-ABORT straight to the socket (the state
    # machine may be in any state), then both threads stop.
    pdu = A_ABORT_RQ()
    pdu.source = 0x02
    pdu.reason_diagnostic = 0x00
    try:
        dul.socket.send(pdu.encode())
    except Exception:  # noqa: BLE001 - the connection may be gone already
        pass
    assoc = dul.assoc
    assoc.is_aborted = True
    assoc.is_established = False
    assoc._kill = True
    dul._kill_thread = True


def _reactor_has_work(assoc) -> bool:
    """Whether the reactor's next turn acts: a message to serve, a release to answer, an
    abort or a dead DUL thread to end on. Exactly what a turn consumes or ends on, so it
    can never keep the reactor from waiting for good."""
    if not assoc.dimse.msg_queue.empty() or not assoc.dul.is_alive() or assoc._kill:
        return True
    head = assoc.dul.peek_next_pdu()
    if isinstance(head, (A_ABORT, A_P_ABORT)):
        return True
    return assoc.is_established and isinstance(head, A_RELEASE) and head.result is None


def _reactor_loop(assoc, wake: threading.Event) -> None:
    """pynetdicom's acceptor reactor: serve each decoded message, answer a release, end on
    an abort, a dead DUL thread or the network idle timeout."""
    dul = assoc.dul
    assoc._is_paused = False
    while not assoc._kill:
        # Waiting counts as paused: a send_* method from another thread may go ahead.
        assoc._is_paused = True
        wake.clear()
        if not _reactor_has_work(assoc):
            wake.wait(min(LONGEST_WAIT, max(dul._idle_timer.remaining, 0.0)))
        assoc._reactor_checkpoint.wait()
        assoc._is_paused = False

        context_id, msg = assoc.dimse.get_msg(block=False)
        if msg:
            assoc._serve_request(msg, context_id)

        if assoc.is_established and assoc.acse.is_release_requested():
            assoc.acse.send_release(is_response=True)
            log.debug("association released")
            assoc.is_released = True
            assoc.is_established = False
            evt.trigger(assoc, evt.EVT_RELEASED, {})
            assoc.kill()
            return

        if assoc.acse.is_aborted():
            dul.receive_pdu(wait=False)  # as pynetdicom: EVT_ACSE_RECV fires for the abort
            assoc.is_aborted = True
            assoc.is_established = False
            evt.trigger(assoc, evt.EVT_ABORTED, {})
            assoc.kill()
            return

        if not dul.is_alive():
            assoc.kill()
            return

        if dul.idle_timer_expired():
            log.warning("DICOM network timeout reached; aborting the association")
            if assoc.network_timeout_response == "A-RELEASE":
                assoc._is_paused = True
                assoc._reactor_checkpoint.wait()
                assoc.release()
                assoc._is_paused = False
            else:
                assoc.abort()
            assoc.kill()
            return
