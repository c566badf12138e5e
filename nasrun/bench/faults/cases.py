"""The fault-injection cases (`nasrun.bench.faults.runner` runs them): one row per damage, with the outcome it must
have. Each damage function gets the case's run directory (a copy of a finished part run, unless the case says
part=False) and the suite's Env, does its damage, and returns overrides to add to the resume command.

Flipped bytes are flipped in a line's JSON syntax (its opening brace): a flipped digit inside a number would
still be valid JSON, and trials.jsonl carries no per-line checksum to catch that (best.pt does: best.json
records its SHA-256).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nasrun.bench.faults.case import ONE_LINE, RECOVERED, Case, Skip

LOG, BEST, WEIGHTS = "trials.jsonl", "best.json", "best.pt"
# What a recovered run tells the user (its warnings).
TORN, REWROTE, RETRAINED = "dropped a torn last line", "rewrote best.json from trials.jsonl", "retrained trial"
SKIPPED_LINE = "skipped 1 bad line"
HOLD = "import sys, time\nfrom nasrun.rundir.lock import hold_run_dir\nwith hold_run_dir(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(600)\n"


# ----- damage helpers --------------------------------------------------------------------------------------

def killed(run: Path) -> list[bytes]:
    """The log's lines without its end record, as a run killed mid-search leaves it; written back."""
    lines = (run / LOG).read_bytes().splitlines()
    lines = [line for line in lines if b'"status":"end"' not in line]
    (run / LOG).write_bytes(b"\n".join(lines) + b"\n")
    return lines


def torn_last_line(tail: bytes = b""):
    def damage(run, env):
        lines = killed(run)
        (run / LOG).write_bytes(b"\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2] + tail]))
        return []
    return damage


def cut(name: str, fraction: float = 0.5):
    def damage(run, env):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: int(len(data) * fraction)])
        return []
    return damage


def flip(name: str, line: int | None = None):
    """Flip one byte: the first of `line` (1-based) for a text file, the middle one otherwise."""
    def damage(run, env):
        data = bytearray((run / name).read_bytes())
        at = len(data) // 2 if line is None else sum(len(x) + 1 for x in bytes(data).split(b"\n")[: line - 1])
        data[at] ^= 0xFF
        (run / name).write_bytes(bytes(data))
        return []
    return damage


def edit_line(number: int, change, name: str = LOG, glob: str | None = None):
    """Replace line `number` (1-based) by change(record) (JSON, NaN allowed) or by the bytes change returns."""
    def damage(run, env):
        path = next((run / name).glob(glob)) if glob else run / name
        lines = path.read_bytes().splitlines()
        new = change(json.loads(lines[number - 1]))
        lines[number - 1] = new if isinstance(new, bytes) else json.dumps(new).encode()
        path.write_bytes(b"\n".join(lines) + b"\n")
        return []
    return damage


def repeat_line(number: int):
    """Line `number` written twice (a double append, a careless copy of the log)."""
    def damage(run, env):
        path = run / LOG
        lines = path.read_bytes().splitlines()
        path.write_bytes(b"\n".join(lines[:number] + [lines[number - 1]] + lines[number:]) + b"\n")
        return []
    return damage


def without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


def delete(name: str):
    def damage(run, env):
        (run / name).unlink()
        return []
    return damage


def replace(name: str, content: bytes):
    def damage(run, env):
        (run / name).write_bytes(content)
        return []
    return damage


def best_names_trial_0(run, env):
    first = json.loads((run / LOG).read_bytes().splitlines()[0])
    best = json.loads((run / BEST).read_text())
    (run / BEST).write_text(json.dumps({**best, **first}))
    return []


def cache_in_the_way(run, env):
    shutil.rmtree(run / "proxy_cache")
    (run / "proxy_cache").write_text("a file where the proxy cache folder should be")
    return []


def table_copy(change):
    """A copy of the NAS-Bench-201 table with change(lines) applied, given to the evaluator."""
    def damage(run, env):
        lines = (env.data / "nasbench201" / "nb201.csv").read_bytes().splitlines()
        copy = env.root / f"nb201-{run.name}.csv"
        copy.write_bytes(b"\n".join(change(lines)) + b"\n")
        return [f"evaluator.table={copy}"]
    return damage


