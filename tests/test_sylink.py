"""Tests of conformance/traces/sylink.py: the shipped examples, every error kind
(file, line, element in the message), the XML attacks, a Hypothesis round trip and
fuzzing that
must only ever produce ConfigError."""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sephb.conformance.traces import sylink
from sephb.conformance.traces.sylink import MAX_HEARTBEAT_S, Gup, Server, Sylink
from sephb.model.errors import ConfigError, UsageError
from sephb.model.protocol import GUP_PORT, HEARTBEAT_INTERVAL_S, MANAGER_CONTENT_PORT, Mode

EXAMPLES = Path(__file__).resolve().parent.parent / "conformance" / "examples"


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth line containing ``needle``."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if needle in ln]
    return hits[nth]


# -- the shipped examples --------------------------------------------------------------


def test_pull_example() -> None:
    s = sylink.load(EXAMPLES / "sylink-pull.xml")
    assert s.mode is Mode.PULL
    assert s.heartbeat_s == 300 and s.push_heartbeat_s == 300
    assert s.servers == (
        Server("127.0.0.2", 8014, priority=1, index=0),
        Server("127.0.0.3", 8014, priority=2, index=0),
    )
    assert s.gup == Gup("127.0.0.4", 2967)
    assert s.domain_id == "8C0F3D2A0A0000010C2A5E4B9D4E1F00"
    assert [[m.endpoint for m in t] for t in s.tiers()] == [
        ["127.0.0.2:8014"], ["127.0.0.3:8014"]
    ]


def test_push_example() -> None:
    s = sylink.load(EXAMPLES / "sylink-push.xml")
    assert s.mode is Mode.PUSH
    assert s.heartbeat_s == 600 and s.push_heartbeat_s == 600
    assert [(m.address, m.port, m.priority, m.index) for m in s.servers] == [
        ("127.0.0.2", 8014, 1, 0),
        ("127.0.0.5", 8015, 1, 1),
        ("127.0.0.3", 8014, 2, 0),
    ]
    assert [m.name for m in s.servers] == ["Priority1[0]", "Priority1[1]", "Priority2[0]"]
    assert s.gup is None


@pytest.mark.parametrize(
    ("name", "needle", "element", "fragment"),
    [
        ("sylink-bad-port.xml", 'HttpPort="80x4"', "Server",
         'HttpPort must be an integer 1-65535, got "80x4"'),
        ("sylink-bad-priority.xml", '"Priority1"', "ServerPriorityBlock",
         "repeats priority 1"),
        ("sylink-bad-bomb.xml", '<!ENTITY lol "lol">', "!ENTITY", "billion laughs"),
        ("sylink-bad-syntax.xml", "</ServerPriorityBlock>", None, "mismatched tag"),
    ],
)
def test_bad_examples(name: str, needle: str, element: str | None, fragment: str) -> None:
    path = EXAMPLES / name
    text = path.read_text()
    # The duplicate block is the second one carrying the name.
    nth = 1 if name == "sylink-bad-priority.xml" else 0
    line = line_of(text.split("-->", 1)[1], needle, nth) + text.split("-->", 1)[0].count(
        "\n"
    )
    with pytest.raises(ConfigError) as ei:
        sylink.load(path)
    e = ei.value
    assert (e.path, e.line, e.element) == (str(path), line, element)
    assert f"{name}:{line}:" in str(e) and fragment in str(e)
    assert isinstance(e, UsageError)  # the CLI exits 2


def test_bad_port_message_exactly() -> None:
    path = EXAMPLES / "sylink-bad-port.xml"
    with pytest.raises(ConfigError) as ei:
        sylink.load(path)
    assert str(ei.value) == (
        f'{path}:9: <Server> HttpPort must be an integer 1-65535, got "80x4"'
    )


# -- decisions: priority, heartbeat, mode, defaults ------------------------------------


