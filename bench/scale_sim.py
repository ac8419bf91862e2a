"""Synchronous and asynchronous halving at 1 to 1,000 workers, simulated on a virtual clock.

A discrete-event simulation drives the real scheduling code with simulated
trials instead of training: the claims (``store.claims.ClaimBook``, files in a
temporary folder, aged on the virtual clock, one host per worker), the
synchronous levels (``search.halving.Levels``, each level planned from the
table of the one before, walked in the worker's order,
``execution.worker.level_order``) and the asynchronous rule with its log
(``execution.promotions.AsyncSweep`` over ``search.asha.Asha``). The real
workers compute the same level plans and replay the same log, so the
simulation keeps one copy of each for all its workers.

A config's seconds per epoch are drawn from a lognormal (median 60 s, sigma 1:
heavy-tailed, the slowest of 4,000 about 30 times the median); its val metric
at each level is a fixed quality plus noise. A fraction of the workers is
killed at a random moment mid-trial and never comes back; its claim goes stale
after ``stale_s`` (heartbeats every ``min(stale_s / 4, 30)`` s while alive) and
another worker takes the trial over, resuming from its last finished epoch.

Modes: ``sync``, ``async``, and ``grow`` (async with ``halving.grow``: reserve
configs, ``--grow`` per planned one, that workers who would wait train when
they should end before the last running training; decision 051).

For each worker count and mode it prints: utilization (seconds spent training
that count towards a result, over workers x time until the final choice),
time until the final choice (every level done: the sweep's table is final),
the bound no scheduler beats with the same trainings (their work over W workers,
or the slowest config's levels one after the other, whichever is longer),
trials lost (planned or promoted trainings never finished: must be 0), trials
trained twice (finished more than once, or trained by two live workers at
once: must be 0), the speed-up against one worker on the same planned configs
(time until the final choice; one worker never waits, so it never grows), and
the throughput against one worker (training seconds done per hour of the sweep,
as a fraction of W times one worker's).

    python bench/scale_sim.py --workers 1 16 64 256 1000 --kill 0.05 [--modes async grow]

Each run takes seconds to minutes of real time: the synchronous walk tries every
trial of a level in every worker, as the real workers do (W x N claim attempts).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneladder.execution.promotions import AsyncSweep
from tuneladder.execution.worker import level_order
from tuneladder.search.asha import ASYNC, SYNC, Ask
from tuneladder.search.halving import Halving, Levels, expected_seconds, with_halving
from tuneladder.store.claims import ClaimBook

EPOCHS, ETA, MIN_EPOCHS = 15, 3, 3  # the default ladder's sweeps
STALE_S = 600.0  # the default stale_claim_s
GROW = "grow"  # async halving that grows (halving.grow): a row of its own
BEAT_S = min(STALE_S / 4, 30.0)  # ClaimBook.beating's period


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Running:
    ask: Ask
    start: float
    from_epoch: int  # the epoch it resumes from
    token: int  # its heartbeats' (and finish's, cut's) events carry it


@dataclass
class Sim:
    """One run: W workers over N configs in one mode."""

    workers: int
    configs: int
    mode: str
    kill: float
    seed: int
    folder: Path
    sigma: float = 1.0
    grow: float = 0.0  # reserve configs, as a multiple of ``configs`` (async only)
    clock: Clock = field(default_factory=Clock)
    events: list[tuple[float, int, str, int, int]] = field(default_factory=list)
    busy: float = 0.0
    finished: dict[tuple[int, str], int] = field(default_factory=dict)
    progress: dict[tuple[int, str], int] = field(default_factory=dict)  # checkpoints
    overlaps: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        reserve = round(self.grow * self.configs) if self.mode == ASYNC else 0
        total = self.configs + reserve
        # config by config, so a planned config is the same whatever the reserve
        self.per_epoch, self.quality = {}, {}
        for i in range(total):
            self.per_epoch[str(i)] = 60.0 * math.exp(rng.gauss(0, self.sigma))
            self.quality[str(i)] = rng.gauss(0, 1)
        halving = Halving(trials=self.configs, epochs=EPOCHS, eta=ETA, min_epochs=MIN_EPOCHS)
        entries = [{"name": str(i), "index": i} for i in range(total)]
        self.plan = with_halving({"rung": "coarse", "trials": entries[: self.configs]}, halving)
        self.plan["reserve"] = entries[self.configs :]
        self.plan["halving"]["mode"] = self.mode
        self.epochs = [lv["epochs"] for lv in self.plan["halving"]["levels"]]
        self.books = [
            [
                ClaimBook(
                    self.folder / f"levels/{lv}/claims",
                    stale_s=STALE_S,
                    host=f"sim-{w}",
                    pid=1,
                    clock=self.clock,
                )
                for lv in range(len(self.epochs))
            ]
            for w in range(self.workers)
        ]
        self.running: dict[int, Running] = {}
        self.held: dict[tuple[int, str], int] = {}  # trainings live workers hold now
        self.alive = set(range(self.workers))
        self.idle: list[int] = []
        killed = rng.sample(range(self.workers), round(self.kill * self.workers))
        horizon = self.work() / self.workers
        self.kill_at = {w: rng.uniform(0.05, 0.7) * horizon for w in killed}
        self._seq = 0
        self.schedule = AsyncSchedule(self) if self.mode == ASYNC else SyncSchedule(self)

    def work(self) -> float:
        """Training seconds of the synchronous levels with every level full."""
        levels = self.plan["halving"]["levels"]
        mean = sum(self.per_epoch.values()) / self.configs
        before, total = 0, 0.0
        for lv in levels:
            total += lv["configs"] * (lv["epochs"] - before) * mean
            before = lv["epochs"]
        return total

    def push(self, at: float, kind: str, worker: int, token: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, worker, token))

    def value(self, level: int, name: str) -> float:
        noise = random.Random(f"{name}/{level}").gauss(0, 0.3)
        return self.quality[name] + 0.1 * level + noise

    def row(self, ask: Ask) -> dict[str, Any]:
        return {
            "name": ask.name,
            "index": int(ask.name),
            "status": "ok",
            "best_val_metric": self.value(ask.level, ask.name),
            "epochs_run": self.epochs[ask.level],
            "stopped_early": False,
            "train_seconds": self.per_epoch[ask.name] * self.epochs[ask.level],
        }

    def start(self, w: int) -> None:
        """Worker ``w`` looks for its next training; idle when there is none."""
        ask = self.schedule.next(w)
        if ask is None:
            if not self.schedule.over(w):
                self.idle.append(w)
            return
        key = (ask.level, ask.name)
        if key in self.held and self.held[key] in self.alive:
            self.overlaps += 1  # a live worker trains it already
        self.held[key] = w
        before = self.epochs[ask.level - 1] if ask.level else 0
        resume = max(before, self.progress.get(key, before))
        self.running[w] = Running(ask, self.clock.now, resume, self._seq)
        end = self.clock.now + (self.epochs[ask.level] - resume) * self.per_epoch[ask.name]
        dies = self.kill_at.get(w)
        if dies is not None and dies < end:
            self.push(max(dies, self.clock.now), "kill", w)
        else:
            self.push(end, "finish", w, self._seq)
            if ask.grown and resume + 1 < self.epochs[ask.level]:
                token = self.running[w].token
                self.push(self.clock.now + self.per_epoch[ask.name], "check", w, token)
        self.push(self.clock.now + BEAT_S, "beat", w, self.running[w].token)

    def run(self) -> dict[str, float]:
        for w in range(self.workers):
            self.start(w)
        last = 0.0
        while self.events:
            at, _, kind, w, token = heapq.heappop(self.events)
            self.clock.now = at
            if kind == "beat":
                r = self.running.get(w)
                if r is not None and r.token == token and w in self.alive:
                    self.books[w][r.ask.level].heartbeat(r.ask.name)
                    self.push(at + BEAT_S, "beat", w, token)
            elif kind == "finish":
                r = self.running.get(w)
                if r is not None and r.token == token:  # not cut before
                    last = self.finish(w)
            elif kind == "check":
                r = self.running.get(w)
                if r is not None and r.token == token:
                    self.check(w)
                    if w not in self.running:
                        last = at  # cut: the sweep ends when its last worker stops
            elif kind == "kill":
                self.die(w)
            elif kind == "wake":
                self.wake()  # a dead worker's claim went stale
        return self.figures(last)

    def finish(self, w: int) -> float:
        r = self.running.pop(w)
        key = (r.ask.level, r.ask.name)
        self.busy += self.clock.now - r.start
        self.finished[key] = self.finished.get(key, 0) + 1
        self.held.pop(key, None)
        changed = self.schedule.tell(w, r.ask, self.row(r.ask))
        self.books[w][r.ask.level].release(r.ask.name)
        self.start(w)
        self.wake(everyone=changed)
        return self.clock.now

    def check(self, w: int) -> None:
        """A grown training's epoch end: it stops when the rule no longer keeps it (the
        planned trainings done, or it would end after them at its pace), as a real
        worker's does; its time so far counts as lost work."""
        r = self.running[w]
        pace = self.per_epoch[r.ask.name]
        epoch = r.from_epoch + round((self.clock.now - r.start) / pace)
        if not self.schedule.sweep.rule.keeps(
            self.clock.now, (self.epochs[r.ask.level] - epoch) * pace
        ):
            self.cut(w)
        elif epoch + 1 < self.epochs[r.ask.level]:
            self.push(self.clock.now + pace, "check", w, r.token)

    def cut(self, w: int) -> None:
        r = self.running.pop(w)
        self.held.pop((r.ask.level, r.ask.name), None)
        self.schedule.sweep.cut(r.ask.level, r.ask.name)
        self.books[w][r.ask.level].release(r.ask.name)
        self.start(w)

    def die(self, w: int) -> None:
        self.alive.discard(w)
        r = self.running.pop(w, None)
        if r is not None:  # its checkpoint: the last epoch it finished
            done = int((self.clock.now - r.start) / self.per_epoch[r.ask.name])
            self.progress[(r.ask.level, r.ask.name)] = r.from_epoch + done
            self.busy += done * self.per_epoch[r.ask.name]  # the rest is lost work
        self.push(self.clock.now + STALE_S + 1.0, "wake", w)

    def wake(self, *, everyone: bool = False) -> None:
        """Idle workers look again. A real worker polls every 0.2 s; what it could find
        changes only when a trial ends or a claim goes stale, the events here. Each
        looks in turn until one finds nothing (the others would find nothing either),
        unless ``everyone`` (a new level: each has its own walk)."""
        idle, self.idle = self.idle, []
        for i, w in enumerate(idle):
            if w not in self.alive:
                continue
            self.start(w)
            if not everyone and self.idle and self.idle[-1] == w:
                self.idle.extend(idle[i + 1 :])
                return

    def figures(self, last: float) -> dict[str, float]:
        expected = self.schedule.expected()
        lost = len(expected - set(self.finished))
        twice = sum(n - 1 for n in self.finished.values()) + self.overlaps
        return {
            "bound_s": self.bound(),
            "utilization": self.busy / (self.workers * last) if last else 0.0,
            "final_s": last,
            "lost": lost,
            "twice": twice,
            "trainings": len(self.finished),
            "grown": len(self.schedule.grown()),
            "killed": len(self.kill_at),
        }

    def bound(self) -> float:
        """The soonest any scheduler could end with the trainings this run made: their
        work spread over every worker, or the longest config's levels one after the
        other, whichever is longer."""
        reached: dict[str, int] = {}
        for level, name in self.finished:
            reached[name] = max(reached.get(name, 0), self.epochs[level])
        work = sum(epochs * self.per_epoch[name] for name, epochs in reached.items())
        chain = max((epochs * self.per_epoch[name] for name, epochs in reached.items()), default=0)
        return max(work / self.workers, chain)


