"""End to end with an independent FIX engine: QuickFIX logs on as two brokers over TCP.

BRK1 speaks FIX.4.4 and BRK2 FIX.4.2; each validates every message it receives against
QuickFIX's own data dictionary, so an ExecutionReport missing a required field of its
version never reaches the test and the test times out on it.
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
from pathlib import Path

import pytest

quickfix = pytest.importorskip("quickfix", reason="the quickfix package is a test extra: pip install -e '.[test]'")

from gateway.appliance import Appliance  # noqa: E402
from gateway.settings import default_session_settings  # noqa: E402
from gateway.venue import default_venue_config  # noqa: E402
from fixsupport import ApplianceThread  # noqa: E402

QUICKFIX_SPEC_DIR = Path(sys.prefix) / "share" / "quickfix"
RECEIVE_TIMEOUT_S = 10.0


class _Broker(quickfix.Application):  # type: ignore[misc]
    """Collects application messages and logon events from QuickFIX's threads."""

    def __init__(self) -> None:
        super().__init__()
        self.received: queue.Queue[str] = queue.Queue()
        self.logged_on: dict[str, threading.Event] = {}
        self.session_ids: dict[str, object] = {}

    def onCreate(self, session_id):  # noqa: N802 - QuickFIX's callback names
        sender = session_id.getSenderCompID().getValue()
        self.session_ids[sender] = session_id
        self.logged_on.setdefault(sender, threading.Event())

    def onLogon(self, session_id):  # noqa: N802
        self.logged_on[session_id.getSenderCompID().getValue()].set()

    def onLogout(self, session_id):  # noqa: N802
        pass

    def toAdmin(self, message, session_id):  # noqa: N802
        pass

    def fromAdmin(self, message, session_id):  # noqa: N802
        pass

    def toApp(self, message, session_id):  # noqa: N802
        pass

    def fromApp(self, message, session_id):  # noqa: N802
        sender = session_id.getSenderCompID().getValue()
        self.received.put(sender + " " + message.toString().replace("\x01", "|"))


def _initiator_settings(tmp_path: Path, port: int) -> Path:
    text = f"""
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=1
FileStorePath={tmp_path / "qf-store"}
FileLogPath={tmp_path / "qf-log"}
StartTime=00:00:00
EndTime=00:00:00
HeartBtInt=30
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
UseDataDictionary=Y
ValidateUserDefinedFields=N

[SESSION]
BeginString=FIX.4.4
SenderCompID=BRK1
TargetCompID=FIXGW
DataDictionary={QUICKFIX_SPEC_DIR / "FIX44.xml"}

[SESSION]
BeginString=FIX.4.2
SenderCompID=BRK2
TargetCompID=FIXGW
DataDictionary={QUICKFIX_SPEC_DIR / "FIX42.xml"}
"""
    path = tmp_path / "initiator.cfg"
    path.write_text(text)
    return path


def _new_order(begin_string: str, cl_ord_id: str, side: str, qty: int, price: str):
    message = quickfix.Message()
    header = message.getHeader()
    header.setField(quickfix.BeginString(begin_string))
    header.setField(quickfix.MsgType("D"))
    message.setField(quickfix.ClOrdID(cl_ord_id))
    if begin_string == "FIX.4.2":
        message.setField(quickfix.HandlInst("1"))
    message.setField(quickfix.Symbol("AMZN"))
    message.setField(quickfix.Side(side))
    message.setField(quickfix.TransactTime())
    message.setField(quickfix.OrderQty(qty))
    message.setField(quickfix.OrdType("2"))
    message.setField(quickfix.Price(float(price)))
    message.setField(quickfix.TimeInForce("0"))
    return message


def _fields(line: str) -> dict[int, str]:
    return {int(tag): value for tag, _, value in (f.partition("=") for f in line.split("|") if f)}


def _receive(broker: _Broker, count: int) -> list[tuple[str, dict[int, str]]]:
    messages = []
    for _ in range(count):
        try:
            line = broker.received.get(timeout=RECEIVE_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"no ExecutionReport within {RECEIVE_TIMEOUT_S}s; received {messages}")
        sender, _, raw = line.partition(" ")
        messages.append((sender, _fields(raw)))
    return messages