def doc(
    acs: str = 'CommunicationMode="PULL"',
    blocks: str = '<ServerPriorityBlock Name="Priority1"><Server Address="127.0.0.2"/>'
    "</ServerPriorityBlock>",
    extra: str = "",
    root: str = "",
) -> str:
    return (
        f'<ServerSettings{root} NameSpace="rpc">\n'
        "<CommConf>\n"
        f"<AgentCommunicationSetting {acs}/>\n"
        '<ServerList Name="L">\n'
        f"{blocks}\n"
        "</ServerList>\n"
        f"{extra}\n"
        "</CommConf>\n"
        "</ServerSettings>\n"
    )


def test_priority_from_name_not_document_order() -> None:
    blocks = (
        '<ServerPriorityBlock Name="Priority3"><Server Address="c"/></ServerPriorityBlock>'
        '<ServerPriorityBlock Name="priority1"><Server Address="a1"/><Server Address="a2"/>'
        "</ServerPriorityBlock>"
        '<ServerPriorityBlock Name="Priority2"/>'
        '<ServerPriorityBlock Name="Priority010"><Server Address="j"/>'
        "</ServerPriorityBlock>"
    )
    s = sylink.parse(doc(blocks=blocks))
    assert [(m.address, m.priority, m.index) for m in s.servers] == [
        ("a1", 1, 0), ("a2", 1, 1), ("c", 3, 0), ("j", 10, 0)
    ]
    assert [len(t) for t in s.tiers()] == [2, 1, 1]


def test_heartbeat_defaults_and_modes() -> None:
    s = sylink.parse(doc())
    assert (s.mode, s.heartbeat_s, s.push_heartbeat_s) == (
        Mode.PULL, HEARTBEAT_INTERVAL_S, HEARTBEAT_INTERVAL_S
    )
    # Pull mode never borrows the push interval.
    s = sylink.parse(doc(acs='CommunicationMode="pull" PushHeartbeatSeconds="60"'))
    assert (s.mode, s.heartbeat_s, s.push_heartbeat_s) == (Mode.PULL, 300, 60)
    s = sylink.parse(doc(acs='CommunicationMode="Push" PullHeartbeatSeconds="30"'))
    assert (s.mode, s.heartbeat_s, s.push_heartbeat_s) == (Mode.PUSH, 300, 300)
    s = sylink.parse(doc(acs='CommunicationMode="PUSH" PushHeartbeatSeconds="45"'))
    assert (s.heartbeat_s, s.push_heartbeat_s) == (45, 45)
    s = sylink.parse(doc(acs='CommunicationMode="PULL" PullHeartbeatSeconds="2147483647"'))
    assert s.heartbeat_s == MAX_HEARTBEAT_S


def test_randomization_is_read_when_enabled() -> None:
    on = 'CommunicationMode="PULL" RandomizationEnabled="1" RandomizationRange="120"'
    assert sylink.parse(doc(acs=on)).randomization_s == 120
    assert sylink.parse(doc(acs=on.replace('"1"', '"0"'))).randomization_s == 0
    assert sylink.parse(doc(acs='CommunicationMode="PULL"')).randomization_s == 0
    assert sylink.parse(doc(acs='CommunicationMode="PULL" RandomizationEnabled="1"')
                        ).randomization_s == 0
    with pytest.raises(ConfigError, match='RandomizationEnabled must be "0" or "1", '
                                          'got "yes"'):
        sylink.parse(doc(acs=on.replace('"1"', '"yes"')))
    with pytest.raises(ConfigError, match=r"RandomizationRange must be an integer of "
                                          r'seconds .*, got "-5"'):
        sylink.parse(doc(acs=on.replace('"120"', '"-5"')))
    with pytest.raises(ValueError, match="randomization_s must be"):
        Sylink.build([["127.0.0.2"]], randomization_s=-1)


def test_port_defaults_gup_and_domain() -> None:
    s = sylink.parse(doc(extra='<GupList><Gup Address="gup.example"/></GupList>',
                         root=' DomainId=""'))
    assert s.servers[0].port == MANAGER_CONTENT_PORT
    assert s.gup == Gup("gup.example", GUP_PORT)
    assert s.domain_id == ""
    assert sylink.parse(doc(extra="<GupList/>")).gup is None
    assert sylink.parse(doc()).domain_id is None


