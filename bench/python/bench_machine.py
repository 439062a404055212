"""
The Python baseline: each scenario written the way a user of QEMU's own Python package
(qemu.machine.QEMUMachine over qemu.qmp) would write it. Run by bench/impl-python.ts:

  bench_machine.py serve            JSON requests on stdin, one result per line on stdout
                                    (launch, shutdown, qmp: one long-lived process, like Node's)
  bench_machine.py run REQUEST      one fresh-process scenario (fleet, idle, launch); prints its result

Every QEMU gets the flags the other implementations use (-M none -nodefaults, plus
QEMUMachine's own -display none -vga none and its QMP monitor, a UNIX socket it listens on).
Nothing is timed outside this process: interpreter start-up and imports are not counted.
"""
import asyncio
import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from qemu.machine import QEMUMachine

BINARY = os.environ.get("QEMU_BINARY", "qemu-system-x86_64")
ARGS = ["-M", "none", "-nodefaults"]
BASE = tempfile.gettempdir()
_local = threading.local()


def machine() -> QEMUMachine:
    # qemu.qmp's legacy client takes the thread's event loop: give each thread one.
    if not getattr(_local, "loop", None):
        _local.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_local.loop)
    return QEMUMachine(BINARY, args=ARGS, base_temp_dir=BASE)


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def launch() -> dict:
    vm = machine()
    start = time.perf_counter()
    vm.launch()
    ms = ms_since(start)
    vm.shutdown()
    return {"ms": ms}


def shutdown() -> dict:
    vm = machine()
    vm.launch()
    start = time.perf_counter()
    vm.shutdown()
    return {"ms": ms_since(start)}


def qmp(requests: int, workers: int) -> dict:
    if workers != 1:
        # The legacy client is synchronous: one request at a time per machine.
        return {"ms": None}
    vm = machine()
    vm.launch()
    start = time.perf_counter()
    for _ in range(requests):
        vm.qmp("query-status")
    ms = ms_since(start)
    vm.shutdown()
    return {"ms": ms}


def one_of_fleet() -> None:
    vm = machine()
    vm.launch()
    vm.qmp("query-status")
    vm.shutdown()


def fleet(machines: int) -> float:
    """Launches `machines` VMs at once (a thread each), one query-status each, all shut down."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=machines) as pool:
        for future in [pool.submit(one_of_fleet) for _ in range(machines)]:
            future.result()
    return ms_since(start)


def status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB$", status.read(), re.M).group(1))


def rss() -> int:
    return status_kib("VmRSS") * 1024


def cpu_ms() -> float:
    times = os.times()
    return (times.user + times.system) * 1000


def run(request: dict) -> dict:
    scenario = request["scenario"]
    if scenario == "launch":
        return launch()
    if scenario == "fleet":
        fleet(5)  # warm-up, as the Node implementations do
        gc.collect()
        start_rss = rss()
        cpu = cpu_ms()
        ms = fleet(request["machines"])
        return {"ms": ms, "cpuMs": cpu_ms() - cpu, "startRss": start_rss, "peakRss": status_kib("VmHWM") * 1024}
    if scenario == "idle":
        gc.collect()
        before = rss()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=request["machines"]) as pool:
            vms = list(pool.map(lambda _: launch_only(), range(request["machines"])))
        ms = ms_since(start)
        time.sleep(0.25)
        gc.collect()
        time.sleep(0.05)
        idle = rss()
        with ThreadPoolExecutor(max_workers=len(vms)) as pool:
            list(pool.map(lambda vm: vm.shutdown(), vms))
        return {"ms": ms, "rssBefore": before, "rssIdle": idle}
    raise ValueError(f"unknown scenario {scenario}")


def launch_only() -> QEMUMachine:
    vm = machine()
    vm.launch()
    return vm


def serve() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "launch":
            result = launch()
        elif op == "shutdown":
            result = shutdown()
        elif op == "qmp":
            result = qmp(request["requests"], request["workers"])
        else:
            result = {"error": f"unknown op {op}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        print(json.dumps(run(json.loads(sys.argv[2]))), flush=True)
