import functools
import math
import os
import shlex
import sys
import time
from pathlib import Path

from snakemake.utils import update_config, validate

from tuneladder.core.text import counted
from tuneladder.ladder import rungs
from tuneladder.execution import terminal
from tuneladder.infra.conda_envs import write_env_file
from tuneladder.infra.device import visible_gpus
from tuneladder.ladder.config import (
    SCHEMA_PATH,
    ConfigError,
    command_line_values,
    describe_plan,
    resolve_config,
)
from tuneladder.search.halving import Halving
from tuneladder.infra.stale_locks import clear_stale_locks
from tuneladder.execution.status import ladder_status, save_run_config, stop_line
from tuneladder.report import (
    PROBE_INPUT,
    SWEEP_READS,
    SWEEPS_FILE,
    figures_for,
    report_inputs,
)
from tuneladder.tasks import TaskError
from tuneladder.tasks.tabular import data_path
from tuneladder.store.stop_request import StopFile
from tuneladder.store.trials import task_code

# --config 'coarse={trials: 5}': Snakemake leaves the nested 5 a string
update_config(config, command_line_values(workflow.config_settings.config_args))
WRITTEN_CONFIG = dict(config)
try:
    # the task is checked where the user sees the answer: in the main process (also
    # on -n), not again in every cluster job, where a plugin's import costs torch's
    config = resolve_config(config, check_task=workflow.is_main_process)
except (ConfigError, TaskError) as err:
    sys.exit(f"tuneladder: config error: {err}")
# resolve_config filled the defaults; Snakemake filling them again would step into a null
# section (`halving: null`) and fail
validate(config, str(SCHEMA_PATH), set_default=False)

# Every experiment has its own folder: trials, status, report, MLflow store, DVC outputs.
RESULTS = f"results/{config['experiment']}"
# The config files as given, relative to where Snakemake runs: the report's command
# to reproduce the run must work when pasted there.
CONFIGFILES = [os.path.relpath(path) for path in workflow.overwrite_configfiles]
# The rungs, their files and trial counts come from the library's table (tuneladder.ladder.rungs):
# the rungs of trials share the {rung} rules, and those that search feed the seed reruns.
TRIAL_RUNGS = [rung.name for rung in rungs.TRIAL_RUNGS]
SEARCH_RUNGS = [rung.name for rung in rungs.SEARCH_RUNGS]
DATA = [f"{RESULTS}/{path}" for path in rungs.PREPARE.outputs.values()]


wildcard_constraints:
    rung="|".join(TRIAL_RUNGS),
    w=r"\d+",
    n=r"\d+",


def _global_resource(name, default=None):
    value = getattr(workflow.global_resources.get(name), "value", None)
    return default if value is None else value


def asked_gpus():
    """The --resources gpu=N limit (0 when not given)."""
    value = _global_resource("gpu", 0)
    return int(value) if isinstance(value, int) else 0


# No --jobs, so no executor's job slots: the jobs run on this machine. --jobs sets
# `_nodes` (the executor plugin is not known while the Snakefile is parsed).
LOCAL_RUN = _global_resource("_nodes") is None


def gpus_refused():
    """A local run given --resources gpu=0: its trials train on the CPU."""
    return LOCAL_RUN and _global_resource("gpu") == 0


# GPUs this machine shows, counted without torch (None: it cannot tell, and the jobs'
# torch decides); a cluster's jobs run elsewhere, so only a local run goes by it
try:
    LOCAL_GPUS = visible_gpus()
except ValueError as err:  # TUNELADDER_VISIBLE_GPUS=two: one line, not a traceback
    sys.exit(f"tuneladder: {err}")

# A local run that names no GPU count uses every GPU the machine shows (decision 060),
# and Snakemake counts its gpu=1 jobs against them as it would under --resources gpu=N:
# without a limit it would start every such job that fits the cores, and the ones
# beyond the GPUs would wait for a claim while holding their cores.
GPUS_UNSAID = LOCAL_RUN and bool(LOCAL_GPUS) and _global_resource("gpu") is None
if GPUS_UNSAID:
    workflow.register_resource("gpu", LOCAL_GPUS)


