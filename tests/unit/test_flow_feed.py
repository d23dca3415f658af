"""The flow feed without a network: reports encoded, batched, decoded and replayed into a recorder
come out as the hops the sender's own recorder made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bus import Envelope
from app.config import Settings, SettingsError
from app.main import create_app
from app.observe.flows.feed import FeedReplayer, FlowFeed, batch, decode, encode, feed_for, subject
from app.observe.flows.recorder import FlowRecorder, Hop
from app.observe.observers import HttpExchange, Observers
from tests.support.asgi import running
from tests.support.seed import walk_seed_scenario
from tests.support.settings import memory_settings

EVENT = Envelope(
    "orders.payment_requested.v1",
    "orders",
    {"orderId": "o1", "login": "alice", "amount": 300},
    subject="alice",
    correlationid="cid-1",
    causationid="ev-0",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)
EXCHANGE = HttpExchange(
    "POST", "/order/createOrder", 200, "cid-1", 1000.0, 0.012, route="/order/createOrder", login="alice"
)


class Sent:
    """Stands in for the NATS connection: keeps what was published."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        self.messages.append((subject, payload))


def round_trip(name: str, args: tuple[object, ...]) -> tuple[str, float, tuple[object, ...]]:
    encoded = encode(name, 1234.5, args)
    assert encoded is not None
    return decode(orjson.loads(orjson.dumps(encoded)))


def test_every_kind_of_argument_comes_back_as_it_went() -> None:
    redelivered = EVENT.delivered(3)
    assert round_trip("on_http", (EXCHANGE,)) == ("on_http", 1234.5, (EXCHANGE,))
    name, at, (event, group, duration) = round_trip("on_acked", (redelivered, "billing", 0.004))
    assert (name, at, group, duration) == ("on_acked", 1234.5, "billing", 0.004)
    assert isinstance(event, Envelope)
    assert event == EVENT and event.attempt == 3 and event.traceparent == EVENT.traceparent


def test_a_report_the_feed_was_never_told_about_goes_through_when_its_arguments_are_known_kinds() -> None:
    # e.g. on_note(module, correlation_id, login, text) and on_skipped(event, group)
    note = ("billing", "cid-1", "alice", "withdraw 300.00, balance 700.00")
    assert round_trip("on_note", note) == ("on_note", 1234.5, note)
    assert round_trip("on_skipped", (EVENT, "billing"))[2] == (EVENT, "billing")


def test_an_argument_of_another_kind_leaves_its_report_out_and_counts_it() -> None:
    message, left_out = batch([("on_published", 1.0, (object(),)), ("on_published", 2.0, (EVENT,))])
    assert left_out == 1
    assert [r[1] for r in orjson.loads(message)["reports"]] == [2.0]


def test_a_replayed_hop_keeps_the_time_it_happened_in_its_sender() -> None:
    recorder = FlowRecorder()
    replayer = FeedReplayer("nats://unused", "ns.flows", recorder)
    message, _ = batch([("on_published", 1000.25, (EVENT,)), ("on_delivered", 1000.5, (EVENT, "billing"))])
    replayer.replay(message)
    flow = recorder.get("cid-1")
    assert flow is not None and flow.login == "alice"
    assert [(h.kind, h.module, h.at) for h in flow.ordered()] == [
        ("published", "orders", 1000.25),
        ("delivered", "billing", 1000.5),
    ]
    recorder.on_published(EVENT)  # the console's own hops: stamped now again
    assert flow.hops[-1].at > 1000.5


def test_what_cannot_be_read_is_counted_and_never_raises() -> None:
    recorder = FlowRecorder()
    replayer = FeedReplayer("nats://unused", "ns.flows", recorder)
    replayer.replay(b"not json")
    good = encode("on_published", 1.0, (EVENT,))
    bad = [["on_nothing", 1.0], ["on_published", 1.0, {"what": 1}], ["on_acked", 1.0, "too few"], 7]
    replayer.replay(orjson.dumps({"reports": [*bad, good]}))
    assert (replayer.refused, replayer.replayed) == (1 + len(bad), 1)


async def test_a_full_buffer_drops_and_counts_and_a_flush_sends_batches() -> None:
    feed = FlowFeed("nats://unused", "ns.flows", max_buffer=250)
    observers = Observers([feed])
    for _ in range(300):
        observers.on_published(EVENT)
    assert feed.dropped == 50
    feed._nc = sent = Sent()
    await feed.flush()
    assert [len(orjson.loads(m)["reports"]) for _, m in sent.messages] == [200, 50]
    assert {s for s, _ in sent.messages} == {"ns.flows"} and feed.sent == 250


def without_clock(hop: Hop) -> tuple[object, ...]:
    return hop._replace(seq=0, at=0.0)


async def test_the_seed_scenario_replayed_is_the_flows_its_own_recorder_made(tmp_path: Path) -> None:
    app = create_app(memory_settings(data_dir=tmp_path))
    system = app.state.system
    feed = FlowFeed("nats://unused", "ns.flows", max_buffer=100_000)
    system.observers.add(feed)
    async with running(app) as client:
        await walk_seed_scenario(client)
    direct = next(o for o in system.observers.observers if isinstance(o, FlowRecorder))
    feed._nc = sent = Sent()
    await feed.flush()
    replayed = FlowRecorder()
    replayer = FeedReplayer("nats://unused", "ns.flows", replayed)
    for _, message in sent.messages:
        replayer.replay(message)
    assert replayer.refused == 0 and feed.dropped == 0
    assert list(replayed.flows) == list(direct.flows) and len(direct.flows) >= 5

    def shape(flow: Any) -> tuple[object, ...]:
        summary = {k: v for k, v in flow.summary().items() if k not in ("start", "duration")}
        return summary, sorted(map(without_clock, flow.hops))

    for cid, flow in direct.flows.items():
        assert shape(replayed.flows[cid]) == shape(flow), cid
        # the sender stamps a report when it makes it, within a millisecond of its own recorder
        gap = max(abs(a.at - b.at) for a, b in zip(flow.hops, replayed.flows[cid].hops, strict=True))
        assert gap < 0.05


def test_the_feed_needs_nats_and_each_process_takes_its_end() -> None:
    with pytest.raises(SettingsError, match=r"FLOWS_FEED.*NATS"):
        Settings.load(environ={"FLOWS_FEED": "1"}, env_file=None, secrets_dir=None)
    on = Settings(bus_url="nats://127.0.0.1:4222", bus_namespace="ns", flows_feed=True)
    recorder, observers = FlowRecorder(), Observers()
    sender = feed_for(on, observers, recorder)
    assert isinstance(sender, FlowFeed) and observers.observers == [sender]
    assert sender.subject == subject("ns") == "ns.flows"
    assert isinstance(feed_for(on.with_(consume=False), Observers(), recorder), FeedReplayer)
    assert feed_for(on.with_(consume=False), Observers(), FlowRecorder(max_flows=0)) is None
    assert feed_for(on.with_(flows_feed=False), Observers(), recorder) is None
