"""benchmarks/README.md lists every benchmark script: the index a reader starts from stays complete."""

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_every_benchmark_script_is_in_the_index():
    index = (BENCHMARKS / "README.md").read_text()
    scripts = sorted(p.name for p in BENCHMARKS.iterdir() if p.suffix in {".py", ".sh"})
    assert scripts, "no benchmark scripts found"
    missing = [name for name in scripts if f"`{name}`" not in index]
    assert not missing, f"benchmarks/README.md does not list {missing}"


def test_every_benchmark_that_writes_json_records_the_code_it_ran():
    """A number README quotes from a result file can be made again only if the file says from which code: every
    script writing JSON records the commit (``git_commit`` or ``provenance``, which adds command, machine, versions)."""
    silent = [p.name for p in sorted(BENCHMARKS.glob("*.py"))
              if "atomic_write_json(" in (text := p.read_text()) and "git_commit(" not in text and "provenance(" not in text]
    assert not silent, f"these benchmarks write results without the commit: {silent}"


def test_provenance_names_command_code_machine_and_versions():
    import sys

    from rmdp_envs.results import PINNED, provenance

    record = provenance(BENCHMARKS)
    assert record["command"].startswith("python ") and sys.argv[0].split("/")[-1] in record["command"]
    assert record["commit"] is None or len(record["commit"].split("-")[0]) == 40
    assert record["machine"] and set(PINNED) <= set(record["versions"])
    assert record["utc"].endswith("+00:00")


def test_every_shell_benchmark_answers_help_anywhere_in_its_arguments(tmp_path):
    """``bash benchmarks/X.sh OUT 2 --help`` prints the script's header and exits 0 before it creates or runs anything."""
    import subprocess

    for script in sorted(BENCHMARKS.glob("*.sh")):
        out = tmp_path / script.stem
        proc = subprocess.run(["bash", str(script), str(out), "1", "--help"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, (script.name, proc.stderr)
        assert f"bash benchmarks/{script.name}" in proc.stdout and "\n#" not in proc.stdout, (script.name, proc.stdout)
        assert not out.exists(), f"{script.name} --help created {out}"


def test_update_cost_refuses_an_unknown_solver_before_running_anything(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(BENCHMARKS / "update_cost.py"), "--solver", "ppo", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip() == ("error: --solver must be one of em, e2e, cluster, random, "
                                                            "family, got 'ppo'"), proc.stderr
    assert not (tmp_path / "o").exists()


def test_update_cost_refuses_a_task_outside_the_mujoco_speed_family_before_running_anything(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(BENCHMARKS / "update_cost.py"), "--env-id", "rmdp/Chain-v0", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: --env-id must be one of rmdp/HalfCheetahSpeed-v0,")
    assert "got 'rmdp/Chain-v0'" in proc.stderr and not (tmp_path / "o").exists()


def test_plot_update_cost_redraws_committed_results_and_refuses_a_folder_without_them(tmp_path):
    import subprocess
    import sys

    script = str(BENCHMARKS / "plot_update_cost.py")
    folder = str(BENCHMARKS / "results" / "update_cost_more")
    proc = subprocess.run([sys.executable, script, "--folders", folder, "--out", str(tmp_path / "f.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "f.png").stat().st_size > 10_000 and "5x4: " in proc.stdout and "10 seeds" in proc.stdout
    proc = subprocess.run([sys.executable, script, "--folders", str(tmp_path), "--out", str(tmp_path / "g.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(f"error: no update_cost.json in {tmp_path}")
    assert not (tmp_path / "g.png").exists()


def test_update_cost_verdicts_remake_the_committed_file_and_refuse_mixed_folders(tmp_path):
    """The committed verdicts are what the script says of the committed runs today; folders of two tasks, or one
    solver twice, are refused before anything is written."""
    import json
    import subprocess
    import sys

    script = str(BENCHMARKS / "update_cost_verdicts.py")
    more = BENCHMARKS / "results" / "update_cost_more"
    proc = subprocess.run([sys.executable, script, "--out", str(tmp_path / "v")], capture_output=True, text=True,
                          timeout=120, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stderr
    made = json.loads((tmp_path / "v" / "verdicts.json").read_text())["comparisons"]
    committed = json.loads((more / "verdicts.json").read_text())["comparisons"]
    assert made == committed and [c["setting"] for c in made][:2] == ["5x4", "10x8"]
    assert all(c["verdict"].startswith(f"{c['setting']}: ") and len(c["means"]) >= 4 for c in made[:2])
    for folders, message in [([more, more / "hopper"], "hold runs of different tasks"),
                             ([more, more], "name a solver twice")]:
        proc = subprocess.run([sys.executable, script, "--folders", *map(str, folders), "--out", str(tmp_path / "w")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert not (tmp_path / "w").exists()
