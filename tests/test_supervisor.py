"""whistle_tasks.ops.supervisor and ``whistle up``: real processes, real signals, real services.

The library tests supervise small Python processes (a sleeper, a crasher, one that ignores
SIGTERM, one with a child of its own); the CLI tests run ``whistle up`` as a subprocess,
once with such processes, once with a real registrar worker + beat + Flower against the
test vhost that conftest.py set, and once with Redis pointed at a closed port.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support import OUTPUT, ROOT, VENV_BIN, wait_until
from whistle_tasks.core import config
from whistle_tasks.ops.supervisor import (
    Output,
    ProcessSpec,
    SpecError,
    Supervisor,
    describe_exit,
    parse_counts,
    platform_specs,
    secrets_of,
)

PY = sys.executable
SLEEPER = (PY, "-c", "import time; print('sleeping', flush=True); time.sleep(1000)")
STUBBORN = (PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                      "print('ignoring SIGTERM', flush=True); time.sleep(1000)")
# a shell whose own child (sleep) is in the same process group
PARENT = ("/bin/sh", "-c", "sleep 1000 & echo child $!; wait")
WHISTLE = str(VENV_BIN / "whistle")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A Supervisor whose run_forever() runs in a thread; output captured in memory."""

    def __init__(self, specs: list[ProcessSpec], **kwargs: float) -> None:
        self.buffer = io.StringIO()
        self.sup = Supervisor(specs, output=Output(self.buffer, color=False), **kwargs)
        self.rc: list[int] = []
        self.thread = threading.Thread(target=lambda: self.rc.append(self.sup.run_forever()),
                                       daemon=True)
        self.thread.start()

    def text(self) -> str:
        return self.buffer.getvalue()

    def status(self, name: str):  # noqa: ANN201
        return next(s for s in self.sup.status() if s.name == name)

    def running(self, *names: str) -> bool:
        return all(self.status(n).state == "running" for n in names)

    def close(self) -> None:
        self.sup.stop()
        self.thread.join(30)


@pytest.fixture()
def running():
    started: list[Running] = []

    def make(specs: list[ProcessSpec], **kwargs: float) -> Running:
        r = Running(specs, **kwargs)
        started.append(r)
        return r

    yield make
    for r in started:
        r.close()


# --- the process set -------------------------------------------------------------------


def test_platform_specs_one_worker_per_whapp_with_its_pool():
    cfg = config.load({"WHISTLE_WORKER_POOLS": "registrar=threads:8,router=gevent:200",
                       "WHISTLE_FLOWER_ADDRESS": "127.0.0.1:5566"})
    specs = {s.name: s for s in platform_specs(cfg, run_dir="/srv/w/run", python="/v/bin/python")}
    assert list(specs) == ["bridge", "media", "registrar-1", "router-1", "callflow-1",
                           "maintenance-1", "cdr-1", "notify-1", "beat", "flower", "api"]
    assert specs["api"].argv[1:5] == ("-m", "gunicorn", "--worker-class", "gevent")
    assert specs["api"].address == "http://127.0.0.1:8000"
    assert specs["registrar-1"].argv == (
        "/v/bin/python", "-m", "celery", "-A", "whistle_tasks", "worker", "-Q", "registrar",
        "-P", "threads", "-c", "8", "-n", "registrar-1@%h", "--without-mingle",
        "--without-gossip", "-l", "INFO")
    assert specs["router-1"].argv[7:12] == ("router", "-P", "gevent", "-c", "200")
    assert specs["bridge"].argv == ("/v/bin/whistle", "bridge")
    assert specs["bridge"].address == "http://127.0.0.1:8090"
    assert specs["beat"].argv[5:8] == ("beat", "-s", "/srv/w/run/celerybeat-schedule")
    assert specs["flower"].argv[5:] == ("flower", "--address=127.0.0.1", "--port=5566")
    assert specs["flower"].address == "http://127.0.0.1:5566"
    assert specs["media"].argv[:6] == ("/v/bin/python", "-m", "gunicorn", "--bind",
                                       "127.0.0.1:8095", "--workers")
    assert specs["media"].argv[-1] == "whistle_tasks.web.wsgi:media"
    assert specs["media"].address == "http://127.0.0.1:8095"


