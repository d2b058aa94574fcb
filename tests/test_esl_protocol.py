"""switch_bridge.freeswitch.esl.protocol against real FreeSWITCH captures, torn streams and junk."""

from __future__ import annotations

import collections
import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch_bridge.freeswitch.esl import protocol as P
from tests.esl_standin import (
    _parse_command,
    _take_command,
    encode_event_json,
    encode_event_plain,
    fs_url_encode,
)

CASES = ["a_register_unregister", "b_register_expire", "c_call_2000_tone_park",
         "d_call_1001_bridge", "e_call_9999_busy", "f_esl_bgapi_sendmsg"]
# Raw ESL streams among the older fixtures (SOURCES.md section A, plus the two complete
# single frames of section B); the other single-message literals have truncated bodies.
OLD_FRAMED = [
    "switchio_eventstream_plain_auth_disconnect_channel_create.txt",
    "switchio_eventstream2_segmented_bgapi_background_job_channel_park.txt",
    *[f"neventsocket_Example{i}_outbound_session_raw_plain.txt" for i in range(1, 6)],
    "bit4bit_text_event_json_API_frame_sofia_status.txt",
    "greenswitch_log_data_frame.txt",
]

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def capture_paths(fixtures_dir: Path) -> list[Path]:
    return sorted((fixtures_dir / "modern").glob("*/esl_*_*.txt"))


def read_old(fixtures_dir: Path, name: str) -> bytes:
    data = (fixtures_dir / name).read_bytes()
    if name.startswith("switchio_eventstream2"):
        data = data.replace(b"--", b"")  # the switchio authors' segmentation markers
    return data


def events_of(data: bytes) -> list[P.Event]:
    return [e for e in map(P.parse_event, P.FrameParser().feed(data)) if e is not None]


def frame_key(frame: P.Frame) -> tuple:
    return frame.header_list, frame.body


def event_key(event: P.Event) -> tuple:
    return event.items(), event.body


# ------------------------------------------------------------------ INDEX.md as the oracle


def index_table(fixtures_dir: Path) -> dict[str, dict]:
    """The "Framing verification" table of modern/INDEX.md."""
    text = (fixtures_dir / "modern" / "INDEX.md").read_text()
    rows = {}
    for m in re.finditer(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| ([^|]+) \| yes, 0 bytes left \|$",
                         text, re.M):
        types = {}
        for part in m.group(4).split(","):
            kind, _, count = part.strip().rpartition(" x")
            types[kind] = int(count)
        rows[m.group(1)] = {"bytes": int(m.group(2)), "frames": int(m.group(3)), "types": types}
    return rows


def index_sequences(fixtures_dir: Path) -> dict[str, list[tuple]]:
    """The "Frame sequence of `esl_X_plain.txt`" listings of modern/INDEX.md."""
    text = (fixtures_dir / "modern" / "INDEX.md").read_text()
    out = {}
    for m in re.finditer(r"Frame sequence of `(esl_\w+\.txt)`.*?```\n(.*?)```", text, re.S):
        seq = []
        for line in m.group(2).splitlines():
            kind = re.match(r"\s*\d+ \[([\w/-]+)\](?: Reply-Text: (.*?)(?:  |$))?", line)
            if kind:
                seq.append((kind.group(1), kind.group(2)))
                continue
            event = re.match(r"\s*\d+ #(\d+)\s+(\w+)(?: (\w+::\w+))?", line)
            assert event, line
            seq.append(("event", event.group(1), event.group(2), event.group(3)))
        out[m.group(1)] = seq
    return out


def test_index_oracle_is_complete(fixtures_dir):
    assert len(index_table(fixtures_dir)) == 12
    assert set(index_sequences(fixtures_dir)) == {f"esl_{c[0]}_plain.txt" for c in CASES}


