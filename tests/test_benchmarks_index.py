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
