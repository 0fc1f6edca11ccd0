"""What a rotation hands on for one flow (flowscope/live/carry.py), case by case: the walk
state as stitch_flows would have built it, the evidence as for_flows would join it, the DNS
answers a later period needs. (The whole: test_live_rotate.py.)"""
from collections import Counter
from types import SimpleNamespace

from flowscope.dissect.evidence import MAX_FLOW_ANSWERS, Evidence, FlowBytes
from flowscope.dissect.streams import RESYNC, WA, RecordWalk, StreamWalks
from flowscope.live.carry import DnsContext, _evidence, _walk
from flowscope.metadata.framewalk import LOCKED, NOISE, Direction


def _walk_of(kind, frames_up=(), frames_down=(), gaps=0):
    w = RecordWalk.__new__(RecordWalk)
    w.kind = kind
    w.dirs = (Direction(LOCKED, NOISE), Direction(LOCKED, NOISE))
    w.dirs[0].frames, w.dirs[1].frames = list(frames_up), list(frames_down)
    w.dirs[0].gaps = gaps
    return w


def _store(*walks):
    s = StreamWalks()
    for k, w in enumerate(walks):
        if w is not None:
            s.walks[(k, 0)] = w
    return s, [(k, 0) for k in range(len(walks))]


def test_walk_carried_whole_or_not_at_all():
    first = _walk_of(WA, [(40, 1, 2)], [(30, 3, 4)])
    store, keys = _store(first)
    walk, cut = _walk(store, keys, [False], [False], False, Counter())
    assert cut is None and walk.kind == WA and walk.dirs[0].frames == [(40, 1, 2)]
    assert walk.dirs[0] is not first.dirs[0] and store.walks == {}   # a copy; the record's walk is gone
    store, keys = _store(first)   # seen from the other side: directions swapped
    walk, _ = _walk(store, keys, [True], [False], False, Counter())
    assert walk.dirs[0].frames == [(30, 3, 4)]
    store, keys = _store(None, first)   # the first record with bytes was not walked: nor is the flow
    assert _walk(store, keys, [False, False], [False, False], False, Counter()) == (None, None)
    store, keys = _store(None, first)   # ... unless it had no payload
    walk, _ = _walk(store, keys, [False, False], [True, False], False, Counter())
    assert walk.dirs[0].frames == [(40, 1, 2)]
    store, keys = _store(_walk_of(RESYNC, [(40, 1, 2)]))   # resync on a flow whose SYN was seen: not walked
    assert _walk(store, keys, [False], [False], True, Counter()) == (None, None)


def test_a_walk_broken_by_a_record_not_walked_is_carried_as_two_records():
    store, keys = _store(_walk_of(WA, [(40, 1, 2)]), None)
    walk, cut = _walk(store, keys, [False, False], [False, False], False, Counter())
    assert cut == 1 and walk.dirs[0].frames == [(40, 1, 2)]
    # a walked record after the break starts afresh on the frames so far, as stitch_flows does
    store, keys = _store(_walk_of(WA, [(40, 1, 2)], gaps=1), None, _walk_of(WA, [(50, 5, 6)]))
    walk, cut = _walk(store, keys, [False] * 3, [False] * 3, False, Counter())
    assert cut is None and walk.dirs[0].frames == [(40, 1, 2), (50, 5, 6)] and walk.dirs[0].gaps == 2


def _collector(**kw):
    return SimpleNamespace(evidence=kw.get("evidence", {}), pending=kw.get("pending", {}),
                           decided=kw.get("decided", set()), counts=Counter())


def _bytes(l4, *segments):
    fb = FlowBytes(l4)
    for d, seq, data in segments:
        fb.add(d, seq, 0, data)
    return fb


def test_evidence_joins_kept_bytes_in_the_flows_orientation_and_cuts_them():
    coll = _collector(pending={(0, 0): _bytes(17, (0, 0, b"a"), (0, 0, b"b"), (1, 0, b"x")),
                               (1, 0): _bytes(17, (0, 0, b"y"), (1, 0, b"c"), (1, 0, b"d"), (1, 0, b"e"))})
    pay = _evidence(coll, [(0, 0), (1, 0)], [False, True], Counter())   # the second record is reversed
    assert [d for _ts, d in pay.pending.datagrams[0]] == [b"a", b"b", b"c", b"d"]   # KEEP_UDP: 4 up
    assert [d for _ts, d in pay.pending.datagrams[1]] == [b"x", b"y"]               # and 2 down
    assert pay.evidence is None and not pay.decided and coll.pending == {}


def test_evidence_after_a_record_dissected_from_its_syn():
    syn = Evidence(sni="chat.example")
    coll = _collector(evidence={(1, 0): syn}, decided={(1, 0)},
                      pending={(0, 0): _bytes(6, (0, 1, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")),
                               (2, 0): _bytes(6, (0, 9, b"later"))})
    counts = Counter()
    pay = _evidence(coll, [(0, 0), (1, 0), (2, 0)], [False] * 3, counts)
    # bytes before it are dissected now (for_flows would do it last), bytes after it never
    assert pay.decided and pay.pending is None
    assert (pay.evidence.sni, pay.evidence.http_host) == ("chat.example", "a.example")
    assert counts == {"carry-bytes-dissected-early": 1}


def test_dns_answers_of_a_carried_flow_are_bounded_newest_first():
    many = Evidence(dns_answers=[(t, f"10.0.{t // 256}.{t % 256}", "x.example") for t in range(MAX_FLOW_ANSWERS + 5)])
    coll = _collector(evidence={(0, 0): many})
    counts = Counter()
    pay = _evidence(coll, [(0, 0)], [False], counts)
    assert len(pay.evidence.dns_answers) == MAX_FLOW_ANSWERS and pay.evidence.dns_answers[0][0] == 5
    assert counts == {"carry-dns-answers-cut": 1}


def test_dns_context_keeps_the_latest_answer_per_address_and_pins_carried_flows():
    ctx = DnsContext(limit=10)
    ctx.rotate([(10, "1.2.3.4", "a.example"), (20, "1.2.3.4", "b.example"), (15, "5.6.7.8", "c.example")],
               [("flow", "1.2.3.4", 12)])
    assert ctx.latest == {"1.2.3.4": (20, "b.example"), "5.6.7.8": (15, "c.example")}
    assert ctx.pins == {"flow": (10, "1.2.3.4", "a.example")}   # the answer before the flow began
    ctx.rotate([(30, "1.2.3.4", "d.example")], [("flow", "1.2.3.4", 12), ("new", "1.2.3.4", 25)])
    assert ctx.pins == {"flow": (10, "1.2.3.4", "a.example"), "new": (20, "1.2.3.4", "b.example")}
    assert sorted(ctx.answers()) == [(10, "1.2.3.4", "a.example"), (15, "5.6.7.8", "c.example"),
                                     (20, "1.2.3.4", "b.example"), (30, "1.2.3.4", "d.example")]
    ctx.rotate([(100 + k, f"9.9.9.{k}", "z.example") for k in range(12)], [])
    assert len(ctx.latest) == 9 and ctx.evicted == 5 and "5.6.7.8" not in ctx.latest   # the oldest go