def test_every_capture_frames_as_index_says(fixtures_dir):
    table = index_table(fixtures_dir)
    paths = capture_paths(fixtures_dir)
    assert len(paths) == len(table)
    for path in paths:
        data = path.read_bytes()
        expected = table[f"{path.parent.name}/{path.name}"]
        parser = P.FrameParser()
        frames = parser.feed(data)
        assert len(data) == expected["bytes"]
        assert len(frames) == expected["frames"], path.name
        assert dict(collections.Counter(f.content_type for f in frames)) == expected["types"]
        assert parser.buffered == 0 and parser.errors == 0, path.name
        # nothing lost or invented: the frames rebuild the capture byte for byte
        assert b"".join(f.to_bytes() for f in frames) == data


def test_plain_frame_sequence_matches_index(fixtures_dir):
    for name, expected in index_sequences(fixtures_dir).items():
        case = next(c for c in CASES if name == f"esl_{c[0]}_plain.txt")
        frames = P.FrameParser().feed((fixtures_dir / "modern" / case / name).read_bytes())
        got = []
        for frame in frames:
            event = P.parse_event(frame)
            if event is None:
                got.append((frame.content_type, frame.get("Reply-Text")))
            else:
                got.append(("event", event["Event-Sequence"], event.name, event.subclass))
        assert got == expected, name


def test_old_raw_streams_frame_completely(fixtures_dir):
    for name in OLD_FRAMED:
        data = read_old(fixtures_dir, name)
        parser = P.FrameParser()
        frames = parser.feed(data)
        assert frames, name
        assert parser.errors == 0 and parser.buffered == 0, name
        for frame in frames:
            P.parse_event(frame)  # raises EventParseError if unreadable


def test_old_single_event_bodies_parse(fixtures_dir):
    # bodies of framed literals whose outer Content-Length does not match (see SOURCES.md)
    for name, event_name in [
        ("neventsocket_CHANNEL_CALLSTATE_plain.txt", "CHANNEL_CALLSTATE"),
        ("neventsocket_CHANNEL_EXECUTE_COMPLETE_playback_plain.txt", "CHANNEL_EXECUTE_COMPLETE"),
        ("fsdocs_eventlist_HEARTBEAT_2008_framed.txt", "HEARTBEAT"),
        ("fsdocs_eventlist_CHANNEL_STATE_plain_framed.txt", "CHANNEL_STATE"),
    ]:
        body = (fixtures_dir / name).read_bytes().split(b"\n\n", 1)[1]
        assert P.parse_plain_body(body).name == event_name, name
    bare = (fixtures_dir / "greenswitch_HEARTBEAT_plain_body.txt").read_bytes()
    heartbeat = P.parse_plain_body(bare)  # no framing, no final newline
    assert heartbeat.name == "HEARTBEAT" and heartbeat.get("Event-Info") == "System Ready"
    job = P.parse_plain_body(
        (fixtures_dir / "neventsocket_BACKGROUND_JOB_plain_err.txt").read_bytes()
        .split(b"\n\n", 1)[1])
    assert job.name == "BACKGROUND_JOB" and job.body.startswith("-ERR Error")
    # a 2009 sofia::register that names its subclass twice: both kept, first one wins
    register = P.parse_plain_body(
        (fixtures_dir / "fsdocs_multicast_CUSTOM_sofia_register_2009_plain.txt").read_bytes())
    assert len(register.get_all("Event-Subclass")) == 2
    assert register.subclass == register.get_all("Event-Subclass")[0] == "sofia::register"


# ------------------------------------------------------------------ plain == json


def test_plain_and_json_captures_give_the_same_events(fixtures_dir):
    compared = 0
    for case in CASES:
        letter = case[0]
        plain = events_of((fixtures_dir / "modern" / case / f"esl_{letter}_plain.txt")
                          .read_bytes())
        as_json = events_of((fixtures_dir / "modern" / case / f"esl_{letter}_json.txt")
                            .read_bytes())
        assert [e["Event-Sequence"] for e in plain] == [e["Event-Sequence"] for e in as_json]
        for a, b in zip(plain, as_json, strict=True):
            assert a.items() == b.items(), (case, a)
            assert a.body == b.body
            compared += 1
    assert compared == 222