def nan_in_row(lines):
    fields = lines[100].split(b",")
    fields[2] = b"nan"
    return lines[:100] + [b",".join(fields)] + lines[101:]


def dataset_copy(folder: str, name: str, change, dataset: str):
    """A dataset root of links to the shared files, with `name` a damaged copy (change=None: `name` missing)."""
    def damage(run, env):
        root = env.root / f"data-{run.name}"
        (root / folder).mkdir(parents=True)
        for source in (env.data / folder).iterdir():
            target = root / folder / source.name
            if source.name == name:
                if change is not None:
                    target.write_bytes(change(source.read_bytes()))
            else:
                target.symlink_to(source)
        return [f"dataset={dataset}", f"dataset.root={root}", "dataset.download=false", "dataset.fraction=0.01"]
    return damage


def one_record_short(data: bytes) -> bytes:
    return data[:-3073]  # still whole CIFAR-10 records: a reader alone would train on 9999 images, silently


def flipped_middle(data: bytes) -> bytes:
    return data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]


def arguments(*args: str):
    def damage(run, env):
        return list(args)
    return damage


# ----- the environment -------------------------------------------------------------------------------------

def _need_root():
    if os.geteuid() != 0:
        raise Skip("needs root (mounting a file system)")


def _mount_over(run: Path, env, options: str) -> None:
    """Put the run directory on its own tmpfs (`options`), with its files."""
    _need_root()
    saved = run.with_name(run.name + "-saved")
    run.rename(saved)
    run.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(run)], check=True)
    env.cleanups.append(lambda: subprocess.run(["umount", "-l", str(run)], check=False))
    shutil.copytree(saved, run, dirs_exist_ok=True, symlinks=True)


def read_only(run, env):
    _mount_over(run, env, "size=4m")
    subprocess.run(["mount", "-o", "remount,ro", str(run)], check=True)
    return []


def make_writable(run, env):
    subprocess.run(["mount", "-o", "remount,rw", str(run)], check=True)


def disk_full(run, env):
    _mount_over(run, env, "size=256k")
    fd = os.open(run / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):  # fill every block that is left
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return []


def free_space(run, env):
    (run / "filler").unlink()