def gpu_count():
    """GPUs this run may use: gpu=N, and on a local run at most the GPUs the machine
    shows (a worker per GPU: the workers beyond them would find none to claim); a local
    run that does not say uses every GPU the machine shows."""
    if LOCAL_RUN and LOCAL_GPUS:
        return min(asked_gpus(), LOCAL_GPUS)  # registered as the limit when not given
    return asked_gpus()


def no_gpu_here():
    """A local run (no --jobs, so no executor's job slots) on a machine without a GPU."""
    return LOCAL_RUN and LOCAL_GPUS == 0


def uses_gpu():
    if no_gpu_here() or gpus_refused():
        return False
    return config["device"] == "cuda" or (
        config["device"] == "auto" and gpu_count() > 0
    )


# when this run began: a job log that failed before it is an earlier run's
PARSED_AT = time.time()


def stopped_line():
    """What a stopped run kept, and the command that goes on: the one that was run."""
    cli = Path(sys.argv[0]).name == "snakemake"  # not Snakemake's API, from a notebook
    # from Python: the same call, as the notebook made it
    command = shlex.join(["snakemake", *sys.argv[1:]]) if cli else "api.run_ladder(...)"
    # under --directory the paths it names are the working directory's, not the shell's
    moved = cli and any(
        arg in ("-d", "--directory") or arg.startswith("--directory=")
        for arg in sys.argv[1:]
    )
    results = Path(RESULTS).resolve() if moved else RESULTS
    status = ladder_status(results, config=config, stale_s=config["stale_claim_s"])
    return stop_line(status, command, since=PARSED_AT)


def start_progress():
    """Progress lines from the process that runs the ladder (not from a job's); the
    config it runs, overrides included, kept for `tuneladder status`."""
    if workflow.is_main_process:
        # a stop asked of an earlier run does not hold for this one; Snakemake's graceful
        # stop (SIGTERM) also stops the trials in training, at their epoch's end
        stop_file = StopFile(RESULTS)
        stop_file.clear(before=PARSED_AT)
        restore = stop_file.on_sigterm()
        # `tuneladder stop` turns into Snakemake's graceful stop
        if restore is not None:
            end_watch = stop_file.watch()
            HANDLERS["sigterm"] = lambda: (end_watch(), restore())
        save_run_config(
            RESULTS,
            config,
            workers={rung: rung_workers(rung) for rung in TRIAL_RUNGS},
            trials_per_gpu=trials_per_gpu(),
        )
        terminal.start(RESULTS, config)


def stop_progress():
    terminal.stop()
    HANDLERS.pop("sigterm", lambda: None)()  # what SIGTERM did before this run


# what start_progress set up and stop_progress puts back
HANDLERS = {}


def finish_lines():
    """The last progress line and what the ladder chose. Ctrl-C pressed as the run ends
    lands here, after every job has finished: one line says so, not a traceback."""
    try:
        stop_progress()
        for line in terminal.result_lines(RESULTS):
            print(line, file=sys.stderr)
    except KeyboardInterrupt:
        print(
            f"tuneladder: every job had finished; the results are in {RESULTS}"
            " (tuneladder status says what they hold)",
            file=sys.stderr,
        )


def clear_locks():
    """A run killed outright (kill -9, out of memory) leaves Snakemake's locks: clear them
    when no Snakemake process works here any more, so the rerun just goes on."""
    if workflow.is_main_process:
        # a dry run takes no lock: a run going on here is no news to it
        if said := clear_stale_locks(
            Path.cwd(), say_holders=not workflow.dryrun, results=Path(RESULTS)
        ):
            print(f"tuneladder: {said}", file=sys.stderr)