def test_sdp_keeps_its_carriage_returns(fixtures_dir):
    for fmt in ("plain", "json"):
        data = (fixtures_dir / "modern" / "c_call_2000_tone_park" / f"esl_c_{fmt}.txt").read_bytes()
        sdps = [e.get("variable_switch_r_sdp") for e in events_of(data)
                if e.get("variable_switch_r_sdp")]
        assert sdps, fmt
        for sdp in sdps:
            assert sdp.startswith("v=0\r\n") and sdp.endswith("\r\n")
            assert "\n" not in sdp.replace("\r\n", "")


def test_repeated_headers_are_kept(fixtures_dir):
    for fmt in ("plain", "json"):
        data = (fixtures_dir / "modern" / "c_call_2000_tone_park" / f"esl_c_{fmt}.txt").read_bytes()
        evs = events_of(data)
        # (the first CODEC of each pair has the header once, the second twice)
        codecs = [e for e in evs if e.name == "CODEC"
                  and len(e.get_all("Channel-Write-Codec-Name")) == 2]
        assert codecs, fmt
        for codec in codecs:
            names = [n for n, _ in codec.items()]
            assert names.count("Channel-Write-Codec-Rate") == 2
            assert codec.headers["Channel-Write-Codec-Name"] == codec.get_all(
                "Channel-Write-Codec-Name")[0]
            assert len(codec.headers) == len(set(names)) == len(codec) - 2
        hangup = next(e for e in evs if e.name == "CHANNEL_HANGUP_COMPLETE")
        assert hangup.get_all("Hangup-Cause") == ["NORMAL_CLEARING", "NORMAL_CLEARING"]
        assert len(hangup.headers) == len(hangup) - 1


def test_background_job_body_and_arrays(fixtures_dir):
    for fmt in ("plain", "json"):
        data = (fixtures_dir / "modern" / "f_esl_bgapi_sendmsg" / f"esl_f_{fmt}.txt").read_bytes()
        job = next(e for e in events_of(data) if e.name == "BACKGROUND_JOB")
        assert job.get("Job-UUID") == "c0ffee00-0000-4000-8000-00000000000f"
        assert job.body == "+OK 87324737-d14d-435c-be26-6773a6beeeed\n"
        assert job.get("Job-Command-Arg") == "loopback/2000 &park()"
        executed = [e for e in events_of(data) if e.name == "CHANNEL_EXECUTE_COMPLETE"
                    and e.get("Application-UUID") == "c0ffee00-0000-4000-8000-0000000000e1"]
        assert [e.get("Application-Response") for e in executed] == ["FILE PLAYED"]
        data = (fixtures_dir / "modern" / "d_call_1001_bridge" / f"esl_d_{fmt}.txt").read_bytes()
        with_array = [e for e in events_of(data) if e.get("variable_originate_causes", "")
                      .startswith("ARRAY::")]
        assert with_array, fmt
        causes = with_array[0].get_list("variable_originate_causes")
        assert len(causes) == 2 and all(c.endswith(";NONE") for c in causes)
        assert with_array[0].get_list("Event-Name") == [with_array[0].name]
        assert with_array[0].get_list("No-Such-Header") == []


def test_api_response_frames(fixtures_dir):
    data = (fixtures_dir / "modern" / "f_esl_bgapi_sendmsg" / "esl_f_plain.txt").read_bytes()
    frames = P.FrameParser().feed(data)
    api = [f for f in frames if f.content_type == "api/response"]
    assert [f.body_text for f in api[1:]] == ["+OK\n", "-ERR No such channel!\n"]
    assert api[0].header_list[0] == ("Content-Type", "api/response")  # type first, then length
    reply = next(f for f in frames if f.get("Job-UUID"))
    assert reply.get("Reply-Text") == f"+OK Job-UUID: {reply.get('Job-UUID')}"
    notice = frames[-1]
    assert notice.content_type == "text/disconnect-notice"
    assert notice.body_text.startswith("Disconnected, goodbye.")