def test_unknown_elements_and_namespaces_are_ignored() -> None:
    text = doc(extra='<Certificates><Cert Data="..."/></Certificates><Foo Bar="1"/>')
    text = text.replace('NameSpace="rpc"', 'xmlns="urn:x" NameSpace="rpc" Extra="1"')
    s = sylink.parse(text)
    assert s.servers == (Server("127.0.0.2"),)


def test_bytes_and_encodings() -> None:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + doc(root=' DomainId="caf\xe9"')
    assert sylink.parse(text.encode("latin-1")).domain_id == "caf\xe9"
    assert sylink.parse(doc().encode("utf-16")).servers[0].address == "127.0.0.2"


# -- every error kind names file, line and element -------------------------------------

BLOCK = '<ServerPriorityBlock Name="Priority1">\n{}\n</ServerPriorityBlock>'

# (document, needle on the offending line, element, fragment of the message)
ERRORS: dict[str, tuple[str, str, str | None, str]] = {
    "syntax": (doc(blocks="<ServerPriorityBlock Name='Priority1'>\n<Server </x>"),
               "<Server </x>", None, "not well-formed XML"),
    "unclosed": (doc().rsplit("</ServerSettings>", 1)[0].rstrip(), "</CommConf>", None,
                 "not well-formed XML"),
    "no servers": (doc(blocks=BLOCK.format("")), "<ServerList", "ServerList",
                   "at least one management server"),
    "no blocks": (doc(blocks=""), "<ServerList", "ServerList", "has no <Server>"),
    "port not integer": (doc(blocks=BLOCK.format('<Server Address="a" HttpPort="80x4"/>')),
                         "80x4", "Server", 'got "80x4"'),
    "port 0": (doc(blocks=BLOCK.format('<Server Address="a" HttpPort="0"/>')),
               'HttpPort="0"', "Server", "1-65535"),
    "port too big": (doc(blocks=BLOCK.format('<Server Address="a" HttpPort="65536"/>')),
                     "65536", "Server", "1-65535"),
    "port spaces": (doc(blocks=BLOCK.format('<Server Address="a" HttpPort=" 8014"/>')),
                    "8014", "Server", "1-65535"),
    "priority name": (doc(blocks='<ServerPriorityBlock Name="Backup">\n'
                          '<Server Address="a"/></ServerPriorityBlock>'),
                      "Backup", "ServerPriorityBlock", '"Priority<N>"'),
    "priority zero": (doc(blocks='<ServerPriorityBlock Name="Priority0">\n'
                          '<Server Address="a"/></ServerPriorityBlock>'),
                      "Priority0", "ServerPriorityBlock", "positive integer"),
    "priority missing": (doc(blocks='<ServerPriorityBlock>\n'
                             '<Server Address="a"/></ServerPriorityBlock>'),
                         "<ServerPriorityBlock>", "ServerPriorityBlock",
                         "missing required attribute Name"),
    "priority duplicate zeros": (
        doc(blocks=BLOCK.format('<Server Address="a"/>') + "\n"
            + '<ServerPriorityBlock Name="Priority001"><Server Address="b"/>'
            "</ServerPriorityBlock>"),
        "Priority001", "ServerPriorityBlock", "repeats priority 1"),
    "priority duplicate": (doc(blocks=BLOCK.format('<Server Address="a"/>') + "\n"
                               + '<ServerPriorityBlock Name="PRIORITY1">'
                               '<Server Address="b"/></ServerPriorityBlock>'),
                           "PRIORITY1", "ServerPriorityBlock", "repeats priority 1"),
    "address missing": (doc(blocks=BLOCK.format('<Server HttpPort="8014"/>')),
                        'HttpPort="8014"', "Server", "missing required attribute Address"),
    "address bad": (doc(blocks=BLOCK.format('<Server Address="a b"/>')),
                    '"a b"', "Server", "IPv4 address, IPv6 literal or host name"),
    "address empty label": (doc(blocks=BLOCK.format('<Server Address="a..b"/>')),
                            '"a..b"', "Server", 'got "a..b": it has an empty label'),
    "gup address bad": (doc(extra='<GupList>\n<Gup Address=".."/>\n</GupList>'),
                        '".."', "Gup", 'got "..": it has an empty label'),
    "mode missing": (doc(acs='PullHeartbeatSeconds="300"'), "<AgentCommunicationSetting",
                     "AgentCommunicationSetting",
                     "missing required attribute CommunicationMode"),
    "mode unknown": (doc(acs='CommunicationMode="POLL"'), "POLL",
                     "AgentCommunicationSetting", 'PUSH or PULL, got "POLL"'),
    "heartbeat zero": (doc(acs='CommunicationMode="PULL" PullHeartbeatSeconds="0"'),
                       "PullHeartbeatSeconds", "AgentCommunicationSetting",
                       'positive integer of seconds (1-2147483647), got "0"'),
    "heartbeat negative": (doc(acs='CommunicationMode="PULL" PushHeartbeatSeconds="-5"'),
                           "PushHeartbeatSeconds", "AgentCommunicationSetting", '"-5"'),
    "heartbeat fraction": (doc(acs='CommunicationMode="PUSH" PushHeartbeatSeconds="1.5"'),
                           "PushHeartbeatSeconds", "AgentCommunicationSetting", '"1.5"'),
    "heartbeat huge": (doc(acs='CommunicationMode="PULL" '
                               'PullHeartbeatSeconds="2147483648"'),
                       "PullHeartbeatSeconds", "AgentCommunicationSetting", "2147483648"),
    "heartbeat empty": (doc(acs='CommunicationMode="PULL" PullHeartbeatSeconds=""'),
                        "PullHeartbeatSeconds", "AgentCommunicationSetting", 'got ""'),
    "wrong root": ("<Settings>\n<CommConf/>\n</Settings>", "<Settings>", "Settings",
                   "root element must be <ServerSettings>"),
    "no commconf": ('\n<ServerSettings NameSpace="rpc"/>', "<ServerSettings",
                    "ServerSettings", "must contain a <CommConf>"),
    "no acs": (doc().replace('<AgentCommunicationSetting CommunicationMode="PULL"/>', ""),
               "<CommConf>", "CommConf", "must contain a <AgentCommunicationSetting>"),
    "no server list": ('<ServerSettings>\n<CommConf>\n'
                       '<AgentCommunicationSetting CommunicationMode="PULL"/>\n'
                       "</CommConf>\n</ServerSettings>",
                       "<CommConf>", "CommConf", "must contain a <ServerList>"),
    "two server lists": (doc(extra='<ServerList Name="Other"/>'), 'Name="Other"',
                         "ServerList", "only one <ServerList>"),
    "gup port": (doc(extra='<GupList>\n<Gup Address="g" Port="70000"/>\n</GupList>'),
                 "70000", "Gup", 'Port must be an integer 1-65535, got "70000"'),
    "gup address": (doc(extra='<GupList>\n<Gup Port="2967"/>\n</GupList>'), "<Gup Port",
                    "Gup", "missing required attribute Address"),
    "two gups": (doc(extra='<GupList>\n<Gup Address="g"/>\n<Gup Address="h"/>\n'
                     "</GupList>"),
                 '"h"', "Gup", "only one <Gup>"),
    "dtd": ('<?xml version="1.0"?>\n<!DOCTYPE ServerSettings SYSTEM "sylink.dtd">\n'
            + doc(), "<!DOCTYPE", "!DOCTYPE", "document type declaration is not allowed"),
    "bomb": ('<!DOCTYPE S [\n<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;&a;">\n]>\n'
             "<S>&b;</S>", "<!ENTITY a", "!ENTITY", "billion laughs"),
    "parameter entity": ('<!DOCTYPE S [\n<!ENTITY % p "x">\n]>\n<S/>', "<!ENTITY %",
                         "!ENTITY", "entity declaration"),
    "external entity": ('<!DOCTYPE S [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
                        "<S>&xxe;</S>", "xxe", "!ENTITY",
                        'external entity "xxe" (system id "file:///etc/passwd") is '
                        "forbidden"),
    "external url": ('<!DOCTYPE S [\n\n<!ENTITY x PUBLIC "-//X" "http://example/x">\n]>\n'
                     "<S>&x;</S>", "<!ENTITY x", "!ENTITY", "would make the parser read"),
    "undefined entity": (doc(root=' DomainId="&foo;"'), "&foo;", None, "undefined entity"),
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_error_kinds(kind: str, tmp_path: Path) -> None:
    text, needle, element, fragment = ERRORS[kind]
    line = line_of(text, needle)
    path = tmp_path / "sylink.xml"
    path.write_text(text)
    with pytest.raises(ConfigError) as ei:
        sylink.load(path)
    e = ei.value
    msg = str(e)
    assert (e.line, e.element) == (line, element), msg
    assert msg.startswith(f"{path}:{line}:"), msg
    if element:
        assert f"<{element}>" in msg
    assert fragment in msg
    assert "\n" not in msg  # one line for the CLI
    # Same verdict from parse() with a name of our choosing.
    with pytest.raises(ConfigError, match=f"^sylink.xml:{line}:"):
        sylink.parse(text.encode(), "sylink.xml")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.xml: cannot read: No such file"):
        sylink.load(tmp_path / "missing.xml")
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        sylink.load(tmp_path)
    if os.geteuid() != 0:  # root reads anything
        p = tmp_path / "locked.xml"
        p.write_text(doc())
        p.chmod(0)
        with pytest.raises(ConfigError, match="cannot read: Permission denied"):
            sylink.load(p)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until someone writes: `--sylink` on one used
    to hang for ever. The load runs in a thread so that a regression fails here (the
    FIFO is then fed to release it) instead of hanging the run."""
    import threading

    fifo = tmp_path / "sylink.xml"
    os.mkfifo(fifo)
    got: list[BaseException | Sylink] = []

    def load() -> None:
        try:
            got.append(sylink.load(fifo))
        except BaseException as e:  # handed to the test thread below
            got.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(timeout=30)  # a hang guard, not a timing assertion
    if t.is_alive():
        with open(fifo, "w") as w:  # release the blocked reader
            w.write(doc())
        t.join()
        pytest.fail("sylink.load blocked on a FIFO")
    [e] = got
    assert isinstance(e, ConfigError), e
    assert str(e) == (f"{fifo}: cannot read: not a regular file (a FIFO); sylink.xml "
                      "must be a file")


def test_empty_and_too_large() -> None:
    with pytest.raises(ConfigError, match=r"^x:1: not well-formed XML: no element found"):
        sylink.parse(b"", "x")
    big = b"<a>" + b" " * sylink.MAX_BYTES + b"</a>"
    with pytest.raises(ConfigError, match="too large"):
        sylink.parse(big)


def test_bomb_is_refused_before_expansion() -> None:
    # 10**9 expansions if anything expanded; the test would not finish.
    text = (EXAMPLES / "sylink-bad-bomb.xml").read_bytes()
    with pytest.raises(ConfigError, match='entity declaration "lol" is forbidden'):
        sylink.parse(text)


# -- addresses, as the resolver will take them -------------------------------------------

# Each of these used to load, and the client then died with a UnicodeError traceback
# the first time it connected there (socket.getaddrinfo's IDNA encoding).
BAD_ADDRESSES = [
    ("a..b", "it has an empty label"),
    ("..", "it has an empty label"),
    (".a", "it has an empty label"),
    ("x" * 64, "is 64 characters long once encoded; at most 63"),
    (".".join(["x" * 63] * 4), "255 characters long once encoded; at most 253"),
    ("a" * 5000, "5,000 characters long; a host name has at most 253"),
    ("-a.example", "may not start or end with '-'"),
    ("a b", "may hold only letters, digits"),
    ("\u00ad.example", "cannot be IDNA-encoded"),  # nameprep maps U+00AD to nothing
    ("a\u3002\u3002b", "it has an empty label"),  # ideographic full stops are dots too
    ("127.1", "must be an IPv4 address"),  # the resolver would read 127.0.0.1
    ("256.0.0.1", "must be an IPv4 address"),
    ("127.000.0.1", "must be an IPv4 address"),  # leading zeros: octal to inet_aton
    ("8014", "must be an IPv4 address"),
    ("[::1]", "without brackets"),
    ("1:2", "not an IPv6 address"),
    ("fe80::1%", "zone after '%'"),
    ("fe80::1%a.b", "zone after '%'"),
]
GOOD_ADDRESSES = ["127.0.0.2", "::1", "fe80::1%eth0", "::ffff:127.0.0.2", "sepm",
                  "sepm.example.", "sepm_01.corp", "b\u00fccher.example",
                  "x" * 63 + ".example", ".".join(["x" * 63] * 3 + ["x" * 61])]


@pytest.mark.parametrize(("address", "why"), BAD_ADDRESSES)
def test_addresses_the_resolver_cannot_take_are_refused(address: str, why: str) -> None:
    for text, element in [
        (doc(blocks=BLOCK.format(f"<Server Address={quoteattr(address)}/>")), "Server"),
        (doc(extra=f"<GupList>\n<Gup Address={quoteattr(address)}/>\n</GupList>"), "Gup"),
    ]:
        with pytest.raises(ConfigError) as ei:
            sylink.parse(text, "sylink.xml")
        e = ei.value
        assert (e.line, e.element) == (line_of(text, f"<{element} "), element)
        assert "Address must be an IPv4 address, IPv6 literal or host name" in str(e)
        assert why in str(e)
        assert len(str(e).splitlines()) == 1 and len(str(e)) < 400
    with pytest.raises(ValueError, match="IPv4 address, IPv6 literal or host name"):
        Server(address)
    with pytest.raises(ValueError, match="IPv4 address, IPv6 literal or host name"):
        Gup(address)


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_addresses_the_resolver_takes_are_read(address: str) -> None:
    import socket

    s = sylink.parse(doc(blocks=BLOCK.format(f"<Server Address={quoteattr(address)}/>")))
    assert s.servers[0].address == address
    # What asyncio.open_connection does first; AI_NUMERICHOST keeps it off the
    # network: a name is then "not found" (an OSError), never a UnicodeError.
    try:
        socket.getaddrinfo(address, 8014, type=socket.SOCK_STREAM,
                           flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        assert not address[0].isdigit() or ":" in address


def test_values_in_messages_are_quoted_and_cut() -> None:
    """A newline in an attribute used to split the message in two; a 1 MB attribute
    made a 1 MB line."""
    with pytest.raises(ConfigError) as ei:
        sylink.parse(doc(blocks=BLOCK.format('<Server Address="a&#10;b"/>')), "s.xml")
    assert str(ei.value).splitlines() == [str(ei.value)]
    assert 'got "a\\nb"' in str(ei.value)
    huge = "9" * 1_000_000
    with pytest.raises(ConfigError) as ei:
        sylink.parse(doc(blocks=BLOCK.format(f'<Server Address="a" HttpPort="{huge}"/>')))
    msg = str(ei.value)
    assert len(msg) < 300
    assert f'got "{"9" * sylink.SHOWN_CHARS}"... (1,000,000 characters)' in msg
    # Quotes and backslashes stay readable and unambiguous inside the double quotes.
    with pytest.raises(ConfigError, match=r'got "P\\"\'\\\\x"'):
        sylink.parse(doc(blocks='<ServerPriorityBlock Name="P&quot;\'\\x">'
                          '<Server Address="a"/></ServerPriorityBlock>'))
    # A long element name is cut too.
    tag = "R" * 10_000
    with pytest.raises(ConfigError) as ei:
        sylink.parse(f"<{tag}/>")
    assert len(str(ei.value)) < 300 and ei.value.element == "R" * sylink.SHOWN_CHARS + "..."


# -- the value's own checks ------------------------------------------------------------


def test_inconsistent_values_are_refused() -> None:
    a, b = Server("a"), Server("b", priority=2)
    with pytest.raises(ValueError, match="at least one server"):
        Sylink(Mode.PULL, 300, 300, ())
    with pytest.raises(ValueError, match="in push mode"):
        Sylink(Mode.PUSH, 300, 60, (a,))
    with pytest.raises(ValueError, match="ordered"):
        Sylink(Mode.PULL, 300, 300, (b, a))
    with pytest.raises(ValueError, match="indexes"):
        Sylink(Mode.PULL, 300, 300, (Server("a", index=1),))
    with pytest.raises(ValueError, match="heartbeat_s"):
        Sylink(Mode.PULL, 0, 300, (a,))
    with pytest.raises(ValueError, match="XML cannot carry"):
        Sylink(Mode.PULL, 300, 300, (a,), domain_id="\x00")
    with pytest.raises(ValueError, match="port"):
        Server("a", 0)
    with pytest.raises(ValueError, match="address"):
        Gup("")


def test_build() -> None:
    s = Sylink.build([["127.0.0.2", ("127.0.0.5", 8015)], ["::1"]], gup="127.0.0.4")
    assert [m.endpoint for m in s.servers] == ["127.0.0.2:8014", "127.0.0.5:8015",
                                               "[::1]:8014"]
    assert s.gup == Gup("127.0.0.4", 2967)
    p = Sylink.build([["a"]], mode=Mode.PUSH, heartbeat_s=10, push_heartbeat_s=20)
    assert (p.heartbeat_s, p.push_heartbeat_s) == (20, 20)


def test_save_writes_atomically(tmp_path: Path) -> None:
    s = Sylink.build([["127.0.0.2"], ["127.0.0.3"]], domain_id="d")
    path = tmp_path / "sylink.xml"
    sylink.save(s, path)
    sylink.save(s, path)  # over an existing file
    assert sylink.load(path) == s
    assert os.listdir(tmp_path) == ["sylink.xml"]


# -- round trip ------------------------------------------------------------------------

# Host names: labels of letters, digits, '-' and '_' (no '-' at either end), the
# last one not a number (that would have to be an IPv4 address).
_label = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_\-]{0,20}[A-Za-z0-9_])?", fullmatch=True)
addresses = st.one_of(
    st.ip_addresses().map(str),
    st.lists(_label, min_size=1, max_size=4).map(".".join)
    .filter(lambda name: not name.rsplit(".", 1)[-1].isdigit()),
)
xml_text = st.text(
    st.one_of(
        st.sampled_from("\t\n\r &<>\"'"),
        st.characters(min_codepoint=0x20, max_codepoint=0xD7FF),
        st.characters(min_codepoint=0xE000, max_codepoint=0xFFFD),
        st.characters(min_codepoint=0x10000),
    ),
    max_size=20,
)


@st.composite
def sylinks(draw: st.DrawFn) -> Sylink:
    blocks = draw(st.lists(st.lists(st.tuples(addresses, st.integers(1, 65535)),
                                    min_size=1, max_size=3), min_size=1, max_size=4))
    prios = sorted(draw(st.lists(st.integers(1, 999_999_999), min_size=len(blocks),
                                 max_size=len(blocks), unique=True)))
    servers = tuple(Server(a, p, prio, i) for prio, block in zip(prios, blocks, strict=True)
                    for i, (a, p) in enumerate(block))
    mode = draw(st.sampled_from(Mode))
    push = draw(st.integers(1, MAX_HEARTBEAT_S))
    pull = push if mode is Mode.PUSH else draw(st.integers(1, MAX_HEARTBEAT_S))
    gup = draw(st.none() | st.builds(Gup, addresses, st.integers(1, 65535)))
    return Sylink(mode, pull, push, servers, draw(st.none() | xml_text), gup,
                  draw(st.integers(0, MAX_HEARTBEAT_S)))


@given(sylinks())
def test_round_trip(s: Sylink) -> None:
    text = sylink.to_xml(s)
    assert sylink.parse(text) == s
    assert sylink.parse(text.encode("utf-8")) == s
    assert sylink.to_xml(sylink.parse(text)) == text


# -- fuzzing: ConfigError and nothing else ---------------------------------------------


def parse_or_config_error(data: str | bytes) -> None:
    try:
        s = sylink.parse(data, "fuzz.xml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.xml")
    else:
        assert isinstance(s, Sylink)
        assert sylink.parse(sylink.to_xml(s)) == s


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    parse_or_config_error(data)


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_fuzz_random_text(data: str) -> None:
    parse_or_config_error(data)


SEEDS = [p.read_bytes() for p in sorted(EXAMPLES.glob("sylink-*.xml"))]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_valid_xml(data: st.DataObject) -> None:
    buf = bytearray(data.draw(st.sampled_from(SEEDS)))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        at = data.draw(st.integers(0, len(buf)))
        n = data.draw(st.integers(0, 40))
        if op == "delete":
            del buf[at:at + n]
        elif op == "insert":
            buf[at:at] = data.draw(st.binary(max_size=8) | st.sampled_from(
                [b"<", b">", b"&", b'"', b"&lol9;", b"<!DOCTYPE x>", b"\x00", b"\xff"]))
        elif op == "replace":
            buf[at:at + 1] = data.draw(st.binary(min_size=1, max_size=1))
        else:
            buf[at:at] = buf[at:at + n]
    parse_or_config_error(bytes(buf))


# Structurally valid XML from sylink's own grammar, each part mostly right and
# sometimes missing, repeated, out of place or out of range: reaches the meaning layer
# with every combination of faults (and loads cleanly often enough to check that too).
CHILDREN = {
    "ServerSettings": ["CommConf"],
    "CommConf": ["AgentCommunicationSetting", "ServerList", "GupList"],
    "ServerList": ["ServerPriorityBlock"],
    "ServerPriorityBlock": ["Server"],
    "GupList": ["Gup"],
}
REPEATED = {"ServerPriorityBlock", "Server"}
GOOD = {
    "DomainId": ["d", ""],
    "CommunicationMode": ["PUSH", "pull"],
    "PullHeartbeatSeconds": ["300", "1"],
    "PushHeartbeatSeconds": ["600", "2147483647"],
    "Name": ["Priority1", "Priority2", "priority3"],
    "Address": ["127.0.0.2", "::1", "sepm.example"],
    "HttpPort": ["8014", "65535"],
    "Port": ["2967", "1"],
}
ATTRS = {
    "ServerSettings": ["DomainId"],
    "AgentCommunicationSetting": ["CommunicationMode", "PullHeartbeatSeconds",
                                  "PushHeartbeatSeconds"],
    "ServerPriorityBlock": ["Name"],
    "Server": ["Address", "HttpPort"],
    "Gup": ["Address", "Port"],
}
BAD = ["", "0", "-1", "1.5", "65536", "99999999999", "POLL", "Backup", "Priority0",
       "a b", "x"]


def element(draw: st.DrawFn, tag: str, depth: int = 0) -> str:
    attrs = []
    for a in ATTRS.get(tag, []):
        roll = draw(st.integers(0, 19))
        if roll == 0:
            continue  # missing
        pool = BAD if roll == 1 else GOOD[a]
        attrs.append(f" {a}={quoteattr(draw(st.sampled_from(pool)))}")
    kids: list[str] = []
    for child in CHILDREN.get(tag, []):
        n = draw(st.integers(0, 3) if child in REPEATED else
                 st.sampled_from([1, 1, 1, 1, 1, 1, 1, 0, 2]))
        kids += [child] * n
    if depth < 6 and draw(st.integers(0, 9)) == 0:  # something out of place
        kids.insert(draw(st.integers(0, len(kids))), draw(st.sampled_from(sorted(ATTRS))))
    inner = "".join(element(draw, k, depth + 1) for k in kids)
    return f"<{tag}{''.join(attrs)}>\n{inner}</{tag}>\n"


@st.composite
def grammar_docs(draw: st.DrawFn) -> str:
    return element(draw, "ServerSettings")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(grammar_docs())
def test_fuzz_grammar(text: str) -> None:
    parse_or_config_error(text)
