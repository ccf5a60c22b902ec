"""TensorBoard on a finished run, checked in a real browser: ``make tensorboard-screenshots``.

For each of the two folders a user may open (the run, and its ``tensorboard/``), starts
TensorBoard on 127.0.0.1 at a free port, checks through its HTTP API that the HParams
tab finds one trial, named after the run, with its status and its metrics, and takes
headless-Chromium screenshots (loopback only: nothing else is loaded) into
``docs/images/``:

    tensorboard-time-series.png     the first screen of Time Series (smoothing 0)
    tensorboard-groups.png          the whole Time Series page: the groups, two open
    tensorboard-images.png          the Images tab: the overlays at their default size
    tensorboard-hparams.png         the HParams tab, --logdir <run>
    tensorboard-hparams-tensorboard-folder.png   the same, --logdir <run>/tensorboard

Chromium runs with --no-sandbox (as root the sandbox refuses to start) and a fresh
profile, so no pinned card or setting from an earlier visit shows. Both run under
``nice``: a check beside a training run must not slow it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from PIL import Image

WINDOW = (1400, 1000)
# Loading, drawing the charts in a worker, then the images: virtual time, in ms.
BUDGET_MS = 30000
# Headless Chromium takes the picture while the chart worker may still be drawing; of a
# few tries the largest file is the one with the most lines drawn.
TRIES = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir: str):
    """A TensorBoard on ``logdir``, its URL once its runs are loaded."""
    port = free_port()
    server = subprocess.Popen(
        ["nice", "-n", "19", sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_runs(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_runs(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            runs = json.load(urllib.request.urlopen(f"{url}/data/runs", timeout=5))
            if any(run.endswith("test") for run in runs):
                return
        time.sleep(1)
    raise TimeoutError(f"TensorBoard at {url} loaded no test/ run in {timeout_s} s")


def trial(url: str) -> dict:
    """The HParams tab's one trial: name, status, metrics and shown columns."""
    def post(path, body):
        request = urllib.request.Request(f"{url}/data/plugin/hparams/{path}",
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(request, timeout=30))

    experiment = post("experiment", {"experimentName": ""})
    groups = post("session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 100, "includeMetrics": True,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                            "STATUS_RUNNING"]})["sessionGroups"]
    if len(groups) != 1:
        raise AssertionError(f"{len(groups)} trials, not 1")
    [session] = groups[0]["sessions"]
    return {"name": groups[0]["name"], "status": session.get("status"),
            "metrics": len(session.get("metricValues", [])),
            "shown": [info["name"] for info in experiment["hparamInfos"] if info["differs"]]}


def screenshot(url: str, path: str, window=WINDOW, tries: int = TRIES) -> None:
    with tempfile.TemporaryDirectory() as folder:
        shots = [os.path.join(folder, f"{index}.png") for index in range(tries)]
        for index, shot in enumerate(shots):
            subprocess.run(
                ["nice", "-n", "19", "chromium", "--headless", "--no-sandbox",
                 "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
                 "--disable-sync", "--disable-extensions",
                 f"--user-data-dir={os.path.join(folder, f'profile-{index}')}",
                 f"--window-size={window[0]},{window[1]}",
                 f"--virtual-time-budget={BUDGET_MS}", f"--screenshot={shot}", url],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        with Image.open(max(shots, key=os.path.getsize)) as picture:  # small, for git
            picture.convert("RGB").quantize(colors=256).save(path, optimize=True)


def check_logdir(logdir: str, run: str, out: str, pages: dict) -> dict:
    with tensorboard(logdir) as url:
        found = trial(url)
        if found["status"] != "STATUS_SUCCESS" or not found["metrics"]:
            raise AssertionError(f"--logdir {logdir}: {found}")
        if found["name"] != run.rstrip("/"):
            print(f"note: trial named {found['name']!r} (the workdir it was trained as)")
        for name, (fragment, window) in pages.items():
            screenshot(url + fragment, os.path.join(out, f"tensorboard-{name}.png"), window)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo", help="A finished training run.")
    parser.add_argument("--out", default="docs/images", help="Where the screenshots go.")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.run, "metrics.json")):
        sys.exit(f"{args.run} holds no finished run (metrics.json); train one first")
    os.makedirs(args.out, exist_ok=True)
    tall = (WINDOW[0], 2400)
    wide = (2200, 600)  # the table's five hparams and five metrics side by side
    for logdir, pages in (
            (args.run, {"time-series": ("/?smoothing=0#timeseries", WINDOW),
                        "groups": ("/?smoothing=0#timeseries", tall),
                        "images": ("/#images", WINDOW), "hparams": ("/#hparams", wide)}),
            (os.path.join(args.run, "tensorboard"),
             {"hparams-tensorboard-folder": ("/#hparams", wide)})):
        found = check_logdir(logdir, args.run, args.out, pages)
        print(f"--logdir {logdir}: trial {found['name']!r}, {found['status']}, "
              f"{found['metrics']} metrics, columns shown {found['shown']}")
    print(f"screenshots in {args.out}/")


if __name__ == "__main__":
    main()
