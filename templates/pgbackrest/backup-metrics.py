#!/usr/bin/python3
"""Backup metrics for node_exporter's textfile collector, installed by dpgc.

Run on the repository host as the repository's user after every backup (the
scheduled one and `dpgc backup`), and by `dpgc sprint 4`:

    pgbackrest-backup-metrics CONFIG [TYPE STARTED FINISHED EXIT]

CONFIG is a JSON file dpgc renders from the inventory (pgBackRest's config and
stanza, the textfile directory, the alert thresholds). With the four extra
arguments the run records a backup attempt (type, start and end in epoch
seconds, pgBackRest's exit code) as the last one; without them the last
recorded attempt is kept. The repository's state comes from
`pgbackrest info --output=json`.

The thresholds are exported as metrics too, so the alert rules are plain text
that `promtool test rules` proves once, whatever the inventory says.

The file is written to a temporary name in the same directory and renamed:
node_exporter never reads half a file.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

TYPES = ("full", "diff", "incr")


def label(v):
    return '"' + str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') + '"'


def labels(**kv):
    return "{" + ",".join(k + "=" + label(v) for k, v in kv.items()) + "}"


def mountpoint(path):
    p = os.path.realpath(path)
    while not os.path.ismount(p):
        p = os.path.dirname(p)
    return p


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_atomic(path, text, mode):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def repo_info(cfg):
    """The stanza's entry of pgbackrest info, or None (and why) when it cannot be read."""
    r = subprocess.run(
        ["pgbackrest", "--config=" + cfg["conf"], "--stanza=" + cfg["stanza"], "--output=json", "info"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    if r.returncode != 0:
        return None, (r.stderr or r.stdout).strip().splitlines()[-1:] or ["exit %d" % r.returncode]
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return None, ["pgbackrest info gave no JSON"]
    for s in doc if isinstance(doc, list) else []:
        if s.get("name") == cfg["stanza"]:
            return s, []
    return None, ["stanza not in pgbackrest info"]


def render(cfg, info, attempt, now):
    st = {"stanza": cfg["stanza"]}
    out = []

    def metric(name, help_, kind, rows):
        out.append("# HELP %s %s" % (name, help_))
        out.append("# TYPE %s %s" % (name, kind))
        for lab, v in rows:
            out.append("%s%s %s" % (name, labels(**lab), repr(float(v)) if isinstance(v, float) else v))

    metric("dpgc_backup_info_ok", "1 when pgbackrest info could be read at the last refresh, else 0.", "gauge", [(st, 1 if info else 0)])
    if info:
        good = [b for b in info.get("backup", []) if not b.get("error")]
        newest = {}
        for b in good:
            t = b["type"]
            newest[t] = max(newest.get(t, 0), b["timestamp"]["stop"])
        metric("dpgc_backup_last_success_timestamp_seconds", "End of the newest successful backup of this type in the repository.", "gauge",
               [(dict(st, type=t), newest[t]) for t in TYPES if t in newest])
        metric("dpgc_backup_repo_backups", "Successful backups of this type in the repository.", "gauge",
               [(dict(st, type=t), sum(1 for b in good if b["type"] == t)) for t in TYPES])
        stored = sum(((b.get("info") or {}).get("repository") or {}).get("delta") or 0 for b in good)
        metric("dpgc_backup_repo_size_bytes", "Bytes the repository's backups occupy (pgBackRest's stored size, compressed and encrypted; WAL not included).", "gauge", [(st, stored)])
    if attempt:
        a = dict(st, type=attempt["type"])
        metric("dpgc_backup_last_run_exit_code", "pgBackRest's exit code of the last backup attempt (0: success).", "gauge", [(a, attempt["exit"])])
        metric("dpgc_backup_last_run_start_timestamp_seconds", "Start of the last backup attempt.", "gauge", [(a, attempt["started"])])
        metric("dpgc_backup_last_run_end_timestamp_seconds", "End of the last backup attempt.", "gauge", [(a, attempt["finished"])])
    metric("dpgc_backup_max_age_seconds", "Alert threshold: the newest backup (type any) or the newest full backup may be this old (from the inventory's schedule).", "gauge",
           [(dict(st, type="any"), cfg["max_age_s"]), (dict(st, type="full"), cfg["full_max_age_s"])])
    metric("dpgc_backup_repo_min_free_ratio", "Alert threshold: the repository's filesystem (this mountpoint) must keep at least this share free.", "gauge",
           [(dict(st, mountpoint=mountpoint(cfg["repo_path"])), cfg["repo_min_free_ratio"])])
    metric("dpgc_backup_metrics_timestamp_seconds", "When this file was written.", "gauge", [(st, now)])
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) not in (2, 6):
        sys.stderr.write("usage: %s CONFIG [TYPE STARTED FINISHED EXIT]\n" % argv[0])
        return 2
    cfg = read_json(argv[1])
    if cfg is None:
        sys.stderr.write("%s: cannot read %s\n" % (argv[0], argv[1]))
        return 2
    attempt_file = os.path.join(cfg["state"], "last-attempt.json")
    if len(argv) == 6:
        attempt = {"type": argv[2], "started": int(argv[3]), "finished": int(argv[4]), "exit": int(argv[5])}
        write_atomic(attempt_file, json.dumps(attempt) + "\n", 0o600)
    else:
        attempt = read_json(attempt_file)
    info, why = repo_info(cfg)
    write_atomic(cfg["textfile"], render(cfg, info, attempt, int(time.time())), 0o644)
    if not info:
        sys.stderr.write("pgbackrest info failed (%s); dpgc_backup_info_ok is 0\n" % " ".join(why))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
