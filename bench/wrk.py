"""Closed-loop HTTP throughput with ``wrk`` (C), shaped like mod_xml_curl.

A Python client spends ~250 µs of CPU per new-connection request — on a 2-core machine
that is CPU taken from the system under test. wrk makes the same requests (a new
connection each: ``Connection: close``, as libcurl in FreeSWITCH) for a fraction of that.

Every answer is checked by the Lua script against the exact answer expected for *its*
request: requests rotate through ``(key, body)`` pairs; the key of an answer is read from
its body (``key_pattern``, a Lua pattern) and must be one that was asked and is still
unanswered, the status must be 200, and the body must hold every one of the key's
``expected`` strings (e.g. ``<param name="password" value="pw-1000"/>``). The counts
come back in :class:`bench.common.Result`: right + wrong from the script, errors from wrk's
socket errors (connect, read, write); the requests wrk still had in flight when its run
ended are ``cut_off`` (neither sent nor counted). wrk is installed from Debian's packages
when missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.common import Result

LUA = r"""
local keys, bodies = {}, {}
for line in io.lines(os.getenv("WRK_BODIES")) do
  local k, b = line:match("^([^\t]*)\t(.*)$")
  keys[#keys + 1] = k
  bodies[#bodies + 1] = b
end
local expected = {}
for line in io.lines(os.getenv("WRK_EXPECTED")) do
  local fields = {}
  for f in line:gmatch("[^\t]+") do fields[#fields + 1] = f end
  local k = table.remove(fields, 1)
  expected[k] = fields
end
local pattern = os.getenv("WRK_KEY_PATTERN")
local method = os.getenv("WRK_METHOD")
local threads = {}
local pending = {}
local i = 0
issued, right, wrong = 0, 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  i = math.random(#bodies)
end

function request()
  i = i % #bodies + 1
  local k = keys[i]
  pending[k] = (pending[k] or 0) + 1
  issued = issued + 1
  if method == "GET" then  -- the "body" is the path; keep-alive, as a database client
    return wrk.format("GET", bodies[i])
  end
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["User-Agent"] = "freeswitch-xml/1.0", ["Accept"] = "*/*",
    ["Connection"] = "close"}, bodies[i])
end

function response(status, headers, body)
  local k = body:match(pattern)
  local needles = k and expected[k]
  local ok = status == 200 and needles ~= nil and (pending[k] or 0) > 0
  if ok then
    pending[k] = pending[k] - 1
    for _, needle in ipairs(needles) do
      if not body:find(needle, 1, true) then ok = false; break end
    end
  end
  if ok then right = right + 1 else wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local t_issued, t_right, t_wrong = 0, 0, 0
  for _, t in ipairs(threads) do
    t_issued = t_issued + (t:get("issued") or 0)
    t_right = t_right + (t:get("right") or 0)
    t_wrong = t_wrong + (t:get("wrong") or 0)
  end
  io.write(string.format("WRK_ISSUED %d\nWRK_RIGHT %d\nWRK_WRONG %d\n", t_issued, t_right,
                         t_wrong))
  io.write(string.format("WRK_ERR %d %d %d %d\n", summary.errors.connect, summary.errors.read,
                         summary.errors.write, summary.errors.timeout))
  io.write(string.format("WRK_P50 %f\nWRK_P99 %f\n", latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("installing wrk (apt-get install -y wrk)")
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


def closed(name: str, url: str, requests: list[tuple[str, bytes]],
           expected: dict[str, list[str]], key_pattern: str, *, connections: int,
           seconds: float, timeout: float = 30.0, method: str = "POST") -> Result:
    """``requests``: (key, form body) pairs, sent in turn; ``expected``: per key, the
    strings its answer must hold; ``key_pattern``: the Lua pattern whose capture is the key
    in an answer's body. ``method="GET"``: each request's "body" is the path and query it
    gets, on kept-alive connections (a database client's reads)."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        bodies_file = Path(tmp) / "bodies.txt"
        bodies_file.write_bytes(b"".join(k.encode() + b"\t" + b + b"\n" for k, b in requests))
        expected_file = Path(tmp) / "expected.txt"
        expected_file.write_text("".join("\t".join([k, *v]) + "\n" for k, v in expected.items()))
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             f"--timeout={timeout:g}s", "-s", str(script), url],
            capture_output=True, text=True, check=True,
            env={**os.environ, "WRK_BODIES": str(bodies_file),
                 "WRK_EXPECTED": str(expected_file), "WRK_KEY_PATTERN": key_pattern,
                 "WRK_METHOD": method}).stdout

    def num(label: str) -> int:
        return int(re.search(rf"{label} (\d+)", out).group(1))

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    connect, read, write, slow = map(int, re.search(r"WRK_ERR (\d+) (\d+) (\d+) (\d+)",
                                                    out).groups())
    issued, right, wrong = num("WRK_ISSUED"), num("WRK_RIGHT"), num("WRK_WRONG")
    errors = connect + read + write
    # a connect error happens before any request is written (no request() call); a read or
    # write error ends a request that was issued; what is left was in flight at the end
    cut_off = max(0, issued - right - wrong - read - write)
    result = Result(name, sent=right + wrong + errors, right=right, wrong=wrong,
                    errors=errors, timeouts=0, cut_off=cut_off,
                    seconds=total / rate if rate else seconds,
                    reported={50: float(re.search(r"WRK_P50 ([\d.]+)", out).group(1)),
                              99: float(re.search(r"WRK_P99 ([\d.]+)", out).group(1))})
    if slow:  # answered, but later than the budget: they are in right/wrong and in p99
        print(f"    ({name}: {slow} answers slower than {timeout:g}s)")
    return result