# ------------------------------------------------------------------ torn streams


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_random_splits_give_identical_frames(fixtures_dir, case, fmt):
    data = (fixtures_dir / "modern" / case / f"esl_{case[0]}_{fmt}.txt").read_bytes()
    whole = P.FrameParser().feed(data)
    expected_frames = [frame_key(f) for f in whole]
    expected_events = [event_key(e) for e in map(P.parse_event, whole) if e is not None]

    @SETTINGS
    @given(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=60))
    def check(cuts):
        parser = P.FrameParser()
        frames = []
        points = [0, *sorted(cuts), len(data)]
        for start, end in zip(points, points[1:], strict=False):
            frames += parser.feed(data[start:end])
        assert [frame_key(f) for f in frames] == expected_frames
        assert [event_key(e) for e in map(P.parse_event, frames) if e is not None] \
            == expected_events
        assert parser.buffered == 0 and parser.errors == 0

    check()


def test_byte_by_byte_feed(fixtures_dir):
    data = (fixtures_dir / "modern" / "a_register_unregister" / "esl_a_plain.txt").read_bytes()
    parser = P.FrameParser()
    frames = []
    for i in range(len(data)):
        frames += parser.feed(data[i:i + 1])
    assert [frame_key(f) for f in frames] == [frame_key(f) for f in P.FrameParser().feed(data)]


def test_frames_without_body_are_emitted_at_once():
    parser = P.FrameParser()
    assert [f.content_type for f in parser.feed(b"Content-Type: auth/request\n\n")] == [
        "auth/request"]
    frames = parser.feed(b"Content-Length: 0\nContent-Type: text/event-json\n\n")
    assert [(f.content_type, f.body) for f in frames] == [("text/event-json", b"")]
    assert parser.buffered == 0


def test_crlf_line_ends_are_tolerated():
    frames = P.FrameParser().feed(b"Content-Type: command/reply\r\nReply-Text: +OK\r\n\r\n"
                                  b"Content-Type: api/response\r\nContent-Length: 3\r\n\r\n+OK")
    assert [(f.content_type, f.get("Reply-Text"), f.body) for f in frames] == [
        ("command/reply", "+OK", b""), ("api/response", None, b"+OK")]


# ------------------------------------------------------------------ broken input

GOOD = b"Content-Type: command/reply\nReply-Text: +OK good\n\n"


def good_frames(frames: list[P.Frame]) -> list[str | None]:
    return [f.get("Reply-Text") for f in frames if f.content_type == "command/reply"]


@pytest.mark.parametrize("broken, message", [
    (b"no colon on this line\nContent-Type: text/x-junk\nX: y\n\n", "malformed header line"),
    (b"Content-Type: api/response\nContent-Length: abc\n\nxyz", "bad Content-Length"),
    (b"Content-Type: api/response\nContent-Length: -5\n\n", "bad Content-Length"),
    (b"Content-Type: api/response\nContent-Length: 5000\n\n" + b"x" * 5000,
     "over the 4096-byte limit"),
    (b"Reply-Text: +OK lost\n\n", "without Content-Type"),
    (b"X-Junk: " + b"j" * 3000 + b"\n\n", "header block longer than 1024"),
    (b'{"Event-Name":"CHANNEL_STATE"}', "malformed header line"),  # JSON tail glued on
])
def test_broken_frame_is_skipped_and_counted(broken, message):
    seen = []
    parser = P.FrameParser(max_header_bytes=1024, max_body_bytes=4096, on_error=seen.append)
    frames = parser.feed(GOOD + broken + GOOD)
    assert good_frames(frames) == ["+OK good", "+OK good"]
    assert parser.errors == 1
    assert message in seen[0] and list(parser.error_log) == seen
    assert parser.buffered == 0


