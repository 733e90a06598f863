"""benchmarks/README.md lists every benchmark script: the index a reader starts from stays complete."""

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_every_benchmark_script_is_in_the_index():
    index = (BENCHMARKS / "README.md").read_text()
    scripts = sorted(p.name for p in BENCHMARKS.iterdir() if p.suffix in {".py", ".sh"})
    assert scripts, "no benchmark scripts found"
    missing = [name for name in scripts if f"`{name}`" not in index]
    assert not missing, f"benchmarks/README.md does not list {missing}"