def not_writable(run, env):
    """The run folder without write permission. Root ignores permission bits, so the command then runs without
    the capabilities that let it (process={"obey_permissions": True}: setpriv drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        raise Skip("running as root without setpriv: cannot make root obey permission bits")
    run.chmod(0o555)
    env.cleanups.append(lambda: run.chmod(0o755))
    return []


def make_writable_again(run, env):
    run.chmod(0o755)


def nothing(run, env):
    """The cause went away by itself (the other user, the signal): resume as is."""


def file_in_the_way(run, env):
    (env.root / "a-file").write_text("not a folder")
    return [f"hydra.run.dir={env.root / 'a-file' / 'run'}"]


def second_writer(run, env):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    env.cleanups.append(lambda: (holder.kill(), holder.wait()))
    if holder.stdout.readline().strip() != "held":
        raise RuntimeError("the holder process did not take the lock")
    env.holder = holder
    return []


def stop_the_other_writer(run, env):
    env.holder.kill()
    env.holder.wait()


# ----- the table ---------------------------------------------------------------------------------------------

CASES = [
    # trials.jsonl
    Case("trials.jsonl: last line torn by a kill", "table", torn_last_line(), RECOVERED, (TORN,)),
    Case("trials.jsonl: last line torn inside a UTF-8 character", "table", torn_last_line(b"\xe2\x82"), RECOVERED,
         (TORN,)),
    Case("trials.jsonl: cut at half its size", "table", cut(LOG), RECOVERED, (TORN,)),
    Case("trials.jsonl: a byte flipped in line 5", "table", flip(LOG, 5), ONE_LINE, (f"{LOG}:5 ", "not valid JSON")),
    Case("trials.jsonl: line 5 not UTF-8", "table", edit_line(5, lambda r: b'{"trial": 4, "key": "\xff\xfe"}'),
         ONE_LINE, (f"{LOG}:5 ", "not valid JSON")),
    Case("trials.jsonl: line 5 valid JSON of the wrong shape", "table", edit_line(5, lambda r: [1, 2]), ONE_LINE,
         (f"{LOG}:5 ", "not a JSON object")),
    Case("trials.jsonl: line 5 without its metrics", "table", edit_line(5, lambda r: without(r, "metrics")),
         ONE_LINE, (f"{LOG}:5 ", "no 'metrics' field")),
    Case("trials.jsonl: line 5 trial number as a string", "table", edit_line(5, lambda r: {**r, "trial": "4"}),
         ONE_LINE, (f"{LOG}:5 ", "trial='4'")),
    Case("trials.jsonl: line 5 NaN accuracy", "table",
         edit_line(5, lambda r: {**r, "metrics": {**r["metrics"], "val_acc": float("nan")}}), ONE_LINE,
         (f"{LOG}:5 ", "metrics.val_acc=nan")),
    Case("trials.jsonl: line 5 negative cost", "table",
         edit_line(5, lambda r: {**r, "metrics": {**r["metrics"], "cost": -r["metrics"]["cost"]}}), ONE_LINE,
         (f"{LOG}:5 ", "metrics.cost=-")),
    Case("trials.jsonl: line 5 unknown status", "table", edit_line(5, lambda r: {**r, "status": "great"}), ONE_LINE,
         (f"{LOG}:5 ", "status='great'")),
    Case("trials.jsonl: line 5 an architecture the space rejects", "table",
         edit_line(5, lambda r: {**r, "arch": r["arch"].replace("~0|", "_9x9~0|", 1)}), ONE_LINE,
         (f"{LOG}:5 ", "is not an operation")),
    Case("trials.jsonl: line 3 written twice", "table", repeat_line(3), RECOVERED,
         (f"{LOG}:4 repeats line 3 (trial 2) exactly; removed it",)),
    Case("trials.jsonl: deleted", "table", delete(LOG), ONE_LINE, ("resume=true", "holds no trials", "missing")),
    Case("trials.jsonl: emptied", "table", replace(LOG, b""), ONE_LINE, ("holds no trials", "empty")),
    # best.json: derived from trials.jsonl, so rebuilt
    Case("best.json: cut at half its size", "table", cut(BEST), RECOVERED, ("best.json is not valid JSON", REWROTE)),
    Case("best.json: a byte flipped", "table", flip(BEST, 1), RECOVERED, ("best.json is not valid JSON", REWROTE)),
    Case("best.json: deleted", "table", delete(BEST), RECOVERED, ("best.json", REWROTE)),
    Case("best.json: valid JSON of the wrong shape", "table", replace(BEST, b"[]"), RECOVERED, ("best.json", REWROTE)),
    Case("best.json: names another trial", "table", best_names_trial_0, RECOVERED,
         ("best.json names trial 0", REWROTE)),
    # best.pt: its checksum is in best.json; retraining the best trial restores it exactly
    Case("best.pt: cut at half its size", "train", cut(WEIGHTS), RECOVERED, ("does not match the checksum", RETRAINED)),
    Case("best.pt: a byte flipped", "train", flip(WEIGHTS), RECOVERED, ("does not match the checksum", RETRAINED)),
    Case("best.pt: deleted", "train", delete(WEIGHTS), RECOVERED, ("best.pt is missing", RETRAINED)),
    # run.json only describes the environment
    Case("run.json: cut at half its size", "table", cut("run.json"), RECOVERED, ("run.json is damaged",)),
    # the proxy cache: a bad line costs a score computed again
    Case("proxy cache: last line torn", "proxy",
         edit_line(6, lambda r: json.dumps(r).encode()[:20], "proxy_cache", "*.jsonl"), RECOVERED, (SKIPPED_LINE,)),
    Case("proxy cache: a byte flipped in line 2", "proxy",
         edit_line(2, lambda r: b"\x84" + json.dumps(r).encode()[1:], "proxy_cache", "*.jsonl"), RECOVERED,
         (SKIPPED_LINE,)),
    Case("proxy cache: line 2 valid JSON of the wrong shape", "proxy",
         edit_line(2, lambda r: {"key": r["key"], "score": "high"}, "proxy_cache", "*.jsonl"), RECOVERED,
         (SKIPPED_LINE,)),
    Case("proxy cache: a file where its folder should be", "proxy", cache_in_the_way, RECOVERED,
         ("a file is in the way", "keeping the proxy's scores in memory")),
    # inputs
    Case("nb201.csv: cut inside row 5001", "table", table_copy(lambda ls: ls[:5001] + [ls[5001][:40]]), ONE_LINE,
         ("nb201-", ":5002 has the wrong number of fields"), part=False),
    Case("nb201.csv: a NaN accuracy in row 100", "table", table_copy(nan_in_row), ONE_LINE,
         (":101 cifar10_valid_acc12=nan",), part=False),
    Case("CIFAR-10 data_batch_3.bin: one record short", "data",
         dataset_copy("cifar-10-batches-bin", "data_batch_3.bin", one_record_short, "cifar10"), ONE_LINE,
         ("data_batch_3.bin: 30,726,927 bytes, but the published file has 30,730,000",), part=False),
    Case("CIFAR-10 data_batch_3.bin: missing", "data",
         dataset_copy("cifar-10-batches-bin", "data_batch_3.bin", None, "cifar10"), ONE_LINE,
         ("lacks data_batch_3.bin (5 of 6 files are there",), part=False),
    Case("Fashion-MNIST t10k-images: a byte flipped", "data",
         dataset_copy("FashionMNIST/raw", "t10k-images-idx3-ubyte", flipped_middle, "fashion_mnist"), ONE_LINE,
         ("t10k-images-idx3-ubyte: md5", "(damaged)"), part=False),
    Case("data folder missing", "data",
         arguments("dataset=cifar10", "dataset.root=/nonexistent/data", "dataset.download=false"), ONE_LINE,
         ("CIFAR-10 not found", "/nonexistent/data"), part=False),
    # the environment
    Case("a file where the run folder should be", "table", file_in_the_way, ONE_LINE,
         ("a-file", "a file is in the way"), part=False),
    Case("run folder on a read-only file system", "table", read_only, ONE_LINE, ("read-only",), fix=make_writable),
    Case("disk full", "table", disk_full, ONE_LINE, ("the disk is full",), fix=free_space),
    Case("permission denied", "table", not_writable, ONE_LINE, ("permission denied",), fix=make_writable_again,
         process={"obey_permissions": True}),
    Case("two writers on one run folder", "table", second_writer, ONE_LINE, ("is in use by pid",),
         fix=stop_the_other_writer),
    Case("SIGTERM mid-search", "train", arguments(), ONE_LINE, ("terminated (SIGTERM)", "resume=true"), part=False,
         fix=nothing, process={"sigterm_after": 1}, unchanged=False),
    # the command line
    Case("override '=5'", "table", arguments("=5"), ONE_LINE, ("'=5': no key",), part=False),
    Case("an empty override", "table", arguments(""), ONE_LINE, ("an empty argument",), part=False),
    Case("+foo=1, read by nothing", "table", arguments("+foo=1"), ONE_LINE, ("foo: unknown key",), part=False),
    Case("+dataset.foo=1 on a table run", "table", arguments("+dataset.foo=1"), ONE_LINE,
         ("dataset.foo: unknown key",), part=False),
    Case("seed=99999999999999999999", "table", arguments("seed=99999999999999999999"), ONE_LINE,
         ("seed=99999999999999999999: too large",), part=False),
    Case("seed=-1", "table", arguments("seed=-1"), ONE_LINE, ("seed=-1: must be an integer in",), part=False),
    Case("evaluator.lr=inf", "train", arguments("evaluator.lr=inf"), ONE_LINE, ("evaluator.lr=inf: must be a finite",),
         part=False),
    Case("budget.simulated_seconds=nan", "table", arguments("budget.simulated_seconds=nan"), ONE_LINE,
         ("budget.simulated_seconds=nan",), part=False),
    Case("budget.trials=-3", "table", arguments("budget.trials=-3"), ONE_LINE, ("budget.trials=-3", ">= 1"),
         part=False),
]