def test_platform_specs_workers_per_queue_only_and_switches():
    cfg = config.load({"WHISTLE_WORKERS_PER_QUEUE": "registrar=2,router=3"})
    names = [s.name for s in platform_specs(cfg, only=["router", "registrar"],
                                            workers={"router": 1},
                                            bridge=False, media=False, flower=False,
                                            api=False)]
    assert names == ["registrar-1", "registrar-2", "router-1", "beat"]
    names = [s.name for s in platform_specs(cfg, only=[], beat=False, flower=False,
                                            api=False)]
    assert names == ["bridge", "media"]
    assert [s.name for s in platform_specs(cfg, workers={"callflow": 0}, bridge=False,
                                           media=False, beat=False, flower=False,
                                           api=False)] == [
        "registrar-1", "registrar-2", "router-1", "router-2", "router-3", "maintenance-1",
        "cdr-1", "notify-1"]


@pytest.mark.parametrize(("env", "kwargs", "message"), [
    ({}, {"only": ["registrar", "nope"]}, "--only: unknown whapp nope"),
    ({}, {"workers": {"nope": 2}}, "--workers: unknown whapp nope"),
    ({"WHISTLE_WORKER_POOLS": "registrar=fibers:8"}, {}, "unknown pool 'fibers' for registrar"),
    ({"WHISTLE_WORKER_POOLS": "registrar=threads:x"}, {}, "WHISTLE_WORKER_POOLS: cannot read"),
    ({"WHISTLE_WORKERS_PER_QUEUE": "router=many"}, {}, "WHISTLE_WORKERS_PER_QUEUE: cannot"),
    ({"WHISTLE_FLOWER_ADDRESS": "localhost"}, {}, "WHISTLE_FLOWER_ADDRESS: 'localhost' is not"),
])
def test_platform_specs_bad_input_is_a_precise_error(env, kwargs, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        platform_specs(config.load(env), **kwargs)


def test_parse_counts():
    assert parse_counts("registrar=2, router=0,") == {"registrar": 2, "router": 0}
    for bad, why in (("registrar", "not NAME=COUNT"), ("registrar=x", "whole number"),
                     ("registrar=-1", "0 or more")):
        with pytest.raises(SpecError, match=why):
            parse_counts(bad)


def test_process_spec_rejects_bad_names_and_duplicates():
    with pytest.raises(SpecError):
        ProcessSpec("two words", ("true",))
    with pytest.raises(SpecError):
        ProcessSpec("empty", ())
    with pytest.raises(SpecError, match="duplicate process names: a"):
        Supervisor([ProcessSpec("a", ("true",)), ProcessSpec("a", ("false",))])


def test_secrets_are_masked_in_child_output():
    cfg = config.load({"WHISTLE_AMQP_URL": "amqp://whistle:s3cr%40t@mq:5672/v",
                       "WHISTLE_REDIS_URL": "redis://:redispass@r:6379/0",
                       "WHISTLE_FS_NODES": "fs1:8021:EslPass1,fs2:8021:EslPass2",
                       "WHISTLE_HTTP_AUTH": "fs:httppass"})
    assert set(secrets_of(cfg)) >= {"s3cr%40t", "s3cr@t", "redispass", "EslPass1", "EslPass2",
                                    "httppass"}
    # guest:guest is a well-known default: masking "guest" would mask the user name
    assert secrets_of(config.load({})) == ["ClueCon"]
    buf = io.StringIO()
    out = Output(buf, names=["bridge"], secrets=secrets_of(cfg), color=False)
    out.line("bridge", "auth EslPass2 sent to fs2; redis at redis://:redispass@r:6379/0")
    out.line("bridge", "connected to amqp://whistle:s3cr@t@mq")
    text = buf.getvalue()
    for secret in ("EslPass2", "redispass", "s3cr@t"):
        assert secret not in text
    assert re.match(r"^\d\d:\d\d:\d\d bridge  \| auth \*\*\*\* sent to fs2", text)


def test_describe_exit():
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(None) == "could not start"


# --- the supervisor with real (small) processes ----------------------------------------


def test_start_status_restart_and_stop(running):
    r = running([ProcessSpec("one", SLEEPER), ProcessSpec("two", SLEEPER)],
                backoff_initial=0.3)
    wait_until(lambda: r.running("one", "two"), 10, what="both running")
    wait_until(lambda: r.text().count("| sleeping") == 2, 10, what="both printed")
    first = r.status("one").pid
    other = r.status("two").pid
    assert re.search(r"^\d\d:\d\d:\d\d one     \| sleeping$", r.text(), re.M)

    t0 = time.monotonic()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: r.status("one").pid not in (None, first), 5, what="a new pid")
    restarted_after = time.monotonic() - t0
    st = r.status("one")
    assert st.state == "running" and st.restarts == 1
    assert st.last_exit == "killed by SIGKILL"
    assert 0.25 <= restarted_after < 3.0
    assert f"one (pid {first}) ended (killed by SIGKILL)" in r.text()
    assert f"one restarted: pid {st.pid}" in r.text()
    assert r.status("two").pid == other  # the others are left alone

    pids = [st.pid, other]
    r.sup.stop()
    r.thread.join(10)
    assert r.rc == [0]
    assert not any(alive(p) for p in pids)
    assert all(s.state == "stopped" for s in r.sup.status())
    assert "all stopped" in r.text()