class AsyncSchedule:
    """The real log and rule: every worker asks the same AsyncSweep (the replica every
    worker process replays from the log)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        # one replica for all: its look for stale claims every stale_s / 4 is the
        # busiest worker's, a real worker's own is no more often
        self.sweep = AsyncSweep(
            sim.plan, sim.folder, mode="max", clock=sim.clock, look_every_s=STALE_S / 4
        )

    def next(self, w: int) -> Ask | None:
        return self.sweep.next(lambda level: self.sim.books[w][level], worker=w)

    def tell(self, w: int, ask: Ask, row: Mapping[str, Any]) -> bool:
        self.sweep.tell(ask.level, row)
        return False

    def over(self, w: int) -> bool:
        return self.sweep.rule.done

    def grown(self) -> list[str]:
        return self.sweep.rule.grown

    def expected(self) -> set[tuple[int, str]]:
        rule = self.sweep.rule
        return {(lv, n) for lv in range(len(rule)) for n in rule.finished(lv)} | {
            (lv, n) for lv in range(len(rule)) for n in rule.running(lv)
        }


class SyncSchedule:
    """The real levels: each planned from the table of the level before once it is
    complete; each worker walks a level in its order, then waits for its end."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.levels = Levels(sim.plan, "max")
        self.iter = iter(self.levels)
        self.table: dict[str, dict[str, Any]] = {}
        self.asked: set[tuple[int, str]] = set()
        self.stopped: set[int] = set()
        self._plan_next()

    def _plan_next(self) -> None:
        self.level_plan = next(self.iter, None)
        self.table = {}
        if self.level_plan is None:
            return
        entries = self.level_plan["trials"]
        expected = expected_seconds(self.levels.previous, self.level_plan)
        sim = self.sim
        level = self.level_plan["level"]
        self.asked |= {(level, e["name"]) for e in entries}
        # each worker's one pass over the level, reversed so that it pops from the end
        self.walk = {
            w: level_order(entries, expected, worker=w, workers=sim.workers)[::-1]
            for w in range(sim.workers)
        }
        for w, order in self.walk.items():
            if not order:
                self.stopped.add(w)  # no trial at this level: none at the next either

    def next(self, w: int) -> Ask | None:
        if self.level_plan is None or w in self.stopped:
            return None
        level, entries = self.level_plan["level"], self.level_plan["trials"]
        book = self.sim.books[w][level]
        walk = self.walk[w]
        while walk:  # its one pass over the level (Worker._run_part)
            name = entries[walk.pop()]["name"]
            if name not in self.table and book.try_claim(name):
                return Ask(level, name)
        # waiting for the level's end (worker._wait_for): a stale claim is taken over
        for entry in entries:
            if entry["name"] not in self.table and book.try_claim(entry["name"]):
                return Ask(level, entry["name"])
        return None

    def tell(self, w: int, ask: Ask, row: Mapping[str, Any]) -> bool:
        self.table[ask.name] = dict(row)
        entries = self.level_plan["trials"]
        if len(self.table) < len(entries):
            return False
        self.levels.tell([self.table[e["name"]] for e in entries])
        if not self.levels.is_last(self.level_plan):
            self._plan_next()
        else:
            self.level_plan = None
        return True

    def over(self, w: int) -> bool:
        return self.level_plan is None or w in self.stopped

    def grown(self) -> list[str]:
        return []

    def expected(self) -> set[tuple[int, str]]:
        return self.asked


