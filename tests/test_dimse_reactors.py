"""The gateways' associations wait for events instead of polling (cloudpacs.dimse.reactors),
against a pynetdicom peer. pynetdicom's own loops turn every millisecond: an open association
that does nothing cost about 5% of a core, and every hand-over between its two threads waited
up to a millisecond. Waits are made much longer than any test here (LONGEST_WAIT), so a
missed wake-up shows as a timeout, not as a slower pass."""

import threading
import time
from contextlib import contextmanager

import pytest
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.sop_class import Verification

from cloudpacs.dimse import reactors
from cloudpacs.dimse.serving import GatewayRequestHandler, GatewayServer
from tests.servers import free_port, wait_for


@pytest.fixture(autouse=True)
def long_waits(monkeypatch):
    monkeypatch.setattr(reactors, "LONGEST_WAIT", 30.0)


@contextmanager
def serving(network_timeout: float = 60):
    """A Verification SCP served as the gateways serve; yields its server."""
    ae = AE(ae_title="SCP")
    ae.add_supported_context(Verification)
    ae.network_timeout = network_timeout
    server = ae.make_server(("127.0.0.1", free_port()), evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000)],
                            server_class=GatewayServer, request_handler=GatewayRequestHandler)
    ae._servers.append(server)  # as AE.start_server does; shutdown() takes it off
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        if server in ae._servers:
            server.shutdown()  # closes the socket too


def associate(server):
    ae = AE(ae_title="SCU")
    ae.add_requested_context(Verification)
    ae.dimse_timeout = 10
    assoc = ae.associate(*server.server_address, ae_title="SCP")
    assert assoc.is_established
    return assoc


def test_an_idle_association_waits_instead_of_turning(monkeypatch):
    turns = {"dul": 0, "reactor": 0}
    wait = reactors._wait_for_socket_or_wake

    def counted_wait(*args):
        turns["dul"] += 1
        wait(*args)

    monkeypatch.setattr(reactors, "_wait_for_socket_or_wake", counted_wait)
    with serving() as server:
        assoc = associate(server)
        [acceptor] = server.active_associations
        get_msg = acceptor.dimse.get_msg

        def counted_get_msg(*args, **kwargs):
            turns["reactor"] += 1
            return get_msg(*args, **kwargs)

        acceptor.dimse.get_msg = counted_get_msg
        assert assoc.send_c_echo().Status == 0x0000
        before = dict(turns)
        time.sleep(0.5)  # idle: pynetdicom's loops would turn about 500 times each
        idle = {thread: turns[thread] - before[thread] for thread in turns}
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
        wait_for(lambda: not server.active_associations, timeout=10, what="the association to end")
    assert idle["dul"] <= 2 and idle["reactor"] <= 2, idle


def test_messages_queued_together_are_each_answered():
    """Two requests that arrive before the reactor wakes: one wake-up, two answers."""
    with serving() as server:
        assoc = associate(server)
        context_id = assoc.accepted_contexts[0].context_id
        # As pynetdicom's send_* methods do: keep this side's reactor off the answers.
        assoc._reactor_checkpoint.clear()
        wait_for(lambda: assoc._is_paused, timeout=5, interval=0.001, what="the requestor's reactor to pause")
        for message_id in (1, 2):
            request = C_ECHO()
            request.MessageID = message_id
            request.AffectedSOPClassUID = Verification
            assoc.dimse.send_msg(request, context_id)
        answered = [assoc.dimse.get_msg(block=True)[1] for _ in range(2)]
        assoc._reactor_checkpoint.set()
        assert [(a.MessageIDBeingRespondedTo, a.Status) for a in answered if a] == [(1, 0), (2, 0)]
        assoc.release()


def test_the_network_timeout_still_ends_an_idle_association():
    with serving(network_timeout=0.5) as server:
        assoc = associate(server)
        wait_for(lambda: assoc.is_aborted or assoc.is_released, timeout=10, what="the SCP to end the association")
        wait_for(lambda: not server.active_associations, timeout=10, what="the association's threads to end")


def test_a_waiting_association_ends_when_aborted_from_another_thread():
    with serving() as server:
        assoc = associate(server)
        [acceptor] = server.active_associations
        server.ae.shutdown()  # aborts its associations from this thread, as a stopping gateway does
    wait_for(lambda: not acceptor.is_alive() and not acceptor.dul.is_alive(), timeout=10,
             what="the association's threads to end")
    wait_for(lambda: assoc.is_aborted, timeout=10, what="the peer to see the abort")


def test_a_stopped_artim_timer_does_not_bound_the_wait():
    """pynetdicom's Timer keeps its start when stopped (as when the A-ASSOCIATE-RQ
    arrives), and its `remaining` stays at what was left then: read as a running timer,
    every wait of the association would have been that short."""
    from types import SimpleNamespace

    from pynetdicom.timer import Timer

    artim = Timer(30)
    dul = SimpleNamespace(artim_timer=artim)
    assert reactors._dul_wait_seconds(dul) == reactors.LONGEST_WAIT  # not started
    artim.timeout = 0.5
    artim.start()
    assert 0 < reactors._dul_wait_seconds(dul) <= 0.5
    artim.stop()
    assert reactors._dul_wait_seconds(dul) == reactors.LONGEST_WAIT
    artim.timeout = 0
    artim.start()
    time.sleep(0.01)
    assert reactors._dul_wait_seconds(dul) == 0.0  # due: no wait


def test_the_reactor_does_not_wait_on_a_release_or_abort_it_has_not_seen():
    """A release request or an abort that reached the reactor's queue just before it
    cleared its wake-up must not wait for the next one (LONGEST_WAIT, 30 s here)."""
    from types import SimpleNamespace

    from pynetdicom.pdu_primitives import A_ABORT, A_RELEASE

    def assoc_with(head, established=True):
        dul = SimpleNamespace(is_alive=lambda: True, peek_next_pdu=lambda: head)
        dimse = SimpleNamespace(msg_queue=SimpleNamespace(empty=lambda: True))
        return SimpleNamespace(dul=dul, dimse=dimse, _kill=False, is_established=established)

    release, answered = A_RELEASE(), A_RELEASE()
    answered.result = "affirmative"
    assert reactors._reactor_has_work(assoc_with(release))
    assert reactors._reactor_has_work(assoc_with(A_ABORT()))
    # What a turn would not consume must not keep the reactor awake.
    assert not reactors._reactor_has_work(assoc_with(None))
    assert not reactors._reactor_has_work(assoc_with(answered))
    assert not reactors._reactor_has_work(assoc_with(release, established=False))