def test_long_runs_of_header_lines_are_skipped_in_one_go():
    # no blank line for 32 KiB: one error, not one per line (resync must not rescan)
    parser = P.FrameParser(max_header_bytes=1024)
    frames = parser.feed(b"Content-Type: a\n" * 2000 + b"\n" + GOOD)
    assert good_frames(frames) == ["+OK good"]
    assert parser.errors == 1 and parser.buffered == 0
    # a marker on every other line, a bad line in between: one error per bad line
    parser = P.FrameParser()
    frames = parser.feed(b"Content-Type: a\nbad\n" * 500 + b"\n" + GOOD)
    assert good_frames(frames) == ["+OK good"] and parser.errors == 500


def test_broken_frame_torn_across_feeds():
    data = GOOD + b"Content-Length: 12x\nContent-Type: text/event-plain\n\nEvent-Name: X\n\n" + GOOD
    parser = P.FrameParser()
    frames = []
    for i in range(0, len(data), 7):
        frames += parser.feed(data[i:i + 7])
    assert good_frames(frames) == ["+OK good", "+OK good"]
    assert parser.errors >= 1


def test_junk_before_a_whole_capture(fixtures_dir):
    data = (fixtures_dir / "modern" / "d_call_1001_bridge" / "esl_d_json.txt").read_bytes()
    parser = P.FrameParser()
    frames = parser.feed(b"\x00\xff garbage: [not a frame\n\n" + data)
    assert len(frames) == 62 and parser.errors == 1