def simulate(
    workers: int, configs: int, mode: str, kill: float, seed: int, sigma: float, grow: float = 0.0
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="scale-sim-") as tmp:
        return Sim(workers, configs, mode, kill, seed, Path(tmp), sigma, grow).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16, 64, 256, 1000])
    parser.add_argument("--configs-per-worker", type=int, default=16)
    parser.add_argument("--kill", type=float, default=0.05, help="fraction of workers killed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modes", nargs="+", default=[SYNC, ASYNC, GROW], choices=[SYNC, ASYNC, GROW]
    )
    parser.add_argument("--sigma", type=float, default=1.0, help="sigma of log seconds per epoch")
    parser.add_argument(
        "--grow", type=float, default=8.0, help=f"{GROW}: reserve configs per planned config"
    )
    args = parser.parse_args()
    print(
        f"halving eta {ETA}, epochs {MIN_EPOCHS} to {EPOCHS}; {args.configs_per_worker} configs"
        f" per worker; {args.kill:.0%} of workers killed; stale_s {STALE_S:.0f};"
        f" seconds per epoch lognormal, median 60, sigma {args.sigma}; {GROW}: async with"
        f" {args.grow:g} reserve configs per planned one"
    )
    print(
        "workers configs mode   util  final(h) bound(h) lost twice trainings grown killed"
        "  speed-up (final choice)  throughput  real-s"
    )
    for w in args.workers:
        n = args.configs_per_worker * w
        for name in args.modes:
            mode, grow = (ASYNC, args.grow) if name == GROW else (name, 0.0)
            started = time.perf_counter()
            one = simulate(1, n, mode, 0.0, args.seed, args.sigma, grow)
            out = simulate(w, n, mode, args.kill, args.seed, args.sigma, grow)
            speedup = one["final_s"] / out["final_s"]
            # training seconds done per hour of the sweep, against one worker's
            throughput = out["utilization"] * w / one["utilization"]
            print(
                f"{w:7d} {n:7d} {name:6s} {out['utilization']:.3f} {out['final_s'] / 3600:8.2f}"
                f" {out['bound_s'] / 3600:8.2f}"
                f" {out['lost']:4d} {out['twice']:5d} {out['trainings']:9d} {out['grown']:5d}"
                f" {out['killed']:6d}"
                f" {speedup:7.1f}x ({speedup / w:.2f} of linear)"
                f" {throughput / w:6.2f} of linear"
                f" {time.perf_counter() - started:6.1f}"
            )


if __name__ == "__main__":
    main()