def test_backoff_doubles_and_is_capped(running):
    r = running([ProcessSpec("crash", (PY, "-c", "import sys; sys.exit(3)")),
                 ProcessSpec("missing", ("/nonexistent/whistle-bridge",))],
                backoff_initial=0.1, backoff_max=0.4)
    wait_until(lambda: r.status("crash").restarts >= 5 and r.status("missing").restarts >= 5,
               15, what="five restarts each")
    delays = re.findall(r"crash \(pid \d+\) ended \(exit code 3\) after [\d.]+ s; "
                        r"restart #\d+ in ([\d.]+) s", r.text())
    assert [float(d) for d in delays[:5]] == [0.1, 0.2, 0.4, 0.4, 0.4]
    retries = re.findall(r"missing could not start \(FileNotFoundError: .*\); retry #\d+ "
                         r"in ([\d.]+) s", r.text())
    assert [float(d) for d in retries[:4]] == [0.1, 0.2, 0.4, 0.4]
    assert r.status("missing").last_exit == "could not start"
    assert r.status("crash").state in ("backoff", "running")


def test_backoff_resets_after_a_stable_run(running):
    # runs 0.5 s, which counts as stable here: every restart waits the initial delay again
    r = running([ProcessSpec("short", (PY, "-c", "import time; time.sleep(0.5)"))],
                backoff_initial=0.1, stable_after=0.4)
    wait_until(lambda: r.status("short").restarts >= 3, 10, what="three restarts")
    delays = re.findall(r"restart #\d+ in ([\d.]+) s", r.text())
    assert delays[:3] == ["0.1", "0.1", "0.1"]


def test_stop_kills_what_ignores_sigterm_and_the_whole_group(running):
    r = running([ProcessSpec("stubborn", STUBBORN), ProcessSpec("parent", PARENT)],
                stop_timeout=1.0)
    wait_until(lambda: "ignoring SIGTERM" in r.text() and "| child " in r.text(), 10,
               what="both started")
    grandchild = int(re.search(r"\| child (\d+)", r.text()).group(1))
    pids = [r.status("stubborn").pid, r.status("parent").pid, grandchild]
    assert all(alive(p) for p in pids)
    t0 = time.monotonic()
    r.sup.stop()
    took = time.monotonic() - t0
    assert 0.9 <= took < 5
    r.thread.join(10)
    wait_until(lambda: not any(alive(p) for p in pids), 5, what="every process gone")
    assert f"stubborn (pid {pids[0]}) still running: SIGKILL" in r.text()


def test_start_and_stop_without_the_loop():
    buf = io.StringIO()
    sup = Supervisor([ProcessSpec("a", SLEEPER)], output=Output(buf, color=False))
    sup.start()
    wait_until(lambda: sup.status()[0].state == "running", 5, what="running")
    pid = sup.status()[0].pid
    sup.stop()
    sup.stop()  # idempotent
    assert not alive(pid)
    assert buf.getvalue().count("all stopped") == 1


# --- whistle up as a subprocess -------------------------------------------------------


