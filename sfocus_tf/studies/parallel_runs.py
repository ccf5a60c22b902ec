"""A study's missing runs trained side by side, each in its own ``sfocus-train`` process.

On a machine with many cores or one large accelerator, one training process uses a
fraction of it; several at once finish a study in a fraction of the time. Each run
gets a flagfile of its exact config (``<run>/train.flags``) and a log
(``<run>/train.log``); the processes share a GPU by growing their memory as they need
it (``TF_FORCE_GPU_ALLOW_GROWTH``) instead of each claiming it all. A run is the same
``train_and_evaluate`` as in the study's own process, so a run that failed or was
interrupted is resumed by the next call, in either mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sfocus_tf.common.config_flags import config_to_flags
from sfocus_tf.common.files import write_text

FLAGFILE, LOG = "train.flags", "train.log"
POLL_SECONDS = 0.5


class RunsFailed(RuntimeError):
    """Some training processes ended with an error; their logs say why."""


def command(run: str) -> list:
    """The process that trains ``run`` from its flagfile."""
    # --config=default: the flagfile gives every field that is not None; the others
    # must be TrainConfig's own (None), not another recipe's
    return [sys.executable, "-m", "sfocus_tf.cli.train", "--config=default",
            f"--flagfile={os.path.join(run, FLAGFILE)}", f"--workdir={run}",
            "--nohparams_table"]


def _start(run: str, config) -> tuple:
    os.makedirs(run, exist_ok=True)
    write_text(os.path.join(run, FLAGFILE), "\n".join(config_to_flags(config)) + "\n")
    log = open(os.path.join(run, LOG), "ab")
    environment = dict(os.environ, TF_FORCE_GPU_ALLOW_GROWTH="true")
    return subprocess.Popen(command(run), stdout=log, stderr=subprocess.STDOUT,
                            env=environment), log


def train_all(pending: dict, parallel: int) -> None:
    """Trains every ``run directory -> TrainConfig`` of ``pending``, ``parallel`` at
    a time, in the order given; raises ``RunsFailed`` naming the runs that failed once
    all have ended (the others are kept)."""
    queue, running, failed = list(pending.items()), {}, []
    try:
        while queue or running:
            while queue and len(running) < parallel:
                run, config = queue.pop(0)
                running[run] = _start(run, config)
            for run, (process, log) in list(running.items()):
                if process.poll() is not None:
                    log.close()
                    del running[run]
                    if process.returncode != 0:
                        failed.append(run)
            time.sleep(POLL_SECONDS)
    finally:  # interrupted: no process is left training without its study
        for process, log in running.values():
            process.kill()
            process.wait()
            log.close()
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(pending)} runs failed (see their "
                         f"{LOG}): {', '.join(failed)}")