def test_truncated_json_body_loses_one_event_only():
    first = encode_event_json([("Event-Name", "CHANNEL_STATE"), ("Unique-ID", "u1")])
    head, body = first.split(b"\n\n", 1)
    short = head.replace(f"Content-Length: {len(body)}".encode(),
                         f"Content-Length: {len(body) - 3}".encode()) + b"\n\n" + body
    second = encode_event_json([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u2")])
    parser = P.FrameParser()
    frames = parser.feed(short + second)
    parsed = []
    for frame in frames:
        try:
            parsed.append(P.parse_event(frame).name)
        except P.EventParseError:
            parsed.append("unreadable")
    assert parsed == ["unreadable", "CHANNEL_ANSWER"]
    assert parser.errors == 1


ESLISH = st.sampled_from([
    b"Content-Type: text/event-plain\n", b"Content-Type: command/reply\n",
    b"Content-Length: 5\n", b"Content-Length: -1\n", b"Content-Length: 99999999\n",
    b"Content-Length: 17\n", b"\n", b"\n\n", b"\r\n", b"Event-Name: X\n", b"Reply-Text: +OK\n",
    b"garbage", b'{"Event-Name":"Y"}', b":", b"%0A", b"\x00", b"Content-Type: text/event-json\n",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ESLISH, st.binary(max_size=64)), max_size=60),
       st.integers(min_value=1, max_value=97))
def test_random_input_never_raises_or_grows(pieces, chunk):
    parser = P.FrameParser(max_header_bytes=256, max_body_bytes=512)
    data = b"".join(pieces)
    for i in range(0, len(data), chunk):
        frames = parser.feed(data[i:i + chunk])
        assert parser.buffered <= 256 + 512 + chunk + 64
        for frame in frames:
            try:
                event = P.parse_event(frame)
            except P.EventParseError:
                continue
            assert event is None or isinstance(event, P.Event)
    # the stream still works afterwards
    assert good_frames(parser.feed(b"\n\n" + GOOD + GOOD))[-1:] == ["+OK good"]


# ------------------------------------------------------------------ values and events


def test_undef_means_empty():
    frame = P.FrameParser().feed(encode_event_plain([
        ("Event-Name", "CHANNEL_HANGUP"), ("variable_sip_user_agent", "_undef_"),
        ("Other-Leg-Unique-ID", "_undef_")]))[0]
    event = P.parse_event(frame)
    assert event.get("variable_sip_user_agent") is None
    assert event.get("Other-Leg-Unique-ID", "") == ""
    assert event.headers["Other-Leg-Unique-ID"] == "_undef_"  # the raw value stays visible
    assert "Other-Leg-Unique-ID" in event


def test_non_event_frames_and_unreadable_events():
    assert P.parse_event(P.Frame([("Content-Type", "command/reply")])) is None
    with pytest.raises(P.EventParseError, match="not JSON"):
        P.parse_event(P.Frame([("Content-Type", "text/event-json")], b'{"Event-Name": "X"'))
    with pytest.raises(P.EventParseError, match="without Event-Name"):
        P.parse_event(P.Frame([("Content-Type", "text/event-json")], b'{"A": "b"}'))
    with pytest.raises(P.EventParseError, match="without Event-Name"):
        P.parse_event(P.Frame([("Content-Type", "text/event-plain")], b"A: b\n\n"))
    with pytest.raises(P.EventParseError, match="no header lines"):
        P.parse_event(P.Frame([("Content-Type", "text/event-plain")], b"\n\n"))
    with pytest.raises(P.EventParseError, match="inner Content-Length"):
        P.parse_event(P.Frame([("Content-Type", "text/event-plain")],
                              b"Event-Name: X\nContent-Length: x\n\nbody"))


def test_json_values_that_are_not_strings():
    event = P.parse_json_body(b'{"Event-Name":"X","n":5,"f":1.5,"t":true,"z":null,'
                              b'"l":["a","b"],"o":{"k":"v"},"_body":"hi"}')
    assert event.items() == [("Event-Name", "X"), ("n", "5"), ("f", "1.5"), ("t", "true"),
                             ("z", ""), ("l", "ARRAY::a|:b"), ("o", '{"k":"v"}')]
    assert event.body == "hi" and event.get_list("l") == ["a", "b"]
    repeated = P.parse_json_body(b'{"Event-Name":"X","d":1,"d":"s","_body":"a","_body":"b"}')
    assert repeated.get_all("d") == ["1", "s"] and repeated.headers["d"] == "1"
    assert "_body" not in repeated and repeated.body == "b"


def test_plain_event_without_the_fast_path():
    # hand-decoded values (spaces, colons, a multi-line value) still give their headers
    event = P.parse_plain_body(b"Event-Name: CUSTOM\nEvent-Date-Local: 2015-01-28 15:00:44\n"
                               b"Reply-Text: +OK: yes\nv=0\nNo-Space:x\n\n")
    assert event.items() == [("Event-Name", "CUSTOM"),
                             ("Event-Date-Local", "2015-01-28 15:00:44"),
                             ("Reply-Text", "+OK: yes"), ("No-Space", "x")]


VALUE = st.text(alphabet=st.one_of(st.sampled_from("%=0aAfF9zZ \r\n\t|:,/()~*+&?#\x00é€"),
                                   st.characters(blacklist_categories=("Cs",))), max_size=40)


@settings(max_examples=500, deadline=None)
@given(st.lists(VALUE, max_size=12))
def test_fast_decode_equals_unquote(values):
    assert P.decode_values(values) == [unquote(v) for v in values]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("%0123456789abcdefABCDEFg="), max_size=12),
                max_size=8))
def test_fast_decode_equals_unquote_on_percent_soup(values):
    assert P.decode_values(values) == [unquote(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(VALUE)
def test_freeswitch_encoding_round_trips(value):
    assert P.decode_values([fs_url_encode(value)]) == [value]


NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda n: n not in ("Content-Length", "Event-Name"))
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAME, st.one_of(TEXT, st.lists(TEXT, min_size=2, max_size=3))),
                max_size=15),
       st.one_of(st.none(), TEXT.filter(bool)))
