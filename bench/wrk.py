"""Closed-loop HTTP throughput with ``wrk`` (C), shaped like mod_xml_curl.

A Python client spends ~250 µs of CPU per new-connection request — on a 2-core machine
that is CPU taken from the system under test. wrk makes the same requests (a new
connection each: ``Connection: close``, as libcurl in FreeSWITCH) for a fraction of that.
Bodies rotate through the given list; every answer is checked (status 200 and a marker in
the body) by the Lua script, and the counts come back in :class:`bench.common.Result`.
wrk is installed from Debian's packages when missing.
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
local bodies = {}
local path = os.getenv("WRK_BODIES")
for line in io.lines(path) do bodies[#bodies + 1] = line end
local marker = os.getenv("WRK_MARKER")
local threads = {}
local i = 0
local bad = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  i = math.random(#bodies)
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["User-Agent"] = "freeswitch-xml/1.0", ["Accept"] = "*/*",
    ["Connection"] = "close"}, bodies[i])
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, marker, 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("bad") or 0) end
  io.write(string.format("WRK_BAD %d\n", total))
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


def closed(name: str, url: str, bodies: list[bytes], *, connections: int, seconds: float,
           marker: str) -> Result:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        bodies_file = Path(tmp) / "bodies.txt"
        bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script),
             url],
            capture_output=True, text=True, env={**os.environ, "WRK_BODIES": str(bodies_file),
                                                 "WRK_MARKER": marker}, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(re.search(r"WRK_BAD (\d+)", out).group(1))
    timeouts = re.search(r"timeout (\d+)", out)
    errors = bad + (int(timeouts.group(1)) if timeouts else 0)
    return Result(name, sent=total, answered=total, errors=errors,
                  seconds=total / rate if rate else seconds,
                  reported={50: float(re.search(r"WRK_P50 ([\d.]+)", out).group(1)),
                            99: float(re.search(r"WRK_P99 ([\d.]+)", out).group(1))})