@pytest.fixture()
def venue_and_brokers(tmp_path: Path):
    if not (QUICKFIX_SPEC_DIR / "FIX44.xml").is_file():
        pytest.skip(f"QuickFIX data dictionaries not found at {QUICKFIX_SPEC_DIR}")
    settings = default_session_settings(port=0)
    by_broker = {s.target_comp_id: s for s in settings}
    sessions = [by_broker["BRK1"], dataclasses.replace(by_broker["BRK2"], begin_string="FIX.4.2")]
    appliance = Appliance(sessions, default_venue_config(), audit_path=tmp_path / "audit.sqlite")
    venue = ApplianceThread(appliance)
    ports = venue.start()
    port = next(iter(ports.values()))

    broker = _Broker()
    settings_path = _initiator_settings(tmp_path, port)
    qf_settings = quickfix.SessionSettings(str(settings_path))
    initiator = quickfix.SocketInitiator(
        broker, quickfix.FileStoreFactory(qf_settings), qf_settings, quickfix.FileLogFactory(qf_settings)
    )
    initiator.start()
    try:
        for name in ("BRK1", "BRK2"):
            assert broker.logged_on[name].wait(RECEIVE_TIMEOUT_S), f"{name} did not log on"
        yield appliance, broker
    finally:
        initiator.stop()
        venue.stop()


def test_quickfix_orders_cross_both_sides_filled(venue_and_brokers) -> None:
    appliance, broker = venue_and_brokers

    buy = _new_order("FIX.4.4", "B-1", "1", 300, "223.82")
    quickfix.Session.sendToTarget(buy, broker.session_ids["BRK1"])
    (sender, ack), = _receive(broker, 1)
    assert sender == "BRK1"
    assert ack[35] == "8"
    assert ack[150] == "0"
    assert ack[39] == "0"
    assert ack[11] == "B-1"

    sell = _new_order("FIX.4.2", "S-1", "2", 100, "223.80")
    quickfix.Session.sendToTarget(sell, broker.session_ids["BRK2"])
    reports = _receive(broker, 3)
    by_sender: dict[str, list[dict[int, str]]] = {}
    for sender, fields in reports:
        by_sender.setdefault(sender, []).append(fields)

    seller_new, seller_fill = by_sender["BRK2"]
    assert seller_new[20] == "0"
    assert seller_new[150] == "0"
    assert seller_fill[150] == "2"
    assert seller_fill[39] == "2"
    assert seller_fill[32] == "100"
    assert seller_fill[31] == "223.82"
    assert seller_fill[14] == "100"
    assert seller_fill[151] == "0"

    (buyer_fill,) = by_sender["BRK1"]
    assert 20 not in buyer_fill
    assert buyer_fill[150] == "F"
    assert buyer_fill[39] == "1"
    assert buyer_fill[32] == "100"
    assert buyer_fill[31] == "223.82"
    assert buyer_fill[14] == "100"
    assert buyer_fill[151] == "200"
    assert buyer_fill[6] == "223.82"
    assert buyer_fill[17] != seller_fill[17]
    assert buyer_fill[37] != seller_fill[37]
    assert appliance.stats.executions == 1


def test_quickfix_cancel_of_unknown_order_rejected(venue_and_brokers) -> None:
    _, broker = venue_and_brokers
    cancel = quickfix.Message()
    cancel.getHeader().setField(quickfix.BeginString("FIX.4.4"))
    cancel.getHeader().setField(quickfix.MsgType("F"))
    cancel.setField(quickfix.OrigClOrdID("NO-SUCH"))
    cancel.setField(quickfix.ClOrdID("C-1"))
    cancel.setField(quickfix.Symbol("AMZN"))
    cancel.setField(quickfix.Side("1"))
    cancel.setField(quickfix.TransactTime())
    quickfix.Session.sendToTarget(cancel, broker.session_ids["BRK1"])
    ((sender, reject),) = _receive(broker, 1)
    assert sender == "BRK1"
    assert reject[35] == "9"
    assert reject[41] == "NO-SUCH"
    assert reject[434] == "1"
    assert reject[102] == "1"


@pytest.mark.parametrize(("broker", "begin_string", "reason"), [("BRK1", "FIX.4.4", "99"), ("BRK2", "FIX.4.2", "0")])
def test_quickfix_accepts_tick_size_reject(venue_and_brokers, broker, begin_string, reason) -> None:
    _, receiver = venue_and_brokers
    order = _new_order(begin_string, f"T-{broker}", "1", 10, "223.825")
    quickfix.Session.sendToTarget(order, receiver.session_ids[broker])
    ((sender, report),) = _receive(receiver, 1)
    assert sender == broker
    assert report[39] == "8"
    assert report[103] == reason
    assert "tick size" in report[58]