def test_plain_and_json_encodings_decode_alike(pairs, body):
    headers = [("Event-Name", "CUSTOM"), *pairs]
    plain = P.parse_event(P.FrameParser().feed(encode_event_plain(headers, body))[0])
    as_json = P.parse_event(P.FrameParser().feed(encode_event_json(headers, body))[0])
    assert plain.items() == as_json.items()
    assert plain.body == as_json.body == (body or "")
    for name, value in pairs:
        if isinstance(value, str):
            assert value in plain.get_all(name)


def test_event_accessors():
    event = P.Event.from_pairs([("Event-Subclass", "sofia::register"), ("Event-Name", "CUSTOM"),
                                ("Unique-ID", "u"), ("x", "1"), ("x", "2")], body="b")
    assert (event.name, event.subclass, event.uuid, event.body) == ("CUSTOM", "sofia::register",
                                                                     "u", "b")
    assert event["x"] == "1" and event.get_all("x") == ["1", "2"] and len(event) == 5
    assert "x" in event and "y" not in event and event.get("y", "d") == "d"
    assert "CUSTOM sofia::register" in repr(event)


# ------------------------------------------------------------------ commands


def test_commands_match_the_bytes_a_real_client_sent(fixtures_dir):
    sent = (fixtures_dir / "modern" / "f_esl_bgapi_sendmsg" / "esl_f_plain.txt.sent").read_bytes()
    ours = (P.auth("ClueCon") + P.events("plain", ["ALL"])
            + P.sendmsg("cab22d7e-9748-42f0-8707-d2ebffeb89c3", "playback",
                        "tone_stream://%(500,0,880)",
                        event_uuid="c0ffee00-0000-4000-8000-0000000000e1")
            + P.api("status")
            + P.bgapi("originate loopback/2000 &park()", "c0ffee00-0000-4000-8000-00000000000f")
            + P.api("uuid_kill 87324737-d14d-435c-be26-6773a6beeeed")
            + P.api("uuid_kill 00000000-0000-4000-8000-000000000000") + P.exit_())
    # header names are case-insensitive in FreeSWITCH; the capture client wrote Event-UUID
    assert ours.lower() == sent.lower()
    assert ours.replace(b"event-uuid", b"Event-UUID") == sent


def test_command_encoding():
    assert P.events("json", ["CUSTOM", "sofia::register", "HEARTBEAT"]) == \
        b"events json CUSTOM sofia::register HEARTBEAT\n\n"
    assert P.bgapi("status") == b"bgapi status\n\n"
    assert P.filter_("Event-Name", "CHANNEL_CREATE") == b"filter Event-Name CHANNEL_CREATE\n\n"
    assert P.nixevent(["HEARTBEAT"]) == b"nixevent HEARTBEAT\n\n"
    assert P.noevents() == b"noevents\n\n" and P.exit_() == b"exit\n\n"
    assert P.linger() == b"linger\n\n" and P.linger(10) == b"linger 10\n\n"
    assert P.myevents("u-1", "json") == b"myevents u-1 json\n\n"
    assert P.sendmsg("u-1", "park", event_lock=True, loops=3) == (
        b"sendmsg u-1\ncall-command: execute\nexecute-app-name: park\nloops: 3\n"
        b"event-lock: true\n\n")


@pytest.mark.parametrize("call", [
    lambda: P.api("status\n\napi shutdown"),
    lambda: P.api("status\rx"),
    lambda: P.api("sta\x00tus"),
    lambda: P.api(""),
    lambda: P.bgapi("originate x", "job\nContent-Length: 5"),
    lambda: P.bgapi("originate x\nJob-UUID: forged"),
    lambda: P.sendmsg("uuid\nexecute-app-name: system", "playback"),
    lambda: P.sendmsg("uuid", "playback\nexecute-app-name: system"),
    lambda: P.sendmsg("uuid", "play back"),
    lambda: P.sendmsg("uuid", "playback", "x\x00y"),
    lambda: P.sendmsg("uuid", "playback", event_uuid="e\n\nexit"),
    lambda: P.events("plain", ["CHANNEL_CREATE\n\napi shutdown"]),
    lambda: P.events("plain", []),
    lambda: P.events("yaml", ["ALL"]),
    lambda: P.filter_("Event-Name", "x\ny"),
    lambda: P.nixevent(["A B"]),
    lambda: P.myevents("u", "csv"),
])
def test_injection_and_bad_values_are_refused(call):
    with pytest.raises(ValueError):
        call()