def check_devices():
    """Say before any job what the GPU settings come to on this machine."""
    if workflow.is_main_process and gpus_refused() and config["device"] == "cuda":
        sys.exit(
            "tuneladder: config error: device: cuda, but --resources gpu=0 lets no job"
            " use a GPU; drop gpu=0, or set device: cpu"
        )
    if not (workflow.is_main_process and no_gpu_here()):
        return
    if config["device"] == "cuda":
        sys.exit(
            "tuneladder: config error: device: cuda, but this machine has no GPU that CUDA"
            " can use; set device: auto (a GPU where there is one, else the CPU) or cpu"
        )


def trials_per_gpu():
    """Trials side by side on each GPU (tuneladder.execution.lanes): 1 on a run that uses none."""
    return config["gpu"]["trials_per_gpu"] if uses_gpu() else 1


def probe_threads():
    """The GPU probe tries up to one lane per core of its job: locally the cores each GPU's
    worker shares (--cores over the GPUs: a trial's process is busy on the CPU too); under
    a cluster executor, where no total is set, the config's threads (cpus_per_task).
    """
    cores = _global_resource("_cores")
    if not cores:
        return config["threads"]
    return max(config["threads"], int(cores) // max(gpu_count(), 1))


def gpu_probe_input(wildcards):
    """The GPU probe's result, for a worker that runs `trials_per_gpu: auto` lanes."""
    if trials_per_gpu() == "auto":
        return {PROBE_INPUT: f"{RESULTS}/{rungs.GPU_PROBE_FILE}"}
    return {}


def device_line():
    """How the run uses GPUs, for the plan's lines; None when it uses none."""
    if no_gpu_here() and asked_gpus() > 0:
        return (
            f"  device  {config['device']}: this machine has no GPU, so --resources"
            f" gpu={asked_gpus()} is ignored and trials train on the CPU"
        )
    if gpus_refused() and config["device"] == "auto" and not no_gpu_here():
        return "  device  auto: --resources gpu=0, so trials train on the CPU"
    if config["device"] == "cpu" and asked_gpus() > 0:
        return (
            f"  device  cpu: --resources gpu={asked_gpus()} is ignored and trials train on"
            " the CPU (device: auto or cuda uses the GPUs)"
        )
    if not LOCAL_RUN and LOCAL_GPUS and not uses_gpu() and config["device"] == "auto":
        # -j N is Snakemake's cluster form: GPUs are what a scheduler gives each job
        return (
            f"  device  auto: planned as for a cluster (--jobs), where the scheduler gives"
            f" each job its GPU; here, --cores N (not -j) shares this machine's"
            f" {counted(LOCAL_GPUS, 'GPU')} among the workers"
        )
    if not uses_gpu():
        return None
    n = trials_per_gpu()
    gpus, asked = gpu_count(), asked_gpus()
    shown = f", but this machine shows {gpus}" if asked > gpus else ""
    if GPUS_UNSAID:
        where = f"{counted(gpus, 'GPU')} (every GPU this machine shows; --resources gpu=N uses fewer)"
    elif gpus:
        where = f"{counted(gpus, 'GPU')} (--resources gpu={asked}{shown})"
    elif LOCAL_RUN:
        where = (
            "the GPUs torch finds, unclaimed (this machine's GPUs cannot be counted:"
            " --resources gpu=N says how many)"
        )
    else:
        where = "the GPUs the scheduler gives each worker job"
    if n == "auto":
        per = "trials per GPU measured by the GPU probe before the sweeps"
    else:
        per = f"{counted(n, 'trial')} side by side on each"
        most = most_lanes()
        if n > most:
            # tuneladder.execution.lanes.lane_count gives a worker no more lanes than trials
            per = f"up to {most} trials side by side on each ({n} asked: no rung gives a worker more)"
    line = f"  device  {config['device']}, {config['precision']}: {where}, {per}"
    cores, threads = _global_resource("_cores"), config["threads"]
    if LOCAL_RUN and cores and int(cores) // threads < gpus:
        room = max(1, int(cores) // threads)
        idle = gpus - room
        line += (
            f"; but --cores {cores} holds {counted(room, 'worker')} of"
            f" threads: {threads} at once, so {idle} GPU{'s stay' if idle != 1 else ' stays'}"
            " idle (lower threads or raise --cores)"
        )
    return line


def most_lanes():
    """The most lanes any worker job of the run can keep busy: its share of the trials a
    rung trains at once (the first level's, for a sweep that halves; a round's, for
    TPE), as tuneladder.stages.sweep gives its workers lanes."""
    shares = []
    for rung in (r.name for r in rungs.active(config, rungs.TRIAL_RUNGS)):
        at_once = rung_trials(rung)
        if rung in SEARCH_RUNGS and config[rung].get("sampler") == "tpe":
            at_once = min(at_once, config[rung]["batch"])
        if at_once > 0:
            shares.append(math.ceil(at_once / rung_workers(rung)))
    return max(shares, default=1)


def precision_line():
    """Say that tf32, bf16 or fp16 asked for on a machine whose trials train on the CPU is
    ignored there, and what it still changes: the trials' key. None otherwise."""
    precision = config["precision"]
    on_cpu = config["device"] == "cpu" or no_gpu_here() or gpus_refused()
    if precision == "fp32" or not on_cpu:
        return None
    return (
        f"  precision {precision}: ignored where trials train on the CPU, as here: they"
        f" train in fp32, keyed {precision} (a run on a GPU retrains them)"
    )


def rung_trials(rung):
    """The most trials a rung's workers train at once: a sweep that halves trains every
    config at level 0, and fewer at each level after (tuneladder.search.halving)."""
    halving = Halving.from_sweep(config[rung]) if rung in SEARCH_RUNGS else None
    if halving is not None:
        return halving.levels[0].configs
    return rungs.by_name(rung).trials(config)


def report_plan():
    """One line per rung with what was resolved, once, where the user sees it."""
    if not workflow.is_main_process:
        return
    lines = describe_plan(
        WRITTEN_CONFIG,
        config,
        results=RESULTS,
        configfiles=CONFIGFILES,
        workers={rung: rung_workers(rung) for rung in TRIAL_RUNGS},
        device="\n".join(line for line in (device_line(), precision_line()) if line)
        or None,
    )
    print("\n".join(lines), file=sys.stderr)


def rung_workers(rung):
    """Worker jobs of a sweep rung: the parallel slots, or what the config says."""
    trials = rung_trials(rung)
    wanted = config["workers"]
    if wanted == "per-trial":
        return trials
    if isinstance(wanted, int):
        return max(1, min(wanted, trials))
    # The executor plugin is not known while the Snakefile is parsed (local_exec is
    # True even under --executor slurm), so go by what was given: --jobs sets
    # `_nodes` (an executor's parallel jobs), otherwise --cores sets `_cores`.
    nodes = _global_resource("_nodes")
    if nodes is None:
        cores = _global_resource("_cores") or 1
        slots = max(1, int(cores) // config["threads"])
    else:
        slots = int(nodes)
    if uses_gpu() and (gpu_count() > 0 or nodes is None):
        # locally each worker needs one of the --resources gpu=N; on a cluster the
        # scheduler hands out GPUs, and gpu=N only caps them when given
        slots = min(slots, max(gpu_count(), 1))
    return max(1, min(int(slots), trials))


def worker_markers(wildcards):
    n = rung_workers(wildcards.rung)
    return [f"{RESULTS}/{wildcards.rung}/workers/{w}-of-{n}.json" for w in range(n)]


def runtime_params():
    """What every rung that trains runs on; the job adds its threads (tuneladder.infra.device.Runtime)."""
    return {
        # --resources gpu=0 on a machine with GPUs: auto would find one, unclaimed
        "device": "cpu" if gpus_refused() else config["device"],
        "precision": config["precision"],
        "gpus": gpu_count() if uses_gpu() else 0,
        "checkpoint_every_s": config["checkpoint_every_s"],
        "stale_claim_s": config["stale_claim_s"],
        "num_workers": config["data"]["num_workers"],
        "pin_memory": config["data"]["pin_memory"],
        "trials_per_gpu": trials_per_gpu(),
        "deterministic": config["deterministic"],
    }


def prepare_params():
    """How prepare stores a task's Datasets: a change re-prepares (the loader's keys do not)."""
    return {
        "materialize": config["data"]["materialize"],
        "max_memory_mb": config["data"]["max_memory_mb"],
    }


# For --software-deployment-method conda: the environment installs this checkout.
CONDA_ENV = str(
    write_env_file(
        Path(workflow.basedir).parent
        / "envs"
        / "tuneladder-{}.yaml".format("cuda" if uses_gpu() else "cpu"),
        checkout=Path(workflow.basedir).parent,
        # absolute: Snakemake reads a relative conda: path from the rule file's folder
        out_dir=(Path(".snakemake") / "tuneladder-envs").resolve(),
    )
)


def data_files():
    """The file a task reads its data from, where the config names one (a CSV's)."""
    if config["task"]["name"] == "csv":
        return [str(data_path(config["task"]["options"]["path"]))]
    return []


def prepare_trigger_params():
    """What re-prepares the data when it changes, besides the config and the CSV file: the
    code that reads it (a plugin's module and what it imports), and an image folder's
    listing (a folder input would only see the folder's own time)."""
    from tuneladder.stages.prepare import data_sources

    return data_sources(config["task"], files=False)


@functools.cache
def configured_task_code():
    """The config's task's code, hashed once per parse (every training rule asks)."""
    return task_code(config["task"]["name"])


def code_params():
    """The fingerprint of the code that decides trials' numbers (no import, a hash of
    files): after a fix to it, the workers' params change, so `snakemake -n` lists
    them with `params changed`, and they retrain the trials the fix made stale."""
    return configured_task_code().fingerprint


def live_tracking_params():
    """Where workers mirror each trial as it finishes: only with mlflow.live (else the
    log_mlflow job mirrors them all at the end)."""
    return tracking_params() if config["mlflow"]["live"] else None


def trial_tables():
    """The results tables of every rung of trials the config runs, in ladder order."""
    return [
        f"{RESULTS}/{rung.outputs['results']}"
        for rung in rungs.active(config, rungs.TRIAL_RUNGS)
    ]


def tracking_params():
    """Where jobs mirror results into MLflow (None: not at all); the store is set up lazily."""
    if not config["mlflow"]["enabled"]:
        return None
    return {
        "tracking_uri": config["mlflow"]["tracking_uri"],
        "experiment": config["experiment"],
        "results": RESULTS,
    }


def lr_range_input(wildcards):
    """The coarse plan reads the LR range test only when the space says lr: auto."""
    if config["space"].get("lr") == "auto":
        return {"lr_range": f"{RESULTS}/sanity/lr_range.json"}
    return {}


def data_dir(wildcards, input, output):
    """The prepared data's folder: the one folder of the rule's `data` files (in or out)."""
    return os.path.commonpath(input.get("data") or output.get("data"))


def sweep_results():
    """The results tables of the rungs that search, in ladder order."""
    return [f"{RESULTS}/{rung}/results.json" for rung in SEARCH_RUNGS]


def report_files(wildcards):
    """Every file the report reads, by the name it reads it under."""
    return report_inputs(RESULTS, config)


def report_sweeps_files(wildcards):
    """The files the report's sweep part reads (sanity checks and sweeps), by name."""
    return report_inputs(RESULTS, config, SWEEP_READS)


def all_targets():
    """Every output of every rung the config runs, and the MLflow model when tracking."""
    targets = [
        f"{RESULTS}/{path}"
        for rung in rungs.active(config)
        for path in rung.outputs.values()
    ]
    if tracking_params():
        targets.append(f"{RESULTS}/{rungs.MLFLOW_MARKER}")
    return targets


clear_locks()
check_devices()
report_plan()