class Up:
    """``whistle up ARGS`` with its output in test-output/<name>.log."""

    def __init__(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        OUTPUT.mkdir(exist_ok=True)
        self.path = OUTPUT / f"{name}.log"
        self._log = open(self.path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([WHISTLE, "up", *args], cwd=ROOT,
                                     env={**os.environ, "NO_COLOR": "1", **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        return self.path.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """name -> pid, from the latest table and restart lines."""
        found = {m.group(1): int(m.group(2)) for m in
                 re.finditer(r"^\S+ whistle\s+\| (\S+)\s+(\d+)\s+up ", self.text(), re.M)}
        for m in re.finditer(r"\| (\S+) restarted: pid (\d+)$", self.text(), re.M):
            found[m.group(1)] = int(m.group(2))
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # children get PDEATHSIG
            self.proc.wait(10)
        self._log.close()


@pytest.fixture()
def up():
    started: list[Up] = []

    def make(name: str, *args: str, env: dict[str, str] | None = None) -> Up:
        u = Up(name, *args, env=env)
        started.append(u)
        return u

    yield make
    for u in started:
        u.close()


def _sleeper_arg(name: str) -> str:
    return f"{name}={PY} -c \"import time; print('sleeping', flush=True); time.sleep(1000)\""


def test_whistle_up_restarts_and_stops_on_sigterm(up):
    u = up("supervisor-up-fake", "--no-check", "--no-workers", "--no-bridge", "--no-media",
           "--no-beat", "--no-flower", "--no-api", "--process", _sleeper_arg("a"), "--process",
           _sleeper_arg("b"))
    wait_until(lambda: len(u.pids()) == 2 and u.text().count("| sleeping") == 2, 20,
               what="both sleepers up")
    first = u.pids()
    os.kill(first["a"], signal.SIGKILL)
    wait_until(lambda: u.pids()["a"] != first["a"], 5, what="a restarted")
    assert re.search(rf"a \(pid {first['a']}\) ended \(killed by SIGKILL\) after [\d.]+ s; "
                     r"restart #1 in 1.0 s", u.text())
    now = u.pids()
    assert alive(now["a"]) and now["b"] == first["b"]

    os.kill(u.proc.pid, signal.SIGTERM)
    assert u.proc.wait(15) == 0
    assert not any(alive(p) for p in now.values())
    assert "SIGTERM: stopping" in u.text() and "all stopped" in u.text()


def test_whistle_up_ctrl_c_stops_everything(up):
    u = up("supervisor-up-sigint", "--no-check", "--no-workers", "--no-bridge", "--no-media",
           "--no-beat", "--no-flower", "--no-api", "--process", _sleeper_arg("a"))
    wait_until(lambda: "| sleeping" in u.text(), 20, what="sleeper up")
    pid = u.pids()["a"]
    os.kill(u.proc.pid, signal.SIGINT)
    assert u.proc.wait(15) == 0
    assert not alive(pid)
    assert "SIGINT: stopping" in u.text()


@pytest.mark.slow
def test_whistle_up_runs_a_registrar_worker_beat_flower_and_media(up, clean_services,
                                                                  tmp_path: Path):
    port, media_port = free_port(), free_port()
    u = up("supervisor-up-platform", "--only", "registrar", "--no-bridge", "--no-api",
           "--run-dir", str(tmp_path / "run"), "--stop-timeout", "20",
           env={"WHISTLE_FLOWER_ADDRESS": f"127.0.0.1:{port}",
                "WHISTLE_MEDIA_LISTEN": f"127.0.0.1:{media_port}"})
    wait_until(lambda: set(u.pids()) == {"media", "registrar-1", "beat", "flower"}
               or u.proc.poll() is not None, 30, what="the table")
    assert u.proc.poll() is None, u.text()[-3000:]
    pids = u.pids()
    assert re.search(rf"\| flower\s+{pids['flower']}\s+up .*http://127.0.0.1:{port}\s+celery "
                     "flower", u.text())
    wait_until(lambda: re.search(r"^\S+ registrar-1 \| .*registrar-1@\S+ ready\.", u.text(),
                                 re.M), 60, what="the registrar worker to be ready")
    wait_until(lambda: re.search(r"^\S+ beat\s+\| .*beat: Starting", u.text(), re.M), 30,
               what="beat to start")

    def flower_answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(flower_answers, 30, interval=0.3, what="Flower to answer HTTP")

    def media_answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{media_port}/health", timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(media_answers, 30, interval=0.3, what="the media service to answer HTTP")
    # Flower sees the worker, and the tasks it ran by their whapp-qualified names
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: "registrar-1@" in requests.get(f"{base}/workers", timeout=10).text, 30,
               interval=1, what="Flower to list the registrar worker")
    from whistle_tasks.celery import app

    app.send_task("registrar.expire")
    datatable = (f"{base}/tasks/datatable?draw=1&start=0&length=10&search%5Bvalue%5D="
                 "&order%5B0%5D%5Bcolumn%5D=0&order%5B0%5D%5Bdir%5D=asc"
                 "&columns%5B0%5D%5Bdata%5D=name")
    wait_until(lambda: "registrar.expire" in requests.get(datatable, timeout=10).text, 30,
               interval=0.5, what="Flower to show the registrar.expire task")
    assert "restart #" not in u.text()

    os.kill(u.proc.pid, signal.SIGTERM)
    assert u.proc.wait(40) == 0
    assert not any(alive(p) for p in pids.values())
    assert "Warm shutdown" in u.text()
    assert "still running: SIGKILL" not in u.text()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2)


def test_whistle_up_refuses_to_start_without_redis():
    port = free_port()  # nothing listens there
    env = {**os.environ, "WHISTLE_REDIS_URL": f"redis://:n0tshown@127.0.0.1:{port}/15"}
    proc = subprocess.run([WHISTLE, "up", "--no-bridge", "--no-media", "--no-flower",
                           "--no-api", "--no-beat"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"Redis is not answering on 127.0.0.1:{port}" in proc.stderr
    assert f"redis-server --daemonize yes --bind 127.0.0.1 --port {port}" in proc.stderr
    assert "make services" in proc.stderr
    assert "not starting" in proc.stderr
    assert "RabbitMQ is not" not in proc.stderr and "CouchDB is not" not in proc.stderr
    assert "n0tshown" not in proc.stderr + proc.stdout
    assert "redis://:****@127.0.0.1" in proc.stderr
    assert "| whistle" not in proc.stdout and "celery" not in proc.stdout  # nothing started


def test_whistle_up_names_a_missing_vhost():
    env = {**os.environ,
           "WHISTLE_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/whistle_no_such_vhost"}
    proc = subprocess.run([WHISTLE, "up"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "RabbitMQ answers, but refused vhost 'whistle_no_such_vhost'" in proc.stderr
    assert "rabbitmqctl add_vhost whistle_no_such_vhost" in proc.stderr


def test_whistle_up_bad_options_are_usage_errors():
    proc = subprocess.run([WHISTLE, "up", "--workers", "registrar=x", "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--workers: 'registrar=x': COUNT must be a whole number" in proc.stderr
    proc = subprocess.run([WHISTLE, "up", "--dry-run", "--only", "router", "--workers",
                           "router=2", "--no-bridge", "--no-media", "--no-beat", "--no-flower",
                           "--no-api"],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["router-1", "router-2"]
    assert "-n router-2@%h" in lines[1]


# --- deploy/ and Procfile: consistent with the code they configure ----------------------

DEPLOY = ROOT / "deploy"


def test_freeswitch_snippets_parse_and_point_at_the_bridge():
    import xml.etree.ElementTree as ET

    files = sorted((DEPLOY / "freeswitch").glob("*.xml"))
    assert len(files) >= 6
    for path in files:
        ET.parse(path)  # FreeSWITCH refuses a malformed file at load time
    cfg = config.load({})
    # the per-install values are $${whistle_...} variables, with vars-whistle.xml's defaults
    defaults = dict(re.findall(r'cmd="set" data="(whistle_\w+)=([^"]*)"',
                               (DEPLOY / "freeswitch" / "vars-whistle.xml").read_text()))

    def value(param: ET.Element) -> str:
        return re.sub(r"\$\$\{(\w+)\}", lambda m: defaults[m.group(1)], param.get("value"))

    curl = ET.parse(DEPLOY / "freeswitch" / "xml_curl.conf.xml").getroot()
    bindings = {}
    for binding in curl.iter("binding"):
        params = {p.get("name"): p for p in binding.iter("param")}
        url = params["gateway-url"]
        bindings[url.get("bindings")] = value(url)
        assert params["disable-100-continue"].get("value") == "true"
        # mod_xml_curl's timeout is whole seconds; it must outlast the bridge's budget
        assert int(params["timeout"].get("value")) * 1000 > cfg.answer_budget_ms
    assert bindings == {"directory": f"http://{cfg.http_listen}/fs/directory",
                        "dialplan": f"http://{cfg.http_listen}/fs/dialplan"}
    esl = {p.get("name"): value(p) for p in ET.parse(
        DEPLOY / "freeswitch" / "event_socket.conf.xml").getroot().iter("param")}
    host, port, _ = cfg.fs_nodes.split(":")
    assert (esl["listen-ip"], esl["listen-port"]) == (host, port)
    profile = {p.get("name"): p.get("value") for p in ET.parse(
        DEPLOY / "freeswitch" / "sofia-profile-whistle.xml").getroot().iter("param")}
    assert profile["accept-blind-reg"] == "false"
    assert profile["auth-calls"] == "true"
    assert profile["challenge-realm"] == "auto_from"
    assert profile["context"] == "default"


def test_env_file_names_every_setting_with_its_default():
    from dataclasses import fields

    text = (DEPLOY / "systemd" / "whistle.env").read_text()
    found = re.findall(r"^#?(WHISTLE_\w+)=(.*)$", text, re.M)
    names = [name for name, _ in found]
    expected = [config.env_name(f.name) for f in fields(config.Settings)]
    assert sorted(names) == sorted(expected), "deploy/systemd/whistle.env is out of date"
    defaults = config.Settings()
    for line in text.splitlines():
        m = re.match(r"^(WHISTLE_\w+)=(.*)$", line)
        if m:  # an uncommented value must be the default: installing the file changes nothing
            field = m.group(1)[len("WHISTLE_"):].lower()
            assert getattr(config.load({m.group(1): m.group(2)}), field) == \
                getattr(defaults, field), m.group(1)


def test_procfile_and_units_run_real_processes():
    from whistle_tasks.cli.ops import spec_named

    procfile = dict(re.findall(r"^([A-Za-z0-9_-]+):\s*(.+)$",
                               (ROOT / "Procfile").read_text(), re.M))
    assert set(procfile) == {"bridge", "media", "registrar", "router", "callflow",
                             "maintenance", "cdr", "notify", "beat", "flower", "api"}
    for command in procfile.values():
        assert command.startswith(".venv/bin/whistle run ")
        spec_named(command.split()[-1])  # raises for an unknown process
    units = DEPLOY / "systemd"
    for unit in units.glob("*.service"):
        text = unit.read_text()
        assert "Restart=on-failure" in text and "User=whistle" in text, unit.name
        assert "EnvironmentFile=/etc/whistle/whistle.env" in text, unit.name
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1).split()
        assert exec_start[:2] == ["/opt/whistle/.venv/bin/whistle", "run"], unit.name
        if exec_start[2] != "%i":
            spec_named(exec_start[2])
    wants = " ".join(re.findall(r"^Wants=(.*)$", (units / "whistle.target").read_text(), re.M))
    workers = re.findall(r"whistle-worker@([\w-]+)\.service", wants)
    assert sorted(workers) == ["callflow", "cdr", "maintenance", "notify", "registrar", "router"]
    for instance in workers:
        spec_named(instance)
    worker_unit = (units / "whistle-worker@.service").read_text()
    # Celery's warm shutdown: SIGTERM to the main process only, time to finish tasks
    assert "KillSignal=SIGTERM" in worker_unit and "KillMode=mixed" in worker_unit
    assert int(re.search(r"^TimeoutStopSec=(\d+)", worker_unit, re.M).group(1)) >= 30


def test_kamailio_accepts_the_balancer_config(tmp_path: Path):
    import shutil

    kamailio = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
    if not kamailio:
        pytest.skip("kamailio is not installed (make test installs it: scripts/services.sh tools)")
    src = DEPLOY / "sip-lb" / "kamailio"
    cfg = (src / "kamailio.cfg").read_text()
    cfg = cfg.replace("/etc/kamailio/dispatcher.list", str(src / "dispatcher.list"))
    cfg = cfg.replace("10.0.0.5:5060", "127.0.0.1:5060")
    (tmp_path / "kamailio.cfg").write_text(cfg)
    proc = subprocess.run([kamailio, "-c", "-f", str(tmp_path / "kamailio.cfg")],
                          capture_output=True, text=True, timeout=60)
    assert "config file ok" in proc.stdout + proc.stderr, proc.stderr[-2000:]