def test_bad_password_error_never_quotes_it():
    with pytest.raises(ValueError) as info:
        P.auth("s3cret\nevents plain ALL")
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError):
        P.auth("")


@pytest.mark.parametrize("arg", ["line one\nline two", "a\r\nb", "x\n\napi shutdown\n\n",
                                 " leading blank", "trailing blank ", "héllo\nwörld"])
def test_sendmsg_argument_with_line_breaks_travels_as_a_body(arg):
    data = P.sendmsg("u-1", "playback", arg, event_uuid="e-1")
    taken = _take_command(data)
    assert taken is not None and taken[1] == b""  # exactly one command on the wire
    command = _parse_command(1, taken[0])
    assert command.line == "sendmsg u-1"
    assert command.headers["content-type"] == "text/plain"
    assert "execute-app-arg" not in command.headers
    assert command.app_arg == arg  # what FreeSWITCH's switch_ivr_parse_event would run
    assert command.headers["event-uuid"] == "e-1"


def test_sendmsg_plain_argument_is_a_header():
    command = _parse_command(1, P.sendmsg("u-1", "playback", "tone_stream://%(200,0,440)"))
    assert command.headers["execute-app-arg"] == "tone_stream://%(200,0,440)"
    assert command.body == b"" and command.app_arg == "tone_stream://%(200,0,440)"


# ------------------------------------------------------------------ greenswitch evidence


def greenswitch_events(data: bytes) -> list:
    """greenswitch 0.0.19's own reader run over a capture (its socket file replaced)."""
    gevent_event = pytest.importorskip("gevent.event")
    esl = pytest.importorskip("greenswitch.esl")

    class NoSocket:
        def close(self):
            pass

    proto = esl.ESLProtocol()
    proto.sock, proto.sock_file, proto.connected = NoSocket(), io.BytesIO(data), True
    proto._commands_sent = [gevent_event.AsyncResult() for _ in range(3)]
    proto.receive_events()
    out = []
    while not proto._esl_event_queue.empty():
        event = proto._esl_event_queue.get()
        if event.headers.get("Content-Type") == "text/event-plain":
            out.append(event)
    return out


def test_greenswitch_decodes_before_splitting(fixtures_dir):
    """The evidence for our own module (docs/design.md decision 4), measured on case c."""
    data = (fixtures_dir / "modern" / "c_call_2000_tone_park" / "esl_c_plain.txt").read_bytes()
    theirs = greenswitch_events(data)
    ours = events_of(data)
    reference = events_of((fixtures_dir / "modern" / "c_call_2000_tone_park" / "esl_c_json.txt")
                          .read_bytes())
    assert len(theirs) == len(ours) == len(reference) == 29
    differing_values = 0
    differing_events = 0
    for g, o, r in zip(theirs, ours, reference, strict=True):
        assert o.items() == r.items()  # ours agrees with FreeSWITCH's own JSON
        wrong = [n for n in o.headers if g.headers.get(n) != o.headers[n]]
        differing_values += len(wrong)
        differing_events += bool(wrong)
        for name in wrong:
            assert "\r" in o.headers[name] and "\r" not in g.headers.get(name, "")
    assert differing_values == 28 and differing_events == 15


def test_json_capture_bodies_are_single_objects(fixtures_dir):
    for path in capture_paths(fixtures_dir):
        if path.name.endswith("_json.txt"):
            for frame in P.FrameParser().feed(path.read_bytes()):
                if frame.content_type == "text/event-json":
                    assert isinstance(json.loads(frame.body), dict)
